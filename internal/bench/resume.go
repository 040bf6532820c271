package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// scResume is the SSE-resume scenario: two sinks share one NATS (the
// first's embedded server, on --nats-listen), and a processor publishes a
// copy of every event it gets. A Server-Sent Events client reads the first
// half of the published events on sink A, then reconnects to sink B with
// Last-Event-ID and reads the rest there.
const scResume = "resume"

// resumeEvents is how many events the resume scenario publishes.
const resumeEvents = 2000

// resumeResult is the outcome of the resume scenario.
type resumeResult struct {
	events int // published
	onA    int // read on sink A before moving
	onB    int // read on sink B after resuming
	// exact: B gave every event after A's last, once each, in stream
	// order, and none before it.
	exact bool
	// first and all are how long B took, from the request, to deliver the
	// first resumed event and the last.
	first, all time.Duration
	err        error
}

// sseEvent is one Server-Sent Event: its id and the event's payload.
type sseEvent struct {
	id      string
	payload int
}

// sseReader reads events from a Server-Sent Events stream.
type sseReader struct {
	sc *bufio.Scanner
}

// next returns the next event, skipping comments and other kinds.
func (r *sseReader) next() (sseEvent, error) {
	var ev sseEvent
	var data []byte
	for r.sc.Scan() {
		line := r.sc.Bytes()
		switch {
		case len(line) == 0:
			if data != nil {
				var e struct {
					Payload int `json:"payload"`
				}
				if err := json.Unmarshal(data, &e); err != nil {
					return ev, fmt.Errorf("event data %q: %w", data, err)
				}
				ev.payload = e.Payload
				return ev, nil
			}
			ev = sseEvent{}
		case bytes.HasPrefix(line, []byte("id: ")):
			ev.id = string(line[len("id: "):])
		case bytes.HasPrefix(line, []byte("event: error")), bytes.HasPrefix(line, []byte("event: missed")),
			bytes.HasPrefix(line, []byte("event: reset")):
			return ev, fmt.Errorf("the stream said %q", line)
		case bytes.HasPrefix(line, []byte("data: ")):
			data = append([]byte(nil), line[len("data: "):]...)
		}
	}
	if err := r.sc.Err(); err != nil {
		return ev, err
	}
	return ev, errors.New("the stream ended")
}

// subscribeSSE opens an SSE subscription to TYPE_HELLO on a sink.
func subscribeSSE(ctx context.Context, client *http.Client, httpAddr, lastEventID string) (*http.Response, *sseReader, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/v1/events:subscribe?types=hello", nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, nil, fmt.Errorf("subscribe on %s: HTTP %d", httpAddr, resp.StatusCode)
	}
	return resp, &sseReader{sc: bufio.NewScanner(resp.Body)}, nil
}

// postPayload posts a hello event with payload n and checks it was
// answered 200.
func postPayload(ctx context.Context, client *http.Client, httpAddr string, n int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+httpAddr+"/v1/events",
		strings.NewReader(`{"type":"TYPE_HELLO","payload":`+strconv.Itoa(n)+`}`))
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

// seqOf is the stream sequence of an id "EPOCH-SEQ".
func seqOf(id string) (uint64, error) {
	i := strings.LastIndexByte(id, '-')
	n, err := strconv.ParseUint(id[i+1:], 10, 64)
	if i < 0 || err != nil {
		return 0, fmt.Errorf("id %q is not EPOCH-SEQ", id)
	}
	return n, nil
}

// resume runs the resume scenario.
func (e *env) resume(ctx context.Context) (r resumeResult) {
	r.events = resumeEvents
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp(e.bins.dir, "resume")
	if err != nil {
		r.err = err
		return r
	}
	p, got, err := startChild("proc", e.bins.proc, []string{"--addr", "127.0.0.1:0", "--shutdown-grace", "1s", "--publish"},
		[]*regexp.Regexp{listeningRE}, startTimeout)
	if err != nil {
		r.err = err
		return r
	}
	defer p.stop()
	route := "hello=" + got[0]
	sinkArgs := []string{"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--route", route, "--shutdown-grace", "1s"}
	a, gotA, err := startChild("eventproc A", e.bins.eventproc,
		append(sinkArgs, "--data-dir", filepath.Join(dir, "a"), "--nats-listen", "127.0.0.1:0"),
		[]*regexp.Regexp{sinkHTTPRE, sinkNATSRE}, startTimeout)
	if err != nil {
		r.err = err
		return r
	}
	defer a.stop()
	b, gotB, err := startChild("eventproc B", e.bins.eventproc,
		append(sinkArgs, "--data-dir", filepath.Join(dir, "b"), "--nats-url", "nats://"+gotA[1]),
		[]*regexp.Regexp{sinkHTTPRE}, startTimeout)
	if err != nil {
		r.err = err
		return r
	}
	defer b.stop()
	for _, addr := range []string{gotA[0], gotB[0]} {
		if err := waitReady(&servers{httpAddr: addr}, startTimeout); err != nil {
			r.err = err
			return r
		}
	}
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	// Subscribe on A, then post the events there; proc publishes each.
	respA, onA, err := subscribeSSE(ctx, client, gotA[0], "")
	if err != nil {
		r.err = err
		return r
	}
	defer respA.Body.Close()
	for i := 1; i <= r.events; i++ {
		if err := postPayload(ctx, client, gotA[0], i); err != nil {
			r.err = fmt.Errorf("posting event %d: %w", i, err)
			return r
		}
	}
	seen := make(map[int]bool, r.events) // payloads read, on A then B
	var last sseEvent
	for r.onA < r.events/2 {
		if last, err = onA.next(); err != nil {
			r.err = fmt.Errorf("sink A, after %d events: %w", r.onA, err)
			return r
		}
		seen[last.payload] = true
		r.onA++
	}
	respA.Body.Close()
	lastSeq, err := seqOf(last.id)
	if err != nil {
		r.err = err
		return r
	}

	// Resume on B after A's last event.
	start := time.Now()
	respB, onB, err := subscribeSSE(ctx, client, gotB[0], last.id)
	if err != nil {
		r.err = err
		return r
	}
	defer respB.Body.Close()
	r.exact = true
	for r.onA+r.onB < r.events {
		ev, err := onB.next()
		if err != nil {
			r.err = fmt.Errorf("sink B, after %d resumed events: %w", r.onB, err)
			return r
		}
		if r.onB == 0 {
			r.first = time.Since(start)
		}
		r.onB++
		seq, err := seqOf(ev.id)
		if err != nil || seq != lastSeq+1 || seen[ev.payload] {
			r.exact = false // a gap, a duplicate or out of order
		}
		lastSeq = seq
		seen[ev.payload] = true
	}
	r.all = time.Since(start)
	return r
}

// resumeTable is the resume scenario's table.
func (r *report) resumeTable() (*table, []targetCheck) {
	if r.resume == nil {
		return nil, nil
	}
	res := r.resume
	t := &table{header: []string{"events", "read on A", "resumed on B", "exact", "first resumed event after", "all after"}}
	if res.err != nil {
		t.add(fmt.Sprint(res.events), "failed", "", "", "", "see notes")
		return t, nil
	}
	t.add(fmt.Sprint(res.events), fmt.Sprint(res.onA), fmt.Sprint(res.onB), fmt.Sprint(res.exact),
		fmtMs(res.first), fmtMs(res.all))
	return t, []targetCheck{{line: "SSE resume on another sink", want: "every later event, once, in order",
		got: fmt.Sprintf("%d of %d", res.onB, res.events-res.onA), ok: res.exact}}
}
