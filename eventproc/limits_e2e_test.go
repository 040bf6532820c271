//go:build unix

package main

import (
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestSlowBodiesCut reproduces the report "a client that sends its
// request body one byte every few seconds holds a connection forever",
// bounded: 500 connections to the real eventproc binary each send their
// headers and one byte of body, then nothing. Every one is answered 408
// and closed within the body read timeout plus slack, and the HTTP
// listener's open-connection gauge returns to where it was.
func TestSlowBodiesCut(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	t.Parallel()
	const (
		n       = 500
		timeout = time.Second
		slack   = 5 * time.Second // 2 shared cores, -race
	)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < 3*n {
		t.Skipf("open-file limit %d is too low for %d connections on both ends", lim.Cur, n)
	}
	dir := buildBinaries(t)

	ctx := testContext(t)
	sink := startBinary(t, ctx, filepath.Join(dir, "eventproc"), `(http|grpc) listening on ([^\s"]+)`,
		"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--route", "hello="+deadAddr(t),
		"--body-read-timeout", timeout.String())
	httpAddr := sink.wait(ctx)["http"]
	// A connection per scrape, so that the scrapes hold none in between.
	scraper := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	metric := func(re *regexp.Regexp) float64 {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/metrics", nil)
		resp, err := scraper.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		m := re.FindSubmatch(body)
		if m == nil {
			t.Fatalf("/metrics has no %s", re)
		}
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		return v
	}
	openConns := regexp.MustCompile(`(?m)^eventproc_connections_open\{listener="http"\} (\S+)$`)
	cut := regexp.MustCompile(`(?m)^eventproc_http_requests_cut_total\{reason="body_read_timeout"\} (\S+)$`)
	baseline := metric(openConns) // the scrape's own connection

	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var slowest time.Duration
	for i := range n {
		wg.Go(func() {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "tcp", httpAddr)
			if err != nil {
				t.Errorf("client %d: %v", i, err)
				return
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(timeout + slack))
			if _, err := io.WriteString(conn, "POST /v1/events HTTP/1.1\r\nHost: sink\r\n"+
				"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"); err != nil {
				t.Errorf("client %d: %v", i, err)
				return
			}
			sent := time.Now()
			answer, err := io.ReadAll(conn) // until the sink closes the connection
			took := time.Since(sent)
			if err != nil || !strings.HasPrefix(string(answer), "HTTP/1.1 408 ") {
				t.Errorf("client %d after %v: %q, %v; want 408 and the connection closed", i, took, answer, err)
				return
			}
			mu.Lock()
			slowest = max(slowest, took)
			mu.Unlock()
		})
	}
	wg.Wait()
	t.Logf("%d stalled bodies cut in %v; slowest %v after its byte (timeout %v)", n, time.Since(start), slowest, timeout)
	if t.Failed() {
		return
	}
	if got := metric(cut); got != n {
		t.Errorf("eventproc_http_requests_cut_total{reason=\"body_read_timeout\"} = %v, want %d", got, n)
	}
	for got := metric(openConns); got != baseline; got = metric(openConns) {
		select {
		case <-ctx.Done():
			t.Fatalf("eventproc_connections_open{listener=\"http\"} = %v, want %v again", got, baseline)
		case <-time.After(10 * time.Millisecond):
		}
	}
	sink.terminate()
	sink.checkExit(ctx)
}
