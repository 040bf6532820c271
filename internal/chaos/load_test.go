//go:build unix

package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"
)

// via is the API a request went through.
type via int

const (
	viaHTTP   via = iota // POST /v1/events
	viaStream            // SinkService.Stream
	numVia
)

func (v via) String() string {
	switch v {
	case viaHTTP:
		return "HTTP"
	case viaStream:
		return "Stream"
	}
	return fmt.Sprintf("via(%d)", int(v))
}

// record is what the test saw of one request.
type record struct {
	via     via
	stream  int // Stream: which client stream (1-based); 0 for HTTP
	worker  int
	payload string // unique over the run
	// id is the event id the client chose (Stream); "" when the sink
	// assigns it (HTTP).
	id    string
	start time.Time
	end   time.Time
	// status is the HTTP status; 0 when err is set. A Stream answer's
	// gRPC code is mapped as the HTTP gateway maps it (OK 200,
	// UNAVAILABLE 503, DEADLINE_EXCEEDED 504, ...), a reply with another
	// outcome to 204 or 202.
	status int
	// err is a transport error, the client-side timeout, an unreadable
	// body or a broken Stream: the request got no (complete) answer.
	err string
	// From a 200 answer: the reply event's id, payload and processed_by.
	replyID     string
	echoed      string
	processedBy string
	// body is the start of an answer that is not a well-formed 200, for
	// the failure message.
	body string
}

func (r *record) latency() time.Duration { return r.end.Sub(r.start) }

// loadGen keeps closed-loop load on the sink's HTTP API: each worker sends
// one event, waits for its answer, and sends the next.
type loadGen struct {
	url    string // POST target
	client *http.Client
	// grpcTimeout is the Grpc-Timeout header of every request (the
	// deadline the sink must answer within); clientTimeout the much longer
	// client-side bound that detects hangs.
	grpcTimeout   string
	clientTimeout time.Duration
	runID         string // makes payloads unique across runs too
}

func newLoadGen(httpAddr string, workers int, deadline, clientTimeout time.Duration) *loadGen {
	return &loadGen{
		url: "http://" + httpAddr + "/v1/events",
		client: &http.Client{Transport: &http.Transport{
			MaxIdleConns:        workers,
			MaxIdleConnsPerHost: workers,
			DisableCompression:  true,
		}},
		grpcTimeout:   grpcTimeout(deadline),
		clientTimeout: clientTimeout,
		runID:         fmt.Sprintf("%x", time.Now().UnixNano()&0xffffff),
	}
}

// run runs workers until stop is closed or ctx ends, then returns every
// request's record, ordered by start time.
func (g *loadGen) run(ctx context.Context, workers int, stop <-chan struct{}) []record {
	perWorker := make([][]record, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				perWorker[w] = append(perWorker[w], g.send(ctx, w, seq))
			}
		})
	}
	wg.Wait()
	var all []record
	for _, rs := range perWorker {
		all = append(all, rs...)
	}
	slices.SortFunc(all, func(a, b record) int { return a.start.Compare(b.start) })
	return all
}

// send sends one event and records its answer.
func (g *loadGen) send(ctx context.Context, worker, seq int) record {
	r := record{worker: worker, payload: fmt.Sprintf("%s-w%02d-%07d", g.runID, worker, seq)}
	body, _ := json.Marshal(map[string]string{"type": "TYPE_HELLO", "payload": r.payload})
	ctx, cancel := context.WithTimeout(ctx, g.clientTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.url, bytes.NewReader(body))
	if err != nil {
		panic(err) // the URL is ours
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Grpc-Timeout", g.grpcTimeout)

	r.start = time.Now()
	resp, err := g.client.Do(req)
	if err != nil {
		r.end = time.Now()
		r.err = err.Error()
		return r
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	r.end = time.Now()
	if err != nil {
		r.err = fmt.Sprintf("HTTP %d, reading the body: %v", resp.StatusCode, err)
		return r
	}
	r.status = resp.StatusCode
	if r.status != http.StatusOK {
		r.body = snippet(data)
		return r
	}
	var reply struct {
		ID       string            `json:"id"`
		Payload  json.RawMessage   `json:"payload"`
		Metadata map[string]string `json:"metadata"`
	}
	if err := json.Unmarshal(data, &reply); err != nil {
		r.body = snippet(data)
		return r
	}
	r.replyID = reply.ID
	r.processedBy = reply.Metadata["processed_by"]
	if json.Unmarshal(reply.Payload, &r.echoed) != nil {
		r.echoed = "(not a string) " + snippet(reply.Payload)
	}
	return r
}

// grpcTimeout writes d in the syntax of the Grpc-Timeout header: "1S" for
// one second, "1500m" for 1.5 seconds.
func grpcTimeout(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%dS", d/time.Second)
	}
	return fmt.Sprintf("%dm", d.Milliseconds())
}

// dumpRecords writes records to path as JSON lines, times in seconds since
// start.
func dumpRecords(path string, records []record, start time.Time) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for i := range records {
		r := &records[i]
		if err := enc.Encode(map[string]any{
			"via": r.via.String(), "stream": r.stream, "worker": r.worker, "payload": r.payload, "id": r.id,
			"start": r.start.Sub(start).Seconds(), "end": r.end.Sub(start).Seconds(),
			"status": r.status, "err": r.err, "processed_by": r.processedBy,
			"echoed": r.echoed, "reply_id": r.replyID, "body": r.body,
		}); err != nil {
			return err
		}
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func snippet(b []byte) string {
	const n = 200
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
