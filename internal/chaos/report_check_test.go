//go:build unix

package chaos

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestAnalyse checks the checks: each bad record below must be reported,
// and a clean run must not be.
func TestAnalyse(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	c := cycle{n: 1, kill: at(1), aExited: at(1.01), restart: at(2.98), aListening: at(3), stop: at(5), cont: at(8.5), end: at(10.5)}
	cfg := config{clients: 1, streamClients: 1, streams: 1, slack: 500 * time.Millisecond, recover: time.Second, grace: 300 * time.Millisecond, detectIn: 2500 * time.Millisecond, goMargin: 10, rssMargin: 1 << 20}
	ok := func(start float64, by string, id string) record {
		return record{payload: id, start: at(start), end: at(start + 0.005), status: http.StatusOK, processedBy: by, echoed: id, replyID: "r-" + id}
	}
	// A clean run: both replicas before, B alone while A is dead, A back
	// at once, A alone while B is frozen, B back after SIGCONT.
	clean := []record{
		ok(0.5, "A", "1"), ok(0.6, "B", "2"),
		ok(1.5, "B", "3"), ok(2.5, "B", "4"),
		ok(3.1, "A", "5"), ok(4, "B", "6"),
		ok(5.5, "A", "7"), ok(8, "A", "8"),
		{payload: "9", start: at(5.001), end: at(6.002), status: http.StatusGatewayTimeout},
		ok(8.6, "B", "10"), ok(9, "A", "11"),
		{payload: "12", start: at(0.99), end: at(1.02), status: http.StatusServiceUnavailable},
	}
	// The same over SinkService.Stream, where the client sets the ids.
	for _, r := range clean[:len(clean):len(clean)] {
		r.via, r.stream, r.payload = viaStream, 1, "s"+r.payload
		r.id = "id-" + r.payload
		if r.status == http.StatusOK {
			r.echoed, r.replyID = r.payload, r.id
		}
		clean = append(clean, r)
	}
	stream := func(r record) record {
		r.via, r.stream, r.id = viaStream, 1, "id-"+r.payload
		if r.replyID != "" {
			r.replyID = r.id
		}
		return r
	}
	stats := sinkStats{source: "/metrics", goroutines: 40, rss: 1 << 24}
	rep := analyse(cfg, clean, nil, []cycle{c}, t0, at(10.5), stats, stats)
	if len(rep.failures) > 0 {
		t.Fatalf("clean run: failures %q", rep.failures)
	}
	if rep.by[viaHTTP].total != 12 || rep.by[viaStream].total != 12 || len(rep.cycles) != 2 {
		t.Fatalf("clean run: %d HTTP and %d Stream requests, %d cycle results; want 12, 12 and 2",
			rep.by[viaHTTP].total, rep.by[viaStream].total, len(rep.cycles))
	}
	if sum := rep.summary(); !strings.Contains(sum, "  HTTP   12; 200: 10") || !strings.Contains(sum, "  Stream 12; 200: 10") {
		t.Errorf("clean run: summary without the HTTP and Stream counts:\n%s", sum)
	}

	tests := []struct {
		name   string
		change func([]record) []record
		after  func(*sinkStats)
		want   string // part of a failure; "" for none
	}{
		{"transport error", func(rs []record) []record {
			return append(rs, record{payload: "x", start: at(0.7), end: at(5.7), err: "context deadline exceeded"})
		}, nil, "no answer"},
		{"500", func(rs []record) []record {
			return append(rs, record{payload: "x", start: at(0.7), end: at(0.71), status: 500})
		}, nil, "status 500"},
		{"late", func(rs []record) []record {
			return append(rs, record{payload: "x", start: at(0.7), end: at(2.3), status: http.StatusGatewayTimeout})
		}, nil, "after its 1s deadline"},
		{"another's payload", func(rs []record) []record {
			r := ok(0.7, "A", "x")
			r.echoed = "1"
			return append(rs, r)
		}, nil, "another payload"},
		{"one reply for two requests", func(rs []record) []record {
			r := ok(0.7, "A", "x")
			r.replyID = rs[0].replyID
			return append(rs, r)
		}, nil, "answered two requests"},
		{"unknown replica", func(rs []record) []record { return append(rs, ok(0.7, "", "x")) }, nil, "processed_by"},
		{"A answers while dead", func(rs []record) []record { return append(rs, ok(2, "A", "x")) }, nil, "200 from A while A was dead"},
		{"A answers before its listening line is read", func(rs []record) []record {
			return append(rs, ok(2.99, "A", "x"))
		}, nil, ""},
		{"503 while A is dead", func(rs []record) []record {
			return append(rs, record{payload: "x", start: at(2), end: at(2.01), status: http.StatusServiceUnavailable})
		}, nil, "were not answered 200 by B"},
		{"A back late", func(rs []record) []record {
			rs[4] = ok(4.2, "A", "5")
			return rs
		}, nil, "first 200 from the restarted A came"},
		{"B still used after detection", func(rs []record) []record {
			return append(rs, record{payload: "x", start: at(7.6), end: at(8.6), status: http.StatusGatewayTimeout})
		}, nil, "while B was frozen"},
		{"B answers while stopped", func(rs []record) []record { return append(rs, ok(6, "B", "x")) }, nil, "200 from B while B was stopped"},
		{"B never back", func(rs []record) []record { return rs[:9] }, nil, "B served no request"},
		{"goroutines leak", nil, func(s *sinkStats) { s.goroutines = 51 }, "goroutines: 51 after"},
		{"memory grows", nil, func(s *sinkStats) { s.rss += 2 << 20 }, "RSS"},
		{"sink counted more", nil, func(s *sinkStats) { s.events = map[string]float64{"OK": 99} }, "the sink counted"},
		{"requests left in flight", nil, func(s *sinkStats) {
			s.byTarget = map[string]map[string]float64{metricInflight: {"127.0.0.1:1": 0, "127.0.0.1:2": 3}}
		}, "3 requests in flight to 127.0.0.1:2"},

		// The same checks apply to Stream requests, each API on its own.
		{"Stream: no answer", func(rs []record) []record {
			return append(rs, stream(record{payload: "x", start: at(0.7), end: at(5.7), err: "no answer on stream 1 within 5s"}))
		}, nil, "no answer: Stream request x"},
		{"Stream: cancelled", func(rs []record) []record {
			return append(rs, stream(record{payload: "x", start: at(0.7), end: at(0.71), status: 499}))
		}, nil, "status 499"},
		{"Stream: late", func(rs []record) []record {
			return append(rs, stream(record{payload: "x", start: at(0.7), end: at(2.3), status: http.StatusGatewayTimeout}))
		}, nil, "after its 1s deadline"},
		{"Stream: another's payload", func(rs []record) []record {
			r := stream(ok(0.7, "A", "x"))
			r.echoed = "s1"
			return append(rs, r)
		}, nil, "another payload"},
		{"Stream: reply to another event", func(rs []record) []record {
			r := stream(ok(0.7, "A", "x"))
			r.replyID = "id-s1"
			return append(rs, r)
		}, nil, "not its request's"},
		{"Stream: B not used while A is dead", func(rs []record) []record {
			return slices.DeleteFunc(rs, func(r record) bool { return r.payload == "s3" || r.payload == "s4" })
		}, nil, "cycle 1, Stream: no request succeeded on B while A was dead"},
		{"Stream: B never back", func(rs []record) []record {
			return slices.DeleteFunc(rs, func(r record) bool { return r.payload == "s10" })
		}, nil, "cycle 1, Stream: B served no request"},
		{"no Stream requests", func(rs []record) []record {
			return slices.DeleteFunc(rs, func(r record) bool { return r.via == viaStream })
		}, nil, "no Stream requests were sent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := append([]record(nil), clean...)
			if tt.change != nil {
				rs = tt.change(rs)
			}
			before, after := stats, stats
			before.events = map[string]float64{}
			if tt.after != nil {
				tt.after(&after)
			}
			rep := analyse(cfg, rs, nil, []cycle{c}, t0, at(10.5), before, after)
			if tt.want == "" {
				if len(rep.failures) > 0 {
					t.Errorf("failures %q, want none", rep.failures)
				}
				return
			}
			for _, f := range rep.failures {
				if strings.Contains(f, tt.want) {
					return
				}
			}
			t.Errorf("failures %q, want one containing %q", rep.failures, tt.want)
		})
	}

	// Faults of the Stream load, which belong to no request, fail the run.
	for _, f := range []fault{
		{at(3), `stream 1: answer for event id "id-s5", which is not in flight (unknown, answered already, or past the 5s client-side timeout)`},
		{at(4), "stream 2: broke with rpc error: code = Internal desc = x (status Internal) while events were being sent (4 in flight)"},
	} {
		rep := analyse(cfg, clean, []fault{f}, []cycle{c}, t0, at(10.5), stats, stats)
		want := "Stream load at " + rep.at(f.at) + ": " + f.what
		if !slices.Contains(rep.failures, want) {
			t.Errorf("fault %q: failures %q, want %q", f.what, rep.failures, want)
		}
		if !strings.Contains(rep.summary(), "streams ended early): 1") {
			t.Errorf("fault %q: summary does not count it:\n%s", f.what, rep.summary())
		}
	}
}

func TestParseMetrics(t *testing.T) {
	m := parseMetrics([]byte(`# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 42
process_resident_memory_bytes 1.6777216e+07
eventproc_events_total{code="OK",type="TYPE_HELLO"} 10
eventproc_events_total{code="DeadlineExceeded",type="TYPE_HELLO"} 2
eventproc_events_total{code="OK",type="TYPE_GOODBYE"} 7
weird{l="a b"} 3 1700000000
`))
	for _, tt := range []struct {
		name, labels string
		want         float64
	}{
		{"go_goroutines", "", 42},
		{"process_resident_memory_bytes", "", 16777216},
		{"weird", `l="a b"`, 3},
	} {
		if got, ok := m.value(tt.name, tt.labels); !ok || got != tt.want {
			t.Errorf("value(%s, %s) = %v, %v; want %v", tt.name, tt.labels, got, ok, tt.want)
		}
	}
	got := m.byLabel("eventproc_events_total", `type="TYPE_HELLO"`, "code")
	if len(got) != 2 || got["OK"] != 10 || got["DeadlineExceeded"] != 2 {
		t.Errorf("byLabel = %v, want OK 10 and DeadlineExceeded 2", got)
	}
	if got := m.byLabel("absent", "", "code"); got != nil {
		t.Errorf("byLabel(absent) = %v, want nil", got)
	}
}
