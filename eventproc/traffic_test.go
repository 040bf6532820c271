package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"
)

// traffic posts events to a sink from one goroutine until stopped, so that
// the console's charts have something to draw: HELLO and GOODBYE at a rate
// that rises and falls, and, with errors, now and then an event whose
// deadline has passed (DEADLINE_EXCEEDED).
type traffic struct {
	stop func()
	wg   sync.WaitGroup
	mu   sync.Mutex
	sent int
	errs []error
}

// startTraffic starts posting to s; call stop to end it.
func startTraffic(ctx context.Context, s *sinkProc, errors bool) *traffic {
	ctx, cancel := context.WithCancel(ctx)
	tr := &traffic{stop: cancel}
	tr.wg.Go(func() {
		start := time.Now()
		for i := 0; ctx.Err() == nil; i++ {
			typ := "TYPE_HELLO"
			if i%3 == 2 {
				typ = "TYPE_GOODBYE"
			}
			body := fmt.Sprintf(`{"type":%q,"payload":{"n":%d},"metadata":{"source":"traffic"}}`, typ, i)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/v1/events", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if errors && i%9 == 4 {
				req.Header.Set("Request-Timeout", "1ns")
			}
			resp, err := s.client.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			tr.mu.Lock()
			if err != nil && ctx.Err() == nil {
				tr.errs = append(tr.errs, err)
			}
			tr.sent++
			tr.mu.Unlock()
			// 8 to 40 events/s, in a 40-second wave.
			rate := 24 + 16*math.Sin(time.Since(start).Seconds()*2*math.Pi/40)
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(float64(time.Second) / rate)):
			}
		}
	})
	return tr
}

// end stops the traffic and returns how many events it sent and the
// transport errors it met.
func (tr *traffic) end() (int, []error) {
	tr.stop()
	tr.wg.Wait()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.sent, tr.errs
}
