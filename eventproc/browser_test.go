package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/eventproc/eventproc/event/auth"
	"github.com/eventproc/eventproc/internal/authtest"
)

// chromiumPath is where Debian's chromium package puts the browser (.ci/run
// installs it).
const chromiumPath = "/usr/bin/chromium"

// screenshotPath is the console screenshot the README shows; the browser
// test rewrites it when UPDATE_SCREENSHOT=1.
const screenshotPath = "../docs/console.png"

// startBrowser starts headless Chromium for the test, or skips the test when
// it is not installed (and fails it on CI, where it must be). The browser
// has a fresh profile and stops when the test ends.
func startBrowser(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("browser tests need %s on CI (.ci/run installs it): %v", chromiumPath, err)
		}
		t.Skipf("no browser: %v (apt-get install chromium)", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		// Nothing but the sink under test: no updates, sync or QUIC probes.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc) // waits for the browser to exit
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(browserCtx); err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	return browserCtx
}

// consoleLog collects what a page writes to its console: console API calls,
// uncaught exceptions and browser log entries such as failed requests.
type consoleLog struct {
	mu       sync.Mutex
	messages []chromedp.ConsoleMessage
	seen     chan string // the text of each message, for sync points
	done     chan struct{}
}

// watchConsole collects the console messages of the browser's tab until
// ctx ends.
func watchConsole(ctx context.Context) *consoleLog {
	c := &consoleLog{seen: make(chan string, 1024), done: make(chan struct{})}
	messages := chromedp.Console(ctx)
	go func() {
		defer close(c.done)
		for m, err := range messages {
			if err != nil {
				return
			}
			c.mu.Lock()
			c.messages = append(c.messages, m)
			c.mu.Unlock()
			select {
			case c.seen <- m.Text:
			default:
			}
		}
	}()
	return c
}

// problems returns the messages of type error or warning, and exceptions.
func (c *consoleLog) problems() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.messages {
		switch m.Type {
		case chromedp.ConsoleError, chromedp.ConsoleWarning, chromedp.ConsoleException:
			where := m.URL
			if m.Source != "" {
				where = m.Source + " " + where
			}
			out = append(out, m.String()+" ("+where+")")
		}
	}
	return out
}

// sync logs a marker to the page's console and waits until it comes back:
// every message written before it has been collected then.
func (c *consoleLog) sync(t *testing.T, ctx context.Context, tab context.Context) {
	t.Helper()
	const marker = "eventproc-test: console sync"
	if err := chromedp.Do(tab, chromedp.Evaluate[chromedp.Void](`console.debug("`+marker+`")`)); err != nil {
		t.Fatalf("console sync: %v", err)
	}
	for {
		select {
		case text := <-c.seen:
			if text == marker {
				return
			}
		case <-ctx.Done():
			t.Fatalf("console sync marker never arrived: %v", ctx.Err())
		}
	}
}

// TestConsoleInBrowser drives the console in headless Chromium against the
// real sink and a publishing processor: send an event and see the reply,
// subscribe and see the published copy of the next one arrive live, see
// the live charts draw and move while events flow, with nothing written to
// the browser console. With UPDATE_SCREENSHOT=1 it also
// saves the screenshot in docs/console.png.
func TestConsoleInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	t.Parallel()
	ctx := testContext(t)
	s := publishFixture(t, ctx)
	tab := startBrowser(t, ctx)
	console := watchConsole(tab)

	id := func(s string) chromedp.ID { return chromedp.ID(s) }
	text := func(sel string) string {
		t.Helper()
		got, err := chromedp.Run(tab, chromedp.Text(id(sel)))
		if err != nil {
			t.Fatalf("text of #%s: %v", sel, err)
		}
		return got
	}
	waitFor := func(what, js string) {
		t.Helper()
		if _, err := chromedp.Run(tab, chromedp.Poll[bool](js)); err != nil {
			t.Fatalf("waiting until %s: %v", what, err)
		}
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(tab, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// send types payload into the form and clicks Send.
	send := func(typ, payload string) {
		t.Helper()
		do("sending "+payload,
			chromedp.SetValue(id("send-type"), typ),
			// chromedp.SetValue fails to set an empty value.
			chromedp.Evaluate[chromedp.Void](`document.getElementById("payload").value = ""`),
			chromedp.SendKeys(id("payload"), payload),
			chromedp.Click(id("send")),
		)
	}

	do("opening the console", chromedp.Navigate(s.url+"/"))
	waitFor("the types are loaded", `document.body.dataset.ready === "true"`)
	waitFor("the routes are shown", `document.querySelectorAll("#routes tbody tr").length === 2`)
	if got := text("ready-badge"); got != "ready" {
		t.Errorf("readiness badge %q, want ready", got)
	}
	if got, want := text("send-type"), "TYPE_HELLO"; !strings.Contains(got, want) {
		t.Errorf("type choices %q lack %s", got, want)
	}

	// The charts: idle at first, the events chart says there is no
	// traffic; the streams chart shows the processor's live streams.
	waitFor("the charts have a point", `Number(document.getElementById("chart-events").dataset.points) > 0`)
	if got := text("chart-events"); !strings.Contains(got, "No events in the last 2 minutes") {
		t.Errorf("idle events chart %q, want its empty state", got)
	}
	waitFor("the streams chart shows live streams", `Number(document.getElementById("chart-streams").dataset.latest) > 0`)

	// Send, and see the reply.
	send("TYPE_HELLO", `{"greeting": "hello from the browser"}`)
	waitFor("the reply is shown", `document.getElementById("reply").dataset.status === "200"`)
	if got := text("reply"); !strings.Contains(got, `"hello from the browser"`) || !strings.Contains(got, `"TYPE_HELLO"`) {
		t.Errorf("reply %q, want the echoed event", got)
	}
	if got := text("send-status"); !strings.HasPrefix(got, "200") {
		t.Errorf("status %q, want 200", got)
	}
	if got := text("send-latency"); !strings.HasSuffix(got, " ms") {
		t.Errorf("latency %q, want milliseconds", got)
	}

	// Subscribe, send again, and see the published copy arrive.
	do("subscribing", chromedp.Click(id("subscribe")))
	waitFor("the subscription is live", `document.getElementById("sub-state").textContent.startsWith("live")`)
	send("TYPE_HELLO", `{"greeting": "published to subscribers", "n": 1}`)
	waitFor("the published event is listed",
		`[...document.querySelectorAll("#events li.event")].some(li => li.textContent.includes("published to subscribers"))`)
	send("TYPE_GOODBYE", `{"farewell": "see you", "n": 2}`)
	waitFor("the second published event is listed", `document.querySelectorAll("#events li.event").length === 2`)
	first, err := chromedp.Run(tab, chromedp.Text(chromedp.CSS("#events li.event")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(first, "TYPE_GOODBYE") || !strings.Contains(first, "see you") {
		t.Errorf("newest listed event %q, want the GOODBYE one on top", first)
	}
	if got := text("count-received"); got != "2" {
		t.Errorf("received counter %q, want 2", got)
	}
	waitFor("the subscribers chart counts the console", `document.getElementById("chart-subscribers").dataset.latest === "1"`)

	// While events flow, the charts draw them and move on.
	screenshot := os.Getenv("UPDATE_SCREENSHOT") == "1"
	flow := startTraffic(ctx, s, screenshot)
	waitFor("the events chart shows the traffic",
		`document.getElementById("chart-events").dataset.empty === "false" && Number(document.getElementById("chart-events").dataset.latest) > 0`)
	waitFor("the latency chart shows the traffic", `Number(document.getElementById("chart-latency").dataset.latest) > 0`)
	const eventsPath = `document.querySelector("#chart-events path[data-series=TYPE_HELLO]").getAttribute("d")`
	drawn, err := chromedp.Run(tab, chromedp.Evaluate[string](eventsPath))
	if err != nil || !strings.HasPrefix(drawn, "M") {
		t.Fatalf("events chart path %q (%v), want a line", drawn, err)
	}
	waitFor("the events chart updates", eventsPath+` !== `+strconv.Quote(drawn))
	if screenshot {
		// Enough points for the charts to show a shape.
		time.Sleep(40 * time.Second)
	}
	sent, errs := flow.end()
	if len(errs) > 0 {
		t.Errorf("traffic: %d of %d posts failed: %v", len(errs), sent, errs[0])
	}
	if got := text("chart-errors"); !screenshot && !strings.Contains(got, "No errors in the last 2 minutes") {
		t.Errorf("errors chart %q, want its empty state", got)
	}

	if screenshot {
		png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(filepath.FromSlash(screenshotPath), png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", screenshotPath)
	}

	do("unsubscribing", chromedp.Click(id("subscribe")))
	waitFor("the subscription is closed", `document.getElementById("sub-state").textContent === "not subscribed"`)
	console.sync(t, ctx, tab)
	for _, p := range console.problems() {
		t.Errorf("browser console: %s", p)
	}
}

// TestConsoleWithCredential drives the console against a sink that
// authenticates: it asks for a credential after a 401, then sends with it
// as a header (for its charts too) and subscribes with a ticket minted with
// it; the credential never appears in a URL the page requests.
func TestConsoleWithCredential(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	t.Parallel()
	ctx := testContext(t)
	keys := filepath.Join(t.TempDir(), "keys.json")
	authtest.WriteAPIKeys(t, keys, map[string]auth.APIKey{
		"console-key": {Principal: "operator", Scopes: []string{"send:*", "subscribe:*", "read:metrics"}},
	})
	s := publishFixture(t, ctx, "--auth-api-keys", keys)
	tab := startBrowser(t, ctx)
	console := watchConsole(tab)
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(tab, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	waitFor := func(what, js string) {
		t.Helper()
		if _, err := chromedp.Run(tab, chromedp.Poll[bool](js)); err != nil {
			t.Fatalf("waiting until %s: %v", what, err)
		}
	}
	run("opening the console", chromedp.Navigate(s.url+"/"))
	waitFor("the credential form is shown", `!document.getElementById("auth-form").hidden`)
	run("entering the key", chromedp.SendKeys(chromedp.ID("credential"), "console-key"), chromedp.Click(chromedp.CSS("#auth-form button")))
	waitFor("the types are loaded", `document.body.dataset.ready === "true"`)

	run("subscribing", chromedp.Click(chromedp.ID("subscribe")))
	waitFor("the subscription is live", `document.getElementById("sub-state").textContent.startsWith("live")`)
	run("sending", chromedp.SetValue(chromedp.ID("send-type"), "TYPE_HELLO"), chromedp.Click(chromedp.ID("send")))
	waitFor("the reply is shown", `document.getElementById("reply").dataset.status === "200"`)
	waitFor("the published event is listed", `document.querySelectorAll("#events li.event").length === 1`)
	// The charts resumed with the credential (/v1/stats needs read:metrics).
	waitFor("the events chart shows the event", `document.getElementById("chart-events").dataset.empty === "false"`)

	// Every URL the page requested, and the live EventSource's.
	urls, err := chromedp.Run(tab, chromedp.Evaluate[[]string](
		`performance.getEntriesByType("resource").map(e => e.name).concat([live.source.url])`))
	if err != nil {
		t.Fatal(err)
	}
	sawTicket := false
	for _, u := range urls {
		if strings.Contains(u, "console-key") {
			t.Errorf("the credential is in a URL: %s", u)
		}
		sawTicket = sawTicket || strings.Contains(u, "ticket=")
	}
	if !sawTicket {
		t.Errorf("no subscription with a ticket among %q", urls)
	}
	// The one 401 (before the key was entered) is expected; nothing else.
	console.sync(t, ctx, tab)
	for _, p := range console.problems() {
		if !strings.Contains(p, "401") {
			t.Errorf("browser console: %s", p)
		}
	}
}
