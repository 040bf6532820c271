package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// storeState is a sample of a durable sink's counters
// (eventproc_durable_*_total, read from its /metrics).
type storeState struct {
	stored    uint64 // events stored (answered 202 / OUTCOME_STORED)
	delivered uint64 // events a processor answered and the sink acked
}

// done is how many events were delivered and acked so far.
func (s storeState) done() uint64 { return s.delivered }

// waiting is how many stored events were not delivered yet.
func (s storeState) waiting() uint64 { return s.stored - min(s.stored, s.delivered) }

// storeWatch reads a durable sink's counters from its /metrics. It reads
// the sink's own view rather than the store's, so that the benchmark runs
// the sink as a user would by default: its embedded store with no port.
type storeWatch struct {
	url    string
	client *http.Client
}

// watchStore reads the counters of the sink serving HTTP at httpURL.
func watchStore(httpURL string) *storeWatch {
	return &storeWatch{url: httpURL + "/metrics", client: &http.Client{Timeout: 5 * time.Second}}
}

// sample reads the counters.
func (w *storeWatch) sample() (storeState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.url, nil)
	if err != nil {
		return storeState{}, err
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return storeState{}, fmt.Errorf("reading the sink's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return storeState{}, fmt.Errorf("reading the sink's metrics: %s", resp.Status)
	}
	var st storeState
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var into *uint64
		switch {
		case strings.HasPrefix(line, "eventproc_durable_stored_total{"):
			into = &st.stored
		case strings.HasPrefix(line, "eventproc_durable_delivered_total{"):
			into = &st.delivered
		default:
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return storeState{}, fmt.Errorf("sink metrics: %q: %w", line, err)
		}
		*into += uint64(v)
		found++
	}
	if err := sc.Err(); err != nil {
		return storeState{}, fmt.Errorf("reading the sink's metrics: %w", err)
	}
	if found < 2 {
		return storeState{}, fmt.Errorf("sink metrics: no eventproc_durable_stored_total and eventproc_durable_delivered_total")
	}
	return st, nil
}
