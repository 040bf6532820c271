//go:build unix

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// TestREADMEExamples runs the README's examples against the real binaries,
// started as `make run` starts them (an echo processor with --publish, and
// a sink routing hello and goodbye to it), on free loopback ports:
//
//   - every row of the status table ("What every request gets") whose
//     commands are not marked <!-- readme-test: skip: why -->: each command
//     runs with bash, and its answer must have the status and contain the
//     fragments shown after →; a command that starts a second sink
//     (bin/eventproc … on :8090/:8091) starts one for that row;
//   - the pub/sub example: the subscription must show what the README
//     says it shows;
//   - the grpcurl lines of "gRPC clients", as the same requests with a Go
//     gRPC client (grpcurl is not a dependency);
//   - every Go snippet, which must compile inside the harness in the
//     <!-- readme-test: go … --> comment before it (its SNIPPET line is
//     the snippet), with go vet.
//
// Commands use localhost:8080 and :8081 (make run's sink), :8090 and :8091
// (a second sink) and :9090 (the processor): the test rewrites them to its
// own ports. It needs bash and curl (.ci/run installs curl).
func TestREADMEExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	t.Parallel()
	for _, tool := range []string{"bash", "curl", "seq"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is needed to run the README's commands: %v", tool, err)
			}
			t.Skipf("%s is needed to run the README's commands: %v", tool, err)
		}
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(readme)
	t.Run("go snippets", func(t *testing.T) {
		t.Parallel()
		checkGoSnippets(t, doc)
	})

	dir := buildBinaries(t)
	ctx := testContext(t)
	proc := startBinary(t, ctx, filepath.Join(dir, "proc"), `listening on (\S+)`, "--addr", "127.0.0.1:0", "--publish")
	procAddr := proc.wait(ctx)["1"]
	sink := startBinary(t, ctx, filepath.Join(dir, "eventproc"), `(http|grpc) listening on ([^\s"]+)`,
		"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--shutdown-delay", "0",
		"--route", "hello=localhost:"+port(procAddr), "--route", "goodbye=localhost:"+port(procAddr))
	addrs := sink.wait(ctx)
	s := &sinkProc{t: t, url: "http://" + addrs["http"], client: &http.Client{Transport: &http.Transport{}}}
	defer s.client.CloseIdleConnections()
	s.waitRoute(ctx, "TYPE_HELLO", true)
	s.waitRoute(ctx, "TYPE_GOODBYE", true)
	env := &readmeEnv{t: t, dir: dir, ports: map[string]string{
		"8080": port(addrs["http"]), "8081": port(addrs["grpc"]), "9090": port(procAddr),
	}}

	// In order, as a reader tries them (the rows share one sink).
	rows := statusRows(t, doc)
	if len(rows) < 10 {
		t.Fatalf("found %d rows in the status table, want the whole table", len(rows))
	}
	ran := 0
	for _, r := range rows {
		if r.skip != "" {
			continue
		}
		ran++
		t.Run("status/"+r.situation, func(t *testing.T) { env.runRow(t, ctx, r) })
	}
	t.Logf("ran %d of %d status rows", ran, len(rows))
	t.Run("pubsub", func(t *testing.T) { env.runPubSub(t, ctx, doc) })
	t.Run("grpcurl", func(t *testing.T) { runGRPCurlLines(t, ctx, doc, addrs["grpc"], s) })

	sink.terminate()
	proc.terminate()
	sink.checkExit(ctx)
	proc.checkExit(ctx)
}

// port is the port of a host:port address.
func port(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

// statusRow is one row of the README's status table.
type statusRow struct {
	situation, answer string
	commands          []string // in order
	want              []string // after →: fragments, or statuses (three digits)
	skip              string   // why the row is not run
}

var (
	skipMark = regexp.MustCompile(`<!-- readme-test: skip: (.*?) -->`)
	// A code span, with an arrow before it or not, or an arrow and a status.
	cellToken = regexp.MustCompile("(→\\s*)?`([^`]+)`|→\\s*(\\d{3})\\b")
	status3   = regexp.MustCompile(`\b[1-5]\d\d\b`)
)

// statusRows parses the table of "What every request gets".
func statusRows(t *testing.T, doc string) []statusRow {
	t.Helper()
	_, rest, ok := strings.Cut(doc, "| situation | answer | try it (with `make run` up) |\n|---|---|---|\n")
	if !ok {
		t.Fatal("README.md: no status table")
	}
	var rows []statusRow
	for line := range strings.Lines(rest) {
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := splitRow(strings.TrimSpace(line))
		if len(cells) != 3 {
			t.Fatalf("README.md: status row with %d cells: %s", len(cells), line)
		}
		r := statusRow{situation: cells[0], answer: cells[1]}
		if m := skipMark.FindStringSubmatch(cells[2]); m != nil {
			r.skip = m[1]
		}
		for _, m := range cellToken.FindAllStringSubmatch(cells[2], -1) {
			switch {
			case m[3] != "":
				r.want = append(r.want, m[3])
			case m[1] != "":
				r.want = append(r.want, strings.ReplaceAll(m[2], `\|`, "|"))
			case isCommand(m[2]):
				r.commands = append(r.commands, strings.ReplaceAll(m[2], `\|`, "|"))
			}
		}
		if r.skip == "" && len(r.commands) == 0 {
			t.Errorf("README.md: status row %q has no command to try; give one, or mark it <!-- readme-test: skip: why -->", r.situation)
		}
		rows = append(rows, r)
	}
	return rows
}

// splitRow splits a table row at the pipes that are not escaped.
func splitRow(line string) []string {
	line = strings.TrimSuffix(strings.TrimPrefix(line, "|"), "|")
	var cells []string
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
			cur.WriteString(`\|`)
			i++
		case line[i] == '|':
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(line[i])
		}
	}
	return append(cells, strings.TrimSpace(cur.String()))
}

// isCommand reports whether a code span is a shell command to run.
func isCommand(s string) bool {
	for _, p := range []string{"curl ", "head ", "printf ", "(printf ", "bin/eventproc ", "bin/proc "} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// readmeEnv runs README commands against the test's binaries.
type readmeEnv struct {
	t     *testing.T
	dir   string            // the binaries
	ports map[string]string // README port → the test's
}

var localPort = regexp.MustCompile(`\blocalhost:(\d{4})\b`)

// rewrite points a command at the test's ports and binaries.
func (e *readmeEnv) rewrite(t *testing.T, cmd string) string {
	t.Helper()
	cmd = localPort.ReplaceAllStringFunc(cmd, func(m string) string {
		p, ok := e.ports[m[len("localhost:"):]]
		if !ok {
			t.Fatalf("command %q: no server of the test listens where localhost:%s is", cmd, m[len("localhost:"):])
		}
		return "127.0.0.1:" + p
	})
	// Status codes on a line of their own, after the body.
	return strings.ReplaceAll(cmd, "curl ", `curl -w '\n%{http_code}\n' `)
}

// runRow runs a status row's commands and checks their answers.
func (e *readmeEnv) runRow(t *testing.T, ctx context.Context, r statusRow) {
	ports := e.ports
	defer func() { e.ports = ports }()
	var out strings.Builder
	for _, c := range r.commands {
		if strings.HasPrefix(c, "bin/eventproc ") {
			e.ports = e.startSecondSink(t, ctx, c)
			continue
		}
		cmd := exec.CommandContext(ctx, "bash", "-c", e.rewrite(t, c))
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%s: %v\n%s", c, err, b)
		}
		out.Write(b)
		out.WriteByte('\n')
	}
	got := out.String()
	statuses := 0
	for _, w := range r.want {
		if status3.MatchString(w) && len(w) == 3 {
			statuses++
			if !hasLine(got, w) {
				t.Errorf("answer %q, want status %s", got, w)
			}
			continue
		}
		if !containsPattern(got, w) {
			t.Errorf("answer %q, want it to contain %q (… stands for anything)", got, w)
		}
	}
	if statuses == 0 {
		want := status3.FindString(r.answer)
		if want == "" {
			t.Fatalf("row %q: no status in its answer %q nor after →", r.situation, r.answer)
		}
		if !hasLine(got, want) && !strings.Contains(got, "HTTP/1.1 "+want+" ") {
			t.Errorf("answer %q, want status %s", got, want)
		}
	}
}

// startSecondSink starts a sink as a row's command says, on free ports,
// until the row ends; it returns the ports with the second sink's.
func (e *readmeEnv) startSecondSink(t *testing.T, ctx context.Context, c string) map[string]string {
	t.Helper()
	args := strings.Fields(strings.TrimPrefix(c, "bin/eventproc "))
	readmePorts := map[string]string{}
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "--http-addr", "--grpc-addr":
			readmePorts[args[i]] = port(args[i+1])
			args[i+1] = "127.0.0.1:0"
		}
	}
	if readmePorts["--http-addr"] == "" || readmePorts["--grpc-addr"] == "" {
		t.Fatalf("%q: a second sink needs ports of its own (--http-addr :8090 --grpc-addr :8091)", c)
	}
	for i, a := range args {
		args[i] = localPort.ReplaceAllStringFunc(a, func(m string) string { return "localhost:" + e.ports[m[len("localhost:"):]] })
	}
	b := startBinary(t, ctx, filepath.Join(e.dir, "eventproc"), `(http|grpc) listening on ([^\s"]+)`,
		append(args, "--shutdown-delay", "0")...)
	addrs := b.wait(ctx)
	t.Cleanup(func() {
		b.terminate()
		b.checkExit(ctx)
	})
	s := &sinkProc{t: t, url: "http://" + addrs["http"], client: &http.Client{Transport: &http.Transport{}}}
	defer s.client.CloseIdleConnections()
	s.waitRoute(ctx, "TYPE_HELLO", true)
	ports := make(map[string]string, len(e.ports)+2)
	for k, v := range e.ports {
		ports[k] = v
	}
	ports[readmePorts["--http-addr"]] = port(addrs["http"])
	ports[readmePorts["--grpc-addr"]] = port(addrs["grpc"])
	return ports
}

// hasLine reports whether s has a line that is exactly line.
func hasLine(s, line string) bool {
	for l := range strings.Lines(s) {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}

// containsPattern reports whether s contains pattern, where … in pattern
// stands for any text.
func containsPattern(s, pattern string) bool {
	parts := strings.Split(pattern, "…")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile("(?s)" + strings.Join(parts, ".*?")).MatchString(s)
}

// section returns the README's text from heading to the next heading of
// its level.
func section(t *testing.T, doc, heading string) string {
	t.Helper()
	_, rest, ok := strings.Cut(doc, "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README.md: no %q", heading)
	}
	level := heading[:strings.IndexByte(heading, ' ')+1]
	body, _, _ := strings.Cut(rest, "\n"+level)
	return body
}

// codeBlocks returns the fenced blocks of lang in text, each with the text
// before it since the previous block.
func codeBlocks(text, lang string) (blocks, before []string) {
	rest := text
	prev := ""
	for {
		head, after, ok := strings.Cut(rest, "```"+lang+"\n")
		if !ok {
			return blocks, before
		}
		body, tail, _ := strings.Cut(after, "```")
		blocks, before = append(blocks, body), append(before, prev+head)
		prev, rest = "", tail
	}
}

// runPubSub runs the pub/sub example: terminal 1 subscribes, terminal 2
// sends, and terminal 1 must show what the README shows.
func (e *readmeEnv) runPubSub(t *testing.T, ctx context.Context, doc string) {
	sec := section(t, doc, "## Pub/sub")
	sh, _ := codeBlocks(sec, "sh")
	if len(sh) == 0 {
		t.Fatal("README.md: no commands under Pub/sub")
	}
	var term1, term2 string
	for line := range strings.Lines(sh[0]) {
		cmd, which, _ := strings.Cut(line, "#")
		switch strings.TrimSpace(which) {
		case "terminal 1":
			term1 = strings.TrimSpace(cmd)
		case "terminal 2":
			term2 = strings.TrimSpace(cmd)
		}
	}
	_, shown, ok := strings.Cut(sec, "Terminal 1 shows")
	if !ok || term1 == "" || term2 == "" {
		t.Fatal("README.md: Pub/sub lacks the two terminals' commands or what terminal 1 shows")
	}
	shownBlocks, _ := codeBlocks(shown, "")
	want := strings.TrimSpace(shownBlocks[0])

	sub := exec.CommandContext(ctx, "bash", "-c", "exec "+localPort.ReplaceAllStringFunc(term1, func(m string) string {
		return "127.0.0.1:" + e.ports[m[len("localhost:"):]]
	}))
	sub.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := newMatchWriter(`(?m)^retry: (\d+)`)
	stderr := newMatchWriter(`^$`) // curl's progress meter, apart
	sub.Stdout, sub.Stderr = out, stderr
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sub.Wait() }()
	defer func() {
		_ = syscall.Kill(-sub.Process.Pid, syscall.SIGTERM)
		<-done
	}()
	select {
	case <-out.ready: // subscribed: the stream has started
	case err := <-done:
		done <- err
		t.Fatalf("terminal 1 ended: %v\n%s%s", err, out, stderr)
	case <-ctx.Done():
		t.Fatal("terminal 1 shows nothing")
	}
	if b, err := exec.CommandContext(ctx, "bash", "-c", e.rewrite(t, term2)).CombinedOutput(); err != nil || !hasLine(string(b), "200") {
		t.Fatalf("terminal 2: %v\n%s", err, b)
	}
	// Wait for the event terminal 2 sent (its data line, whole), then
	// compare.
	sent := regexp.MustCompile(`(?m)^data: .*"payload":"hi".*\n`)
	for !sent.MatchString(out.String()) {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("terminal 1 ended (%v) showing %q, want %q", err, out, want)
		case <-ctx.Done():
			t.Fatalf("terminal 1 shows %q, want %q", out, want)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if !containsPattern(out.String(), want) {
		t.Errorf("terminal 1 shows %q, want %q (… stands for anything)", out, want)
	}
}

var grpcurlLine = regexp.MustCompile(`^grpcurl -plaintext -d '([^']*)' localhost:8081 ([\w.]+)/(\w+)$`)

// runGRPCurlLines makes the requests of the grpcurl lines under "gRPC
// clients" with a Go client: the request JSON into the method's request
// message, a unary call or a server stream that must deliver an event
// (which the test sends over HTTP once it is subscribed).
func runGRPCurlLines(t *testing.T, ctx context.Context, doc, grpcAddr string, s *sinkProc) {
	sh, _ := codeBlocks(section(t, doc, "## gRPC clients"), "sh")
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	n := 0
	for _, block := range sh {
		for line := range strings.Lines(block) {
			line = strings.TrimSpace(line)
			if !strings.HasPrefix(line, "grpcurl ") {
				continue
			}
			m := grpcurlLine.FindStringSubmatch(line)
			if m == nil {
				t.Errorf("README.md: grpcurl line %q: want grpcurl -plaintext -d '<json>' localhost:8081 <service>/<method>", line)
				continue
			}
			n++
			callLikeGRPCurl(t, ctx, conn, m[1], m[2], m[3], s)
		}
	}
	if n == 0 {
		t.Error("README.md: no grpcurl lines under gRPC clients")
	}
}

func callLikeGRPCurl(t *testing.T, ctx context.Context, conn *grpc.ClientConn, reqJSON, service, method string, s *sinkProc) {
	t.Helper()
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		t.Fatalf("grpcurl %s/%s: %v", service, method, err)
	}
	md := d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(method))
	if md == nil {
		t.Fatalf("grpcurl %s/%s: no such method", service, method)
	}
	newMsg := func(desc protoreflect.MessageDescriptor) protoreflect.ProtoMessage {
		mt, err := protoregistry.GlobalTypes.FindMessageByName(desc.FullName())
		if err != nil {
			t.Fatal(err)
		}
		return mt.New().Interface()
	}
	req, resp := newMsg(md.Input()), newMsg(md.Output())
	if err := protojson.Unmarshal([]byte(reqJSON), req); err != nil {
		t.Fatalf("grpcurl -d %q: %v", reqJSON, err)
	}
	full := "/" + service + "/" + method
	if !md.IsStreamingServer() {
		if err := conn.Invoke(ctx, full, req, resp); err != nil {
			t.Errorf("%s %s: %v", full, reqJSON, err)
		}
		return
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := conn.NewStream(sctx, &grpc.StreamDesc{ServerStreams: true}, full)
	if err == nil {
		err = st.SendMsg(req)
	}
	if err == nil {
		err = st.CloseSend()
	}
	if err == nil {
		_, err = st.Header() // subscribed
	}
	if err != nil {
		t.Fatalf("%s %s: %v", full, reqJSON, err)
	}
	if r, body := s.post(ctx, `{"type":"TYPE_HELLO","payload":"for the subscriber"}`); r.StatusCode != http.StatusOK {
		t.Fatalf("POST: %d %s", r.StatusCode, body)
	}
	for {
		if err := st.RecvMsg(resp); err != nil {
			t.Fatalf("%s %s: %v", full, reqJSON, err)
		}
		b, _ := protojson.Marshal(resp)
		if bytes.Contains(b, []byte(`"for the subscriber"`)) {
			return
		}
	}
}

// goHarness is the comment before a Go snippet: a Go file in which the
// line SNIPPET stands for the snippet.
var goHarness = regexp.MustCompile(`(?s)<!-- readme-test: go\n(.*?)-->\s*$`)

// checkGoSnippets writes every Go snippet of the README, in its harness,
// into a package of the module and builds and vets it.
func checkGoSnippets(t *testing.T, doc string) {
	blocks, before := codeBlocks(doc, "go")
	if len(blocks) == 0 {
		t.Fatal("README.md: no Go snippets")
	}
	// Inside the module, so that it builds with the module's packages; a
	// name starting with _ keeps it out of ./... patterns.
	dir, err := os.MkdirTemp("..", "_readme_snippets_")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for i, b := range blocks {
		m := goHarness.FindStringSubmatch(before[i])
		if m == nil {
			t.Errorf("README.md: Go snippet %d (%.60q) has no <!-- readme-test: go … --> harness before it", i+1, b)
			continue
		}
		src := strings.Replace(m[1], "SNIPPET\n", b, 1)
		if src == m[1] {
			t.Errorf("README.md: the harness of Go snippet %d has no SNIPPET line", i+1)
			continue
		}
		src = "// Code from README.md, written by TestREADMEExamples.\n\npackage snippets\n\n" + src
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("snippet%d.go", i+1)), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	vet := exec.CommandContext(ctx, "go", "vet", "./"+filepath.Base(dir))
	vet.Dir = ".."
	var out bytes.Buffer
	vet.Stdout, vet.Stderr = &out, &out
	if err := vet.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
		t.Errorf("the README's Go snippets do not build: go vet: %v\n%s", err, out.String())
		for i := range blocks {
			if b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("snippet%d.go", i+1))); err == nil {
				t.Logf("snippet%d.go:\n%s", i+1, b)
			}
		}
	}
}
