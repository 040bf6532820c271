package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// storeState is a sample of a durable sink's counters
// (eventproc_durable_*_total, read from its /metrics).
type storeState struct {
	stored    uint64 // events stored (answered 202 / OUTCOME_STORED)
	delivered uint64 // events a processor answered and the sink acked
}

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
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return storeState{}, fmt.Errorf("sink metrics: %w", err)
	}
	var st storeState
	for name, into := range map[string]*uint64{
		"eventproc_durable_stored_total":    &st.stored,
		"eventproc_durable_delivered_total": &st.delivered,
	} {
		mf := mfs[name]
		if mf == nil {
			return storeState{}, fmt.Errorf("sink metrics: no %s", name)
		}
		for _, m := range mf.GetMetric() { // one series per durable type
			*into += uint64(m.GetCounter().GetValue())
		}
	}
	return st, nil
}
