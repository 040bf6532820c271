package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/eventproc/eventproc/event/processor"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// TestThousandConnections: 1,000 HTTP clients, each on its own connection,
// all have a request in flight at the same moment — the processor answers
// none until every one has arrived — and every one is served.
func TestThousandConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	const n = 1000
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < 3*n {
		t.Skipf("open-file limit %d is too low for %d connections on both ends", lim.Cur, n)
	}
	ctx := testContext(t)

	var arrived atomic.Int64
	all := make(chan struct{})
	h := processor.HandlerFunc(func(ctx context.Context, ev *eventv1.Event) (*eventv1.Event, error) {
		if arrived.Add(1) == n {
			close(all)
		}
		select {
		case <-all:
			return ev, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pctx, stopProc := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- processor.NewServer(h, processor.Options{Logger: discardLogger()}).Serve(pctx, lis)
	}()
	defer func() {
		stopProc()
		if err := <-served; err != nil {
			t.Errorf("processor: %v", err)
		}
	}()
	s := startSink(t, "--route", "hello="+lis.Addr().String(), "--log-level", "info")
	s.waitRoute(ctx, "TYPE_HELLO", true)

	tr := &http.Transport{MaxIdleConnsPerHost: n}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var conns atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			want := fmt.Sprintf("client-%d", i)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/v1/events",
				strings.NewReader(`{"type":"TYPE_HELLO","payload":"`+want+`"}`))
			resp, err := client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"`+want+`"`) {
				errs <- fmt.Errorf("client %d: %d %s", i, resp.StatusCode, body)
				return
			}
			conns.Add(1)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := arrived.Load(); got != n {
		t.Errorf("processor saw %d requests, want %d", got, n)
	}
	if got := conns.Load(); got != n {
		t.Errorf("%d of %d clients served", got, n)
	}
}
