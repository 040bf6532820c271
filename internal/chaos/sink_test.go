//go:build unix

package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// sinkAPI reads the sink's health and metrics endpoints.
type sinkAPI struct {
	base   string // http://host:port
	pid    int
	client *http.Client // no keep-alive: leaves no connection (and goroutine) open in the sink
}

func newSinkAPI(httpAddr string, pid int) *sinkAPI {
	return &sinkAPI{
		base:   "http://" + httpAddr,
		pid:    pid,
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second},
	}
}

func (s *sinkAPI) get(ctx context.Context, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+path, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// readiness is the part of the /readyz body the test reads.
type readiness struct {
	Ready  bool `json:"ready"`
	Routes []struct {
		Type    string `json:"type"`
		Targets []struct {
			Target      string `json:"target"`
			LiveStreams int    `json:"live_streams"`
			Streams     int    `json:"streams"`
		} `json:"targets"`
	} `json:"routes"`
}

// waitAllLive polls /readyz until it answers 200 and every target of every
// route has all its streams live, or ctx ends.
func (s *sinkAPI) waitAllLive(ctx context.Context) error {
	var last string
	for {
		code, body, err := s.get(ctx, "/readyz")
		if err == nil && code == http.StatusOK {
			var r readiness
			if err := json.Unmarshal(body, &r); err != nil {
				return fmt.Errorf("/readyz body %q: %v", body, err)
			}
			if r.allLive() {
				return nil
			}
		}
		last = fmt.Sprintf("%d %s (err %v)", code, bytes.TrimSpace(body), err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for every target to be live: %w; last /readyz: %s", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (r *readiness) allLive() bool {
	if !r.Ready || len(r.Routes) == 0 {
		return false
	}
	for _, rt := range r.Routes {
		for _, tg := range rt.Targets {
			if tg.LiveStreams == 0 || tg.LiveStreams < tg.Streams {
				return false
			}
		}
	}
	return true
}

// sinkStats is a sample of the sink's resource use.
type sinkStats struct {
	// source is "/metrics", or "/proc" when the sink has no Prometheus
	// endpoint (then goroutines holds the OS thread count instead).
	source     string
	goroutines float64
	rss        float64 // bytes
	// events counts eventproc_events_total{type="TYPE_HELLO"} by code;
	// nil without the metric.
	events map[string]float64
	// byTarget holds per-target sink metrics (inflight, reconnects,
	// dropped replies), by metric name and then target; empty without
	// them.
	byTarget map[string]map[string]float64
}

// Per-target sink metrics the test reads.
const (
	metricInflight   = "eventproc_inflight_requests"
	metricReconnects = "eventproc_stream_reconnects_total"
	metricDropped    = "eventproc_dropped_replies_total"
)

func (st sinkStats) goroutineLabel() string {
	if st.source == "/proc" {
		return "OS threads"
	}
	return "goroutines"
}

// stats samples the sink: its /metrics when it has them, else
// /proc/PID/status.
func (s *sinkAPI) stats(ctx context.Context) (sinkStats, error) {
	code, body, err := s.get(ctx, "/metrics")
	if err == nil && code == http.StatusOK {
		m := parseMetrics(body)
		g, okG := m.value("go_goroutines", "")
		rss, okR := m.value("process_resident_memory_bytes", "")
		if okG && okR {
			st := sinkStats{
				source: "/metrics", goroutines: g, rss: rss,
				events:   m.byLabel("eventproc_events_total", `type="TYPE_HELLO"`, "code"),
				byTarget: make(map[string]map[string]float64),
			}
			for _, name := range []string{metricInflight, metricReconnects, metricDropped} {
				if v := m.byLabel(name, "", "target"); v != nil {
					st.byTarget[name] = v
				}
			}
			return st, nil
		}
	}
	return s.procStats()
}

// procStats reads VmRSS and Threads from /proc/PID/status.
func (s *sinkAPI) procStats() (sinkStats, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", s.pid))
	if err != nil {
		return sinkStats{}, err
	}
	defer f.Close()
	st := sinkStats{source: "/proc"}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			st.rss = n * 1024 // kB
		case "Threads":
			st.goroutines = n
		}
	}
	return st, sc.Err()
}

// metrics is a parsed Prometheus text exposition: series (name and labels
// as written) to value.
type metrics map[string]float64

func parseMetrics(b []byte) metrics {
	m := make(metrics)
	for line := range strings.SplitSeq(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		series, rest := line, ""
		if i := strings.LastIndexByte(line, '}'); i >= 0 {
			series, rest = line[:i+1], line[i+1:]
		} else if i := strings.IndexByte(line, ' '); i >= 0 {
			series, rest = line[:i], line[i:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(fields[0], 64); err == nil {
			m[series] = v
		}
	}
	return m
}

// value returns the series name{labels}, or name alone when labels is "".
func (m metrics) value(name, labels string) (float64, bool) {
	if labels != "" {
		name += "{" + labels + "}"
	}
	v, ok := m[name]
	return v, ok
}

// byLabel sums the series of name that have label match, by the value of
// label key; nil when there are none.
func (m metrics) byLabel(name, match, key string) map[string]float64 {
	re := regexp.MustCompile(regexp.QuoteMeta(key) + `="([^"]*)"`)
	var out map[string]float64
	for series, v := range m {
		if !strings.HasPrefix(series, name+"{") || !strings.Contains(series, match) {
			continue
		}
		k := ""
		if sm := re.FindStringSubmatch(series); sm != nil {
			k = sm[1]
		}
		if out == nil {
			out = make(map[string]float64)
		}
		out[k] += v
	}
	return out
}
