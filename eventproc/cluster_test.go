//go:build unix

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// natsNode is one node of a JetStream cluster run in this process.
type natsNode struct {
	srv *natsserver.Server
	url string
}

// clusterTempl is a node's configuration, as nats-server's own tests
// write it (server/jetstream_helpers_test.go, jsClusterTempl): a random
// client port, the cluster routes on loopback, the store in a test
// directory.
const clusterTempl = `
listen: 127.0.0.1:-1
server_name: %s
jetstream: {max_mem_store: 64MB, max_file_store: 1GB, store_dir: '%s'}
cluster {
	name: eventproc-test
	listen: 127.0.0.1:%d
	routes = [%s]
}
`

// startNATSCluster runs a JetStream cluster of n nodes and waits until it
// has a meta leader and every node is current. Each node is shut down
// when the test ends.
func startNATSCluster(ctx context.Context, t *testing.T, n int) []*natsNode {
	t.Helper()
	// Reserve the cluster ports; each is freed just before its node
	// binds it, and every node routes to all of them.
	lis := make([]net.Listener, n)
	routes := make([]string, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lis[i] = l
		routes[i] = "nats-route://" + l.Addr().String()
	}
	nodes := make([]*natsNode, n)
	for i := range n {
		dir := t.TempDir()
		port := lis[i].Addr().(*net.TCPAddr).Port
		conf := filepath.Join(dir, "nats.conf")
		text := fmt.Sprintf(clusterTempl, fmt.Sprint("n", i+1), filepath.Join(dir, "js"), port, strings.Join(routes, ", "))
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		opts, err := natsserver.ProcessConfigFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		opts.NoSigs, opts.NoLog = true, true
		ns, err := natsserver.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		lis[i].Close()
		ns.Start()
		t.Cleanup(func() {
			ns.Shutdown()
			ns.WaitForShutdown()
		})
		if !ns.ReadyForConnections(10 * time.Second) {
			t.Fatalf("NATS node %d not ready", i+1)
		}
		nodes[i] = &natsNode{srv: ns, url: ns.ClientURL()}
	}
	poll(ctx, t, "a JetStream meta leader with every node as a peer, every node current", func() bool {
		leaders := 0
		for _, nd := range nodes {
			if nd.srv.JetStreamIsLeader() {
				if len(nd.srv.JetStreamClusterPeers()) != n {
					return false
				}
				leaders++
			}
			if !nd.srv.JetStreamIsCurrent() {
				return false
			}
		}
		return leaders == 1
	})
	return nodes
}

// poll checks cond every 10ms until it holds, or fails the test at ctx's
// end.
func poll(ctx context.Context, t *testing.T, what string, cond func() bool, detail ...*string) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			if len(detail) > 0 {
				what += " (" + *detail[0] + ")"
			}
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// metricSum sums the samples of the metric name (every label set) in a
// Prometheus text exposition.
func metricSum(body []byte, name string) float64 {
	var sum float64
	for line := range strings.Lines(string(body)) {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) > 0 {
			v, _ := strconv.ParseFloat(f[0], 64)
			sum += v
		}
	}
	return sum
}

// clusterDurableMetrics are the durable counters read from a sink.
var clusterDurableMetrics = []string{
	"eventproc_durable_stored_total", "eventproc_durable_delivered_total", "eventproc_durable_deliveries_again_total",
	"eventproc_durable_redelivered_total", "eventproc_durable_dead_lettered_total", "eventproc_durable_store_errors_total",
}

// TestClusterUnderFaults runs a 3-node JetStream cluster in this process,
// two real eventproc sinks using it (--nats-url with the 3 nodes,
// --nats-replicas 3) and a processor that records every delivery. Under
// durable load over REST to both sinks, it SIGKILLs one sink (and starts
// it again), shuts down the node leading the durable stream, and kills
// the processor (and serves it again). Then every event answered 202 must
// be delivered at least once, nothing is delivered that was not sent, the
// stream ends empty with no dead letter, and the duplicate deliveries are
// repeats counted by the sinks (eventproc_durable_deliveries_again_total).
func TestClusterUnderFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries, and a NATS cluster")
	}
	t.Parallel()
	dir := buildBinaries(t)
	ctx := testContext(t)
	began := time.Now()
	nodes := startNATSCluster(ctx, t, 3)
	urls := make([]string, len(nodes))
	for i, nd := range nodes {
		urls[i] = nd.url
	}
	t.Logf("NATS cluster ready in %v", time.Since(began).Round(time.Millisecond))

	// The processor records each delivery: the event id and its delivery
	// number (eventproc-delivery).
	var (
		recMu      sync.Mutex
		deliveries = make(map[string][]int)
	)
	plis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proc := newTestProcessor(t, plis.Addr().String())
	proc.record = func(ev *eventv1.Event) {
		n, _ := strconv.Atoi(ev.GetMetadata()["eventproc-delivery"])
		recMu.Lock()
		deliveries[ev.GetId()] = append(deliveries[ev.GetId()], n)
		recMu.Unlock()
	}
	proc.serve(plis)

	const maxPending = 64 // deliveries in flight per sink
	args := []string{"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--route", "hello=" + proc.addr,
		"--durable", "hello", "--nats-url", strings.Join(urls, ","), "--nats-replicas", "3",
		"--timeout", "2s", "--max-pending", strconv.Itoa(maxPending), "--memory-budget", "off", "--shutdown-delay", "0"}
	type sinkSlot struct {
		url     atomic.Pointer[string]
		bin     *binary
		dataDir string
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	start := func(s *sinkSlot) {
		t.Helper()
		b := startBinary(t, ctx, filepath.Join(dir, "eventproc"), `(http|grpc) listening on ([^\s"]+)`,
			append(args, "--data-dir", s.dataDir)...)
		u := "http://" + b.wait(ctx)["http"]
		s.bin = b
		s.url.Store(&u)
	}
	get := func(url, path string) []byte {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s%s: %v", url, path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return body
	}
	sinks := []*sinkSlot{{dataDir: t.TempDir()}, {dataDir: t.TempDir()}}
	// Both at once, as a deployment starts them: two sinks creating the same
	// R3 streams at the same instant on a fresh cluster get no answer
	// (nats-server 2.15.3); the sinks' short first request timeout (1 s)
	// and retry keep that from costing more than a second or two.
	for _, s := range sinks {
		start(s)
	}
	for _, s := range sinks {
		(&sinkProc{t: t, url: *s.url.Load(), client: client}).waitRoute(ctx, "TYPE_HELLO", true)
	}
	ready := time.Since(began)
	t.Logf("sinks ready after %v", ready.Round(time.Millisecond))

	// Durable load: workers per sink post distinct events, with ids they
	// choose, and record every answer.
	const n, workersPerSink = 3000, 3
	type stored struct {
		seq  uint64
		sink int
	}
	var (
		ansMu    sync.Mutex
		accepted = make(map[string]stored) // answered 202
		refused  = make(map[string]int)    // answered another status
		unknown  = make(map[string]error)  // sent, no answer (the sink died)
		notSent  int                       // the sink was not listening
		answered atomic.Int64
		next     atomic.Int64
	)
	post := func(slot int, i int64) {
		id := fmt.Sprint("ev-", i)
		body := fmt.Sprintf(`{"id":%q,"type":"TYPE_HELLO","payload":%d,"metadata":{"act":"consume"}}`, id, i)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, *sinks[slot].url.Load()+"/v1/events", strings.NewReader(body))
		if err != nil {
			t.Error(err)
			return
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		ansMu.Lock()
		defer ansMu.Unlock()
		if err != nil {
			if opErr, ok := errors.AsType[*net.OpError](err); ok && opErr.Op == "dial" {
				notSent++
			} else {
				unknown[id] = err
			}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			unknown[id] = err
			return
		}
		answered.Add(1)
		if resp.StatusCode != http.StatusAccepted {
			refused[id] = resp.StatusCode
			return
		}
		var a struct {
			ID        string `json:"id"`
			Sequence  uint64 `json:"sequence"`
			Duplicate bool   `json:"duplicate"`
		}
		if err := json.Unmarshal(b, &a); err != nil || a.ID != id || a.Sequence == 0 || a.Duplicate {
			t.Errorf("POST %s: 202 %s, want its id, a sequence, not a duplicate", id, b)
			return
		}
		accepted[id] = stored{seq: a.Sequence, sink: slot}
	}
	var load sync.WaitGroup
	for slot := range sinks {
		for range workersPerSink {
			load.Go(func() {
				pace := time.NewTicker(10 * time.Millisecond) // about 600 events/s in all
				defer pace.Stop()
				for ctx.Err() == nil {
					i := next.Add(1)
					if i > n {
						return
					}
					post(slot, i)
					select {
					case <-pace.C:
					case <-ctx.Done():
					}
				}
			})
		}
	}
	waitAnswered := func(k int64) {
		t.Helper()
		poll(ctx, t, fmt.Sprintf("%d answers", k), func() bool { return answered.Load() >= k })
	}

	// Fault 1: SIGKILL sink 0 (its counters read just before), and start
	// it again.
	waitAnswered(n * 15 / 100)
	killedMetrics := get(*sinks[0].url.Load(), "/metrics")
	if err := sinks[0].bin.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-sinks[0].bin.done
	t.Logf("fault: sink 0 SIGKILLed after %d answers", answered.Load())
	start(sinks[0])

	// Fault 2: shut down the node leading the durable stream.
	waitAnswered(n * 35 / 100)
	down := 0
	for i, nd := range nodes {
		if nd.srv.JetStreamIsStreamLeader(natsserver.DEFAULT_GLOBAL_ACCOUNT, "EVENTPROC_DURABLE") {
			down = i
		}
	}
	nodes[down].srv.Shutdown()
	nodes[down].srv.WaitForShutdown()
	t.Logf("fault: NATS node %d (leader of the durable stream) shut down after %d answers", down+1, answered.Load())

	// Fault 3: kill the processor, serve it again once more events came.
	waitAnswered(n * 60 / 100)
	proc.kill()
	t.Logf("fault: processor killed after %d answers", answered.Load())
	waitAnswered(n * 70 / 100)
	proc.restart()
	t.Logf("processor back after %d answers", answered.Load())
	load.Wait()
	loadDone := time.Since(began)

	// Every event answered 202 is delivered.
	ansMu.Lock()
	defer ansMu.Unlock()
	missing := func() []string {
		recMu.Lock()
		defer recMu.Unlock()
		var ids []string
		for id := range accepted {
			if len(deliveries[id]) == 0 {
				ids = append(ids, id)
			}
		}
		return ids
	}
	for ctx.Err() == nil && len(missing()) > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	if m := missing(); len(m) > 0 {
		t.Fatalf("%d of %d events answered 202 were never delivered, such as %v", len(m), len(accepted), m[:min(len(m), 5)])
	}
	allDelivered := time.Since(began)

	// The stream ends empty: nothing acked is left, nothing is left
	// unacked (a redelivery still to come would be), nothing went to the
	// dead letters.
	live := make([]string, 0, len(urls))
	for i, u := range urls {
		if i != down {
			live = append(live, u)
		}
	}
	nc, err := nats.Connect(strings.Join(live, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var last string
	poll(ctx, t, "the durable stream empty", func() bool {
		fail := func(err error) bool {
			if ctx.Err() == nil {
				last = err.Error()
			}
			return false
		}
		st, err := js.Stream(ctx, "EVENTPROC_DURABLE")
		if err != nil {
			return fail(err)
		}
		si, err := st.Info(ctx)
		if err != nil {
			return fail(err)
		}
		ci, err := st.Consumer(ctx, "eventproc-TYPE_HELLO")
		if err != nil {
			return fail(err)
		}
		info, err := ci.Info(ctx)
		if err != nil {
			return fail(err)
		}
		last = fmt.Sprintf("%d messages, %d pending, %d unacked", si.State.Msgs, info.NumPending, info.NumAckPending)
		return si.State.Msgs == 0 && info.NumPending == 0 && info.NumAckPending == 0
	}, &last)
	if dead, err := js.Stream(ctx, "EVENTPROC_DEAD"); err != nil {
		t.Errorf("dead letters: %v", err)
	} else if info, err := dead.Info(ctx); err != nil || info.State.Msgs != 0 {
		t.Errorf("dead letters: %v, %v; want none", info.State, err)
	}

	// Nothing phantom: each delivery is of an event sent, and an event
	// refused is not delivered (except after a 504: it may be stored).
	recMu.Lock()
	defer recMu.Unlock()
	bySeq := make(map[uint64]string, len(accepted))
	for id, a := range accepted {
		if other, ok := bySeq[a.seq]; ok {
			t.Errorf("events %s and %s were both answered sequence %d", id, other, a.seq)
		}
		bySeq[a.seq] = id
	}
	dups, repeats, deliveredUnknown := 0, 0, 0
	codes := make(map[int]int)
	for _, c := range refused {
		codes[c]++
	}
	for id, nums := range deliveries {
		_, ok := accepted[id]
		_, maybe := unknown[id]
		switch c := refused[id]; {
		case ok:
		case maybe:
			deliveredUnknown++
		case c == http.StatusGatewayTimeout:
		case c != 0:
			t.Errorf("event %s answered %d was delivered (deliveries %v)", id, c, nums)
		default:
			t.Errorf("phantom: event %s delivered, never sent (deliveries %v)", id, nums)
		}
		dups += len(nums) - 1
		firsts := 0
		for _, k := range nums {
			switch {
			case k > 1:
				repeats++
			case k == 1:
				firsts++
			default:
				t.Errorf("event %s delivered without eventproc-delivery (%v)", id, nums)
			}
		}
		if firsts > 1 {
			t.Errorf("event %s delivered %d times as a first delivery (%v): stored twice?", id, firsts, nums)
		}
	}

	// Duplicates are repeats, and repeats are the deliveries the sinks
	// counted as received again: by the live sinks, and by the killed one
	// before it died (plus what it could fetch between the reading and the
	// kill).
	sum := func(name string) float64 {
		v := metricSum(killedMetrics, name)
		for _, s := range sinks {
			v += metricSum(get(*s.url.Load(), "/metrics"), name)
		}
		return v
	}
	var counted []string
	for _, name := range clusterDurableMetrics {
		counted = append(counted, fmt.Sprintf("%s=%v", strings.TrimPrefix(name, "eventproc_durable_"), sum(name)))
	}
	again := int(sum("eventproc_durable_deliveries_again_total"))
	if repeats > again+maxPending {
		t.Errorf("the processor saw %d repeated deliveries, the sinks counted %d received again (+%d in flight at the kill)",
			repeats, again, maxPending)
	}
	if dups > repeats {
		t.Errorf("%d duplicate deliveries but only %d repeats", dups, repeats)
	}
	t.Logf("sent %d: %d answered 202, %d refused %v, %d without an answer (%d of them delivered), %d not sent (sink down)",
		n, len(accepted), len(refused), codes, len(unknown), deliveredUnknown, notSent)
	t.Logf("delivered %d distinct events, %d duplicate deliveries, %d repeats; sinks counted: %s",
		len(deliveries), dups, repeats, strings.Join(counted, " "))
	t.Logf("load done at %v, all delivered at %v, stream empty at %v (%s)", loadDone.Round(time.Millisecond),
		allDelivered.Round(time.Millisecond), time.Since(began).Round(time.Millisecond), last)
	if len(accepted) < n/2 {
		t.Errorf("only %d of %d events answered 202", len(accepted), n)
	}

	for _, s := range sinks {
		s.bin.terminate()
	}
	for _, s := range sinks {
		s.bin.checkExit(ctx)
	}
}
