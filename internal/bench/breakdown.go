package main

import (
	"bufio"
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A CPU profile's samples, grouped by what the time was spent on, so that
// the profiles of different sink paths can be compared at a glance. Each
// sample goes to exactly one group, by the first rule that matches its
// stack, in this order: GC marking, system calls, allocation, scheduler,
// then the codec and transport libraries anywhere on the stack, then the
// nearest library frame from the leaf.

// group names.
const (
	grpGCMark    = "GC: background marking"
	grpSyscall   = "syscalls (socket read/write)"
	grpAlloc     = "allocation (mallocgc, GC assist)"
	grpSched     = "runtime: scheduler, netpoll, futex"
	grpJSON      = "JSON (protojson, eventjson, encoding/json)"
	grpProto     = "protobuf binary codec (protobuf-go, vtcodec, wire checks)"
	grpHTTP2     = "gRPC HTTP/2 transport (framing, flow control)"
	grpGRPC      = "grpc-go calls and streams"
	grpGateway   = "grpc-gateway (mux, context, forward)"
	grpNetHTTP   = "net/http server"
	grpSink      = "sink: dispatch, multiplexer, ingress"
	grpPubSub    = "pubsub hub"
	grpOtherLib  = "other"
	grpOtherTime = "runtime, other"
)

// sample is one stack of a CPU profile, leaf first.
type sample struct {
	value  time.Duration
	frames []string
}

// parseTraces parses the output of `go tool pprof -traces`.
func parseTraces(text string) []sample {
	var out []sample
	var cur *sample
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "-----------+") {
			cur = nil
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if cur == nil {
			// "      10ms   frame" starts a sample.
			d, err := time.ParseDuration(strings.TrimSpace(f[0]))
			if err != nil || len(f) < 2 || !strings.HasPrefix(line, " ") {
				continue
			}
			out = append(out, sample{value: d})
			cur = &out[len(out)-1]
			cur.frames = append(cur.frames, strings.Join(f[1:], " "))
			continue
		}
		cur.frames = append(cur.frames, strings.TrimSpace(line))
	}
	return out
}

func anyFrame(frames []string, prefixes ...string) bool {
	for _, fr := range frames {
		for _, p := range prefixes {
			if strings.HasPrefix(fr, p) {
				return true
			}
		}
	}
	return false
}

// anyVTFrame reports whether a frame is in the code vtprotobuf generated
// for event/v1 (MarshalVT, UnmarshalVT, SizeVT, ...).
func anyVTFrame(frames []string) bool {
	for _, fr := range frames {
		if strings.HasPrefix(fr, "github.com/eventproc/eventproc/event/v1.") && strings.Contains(fr, "VT") {
			return true
		}
	}
	return false
}

// classify returns the group of a stack.
func classify(frames []string) string {
	leaf := frames[0]
	switch {
	case anyFrame(frames, "runtime.gcBgMarkWorker"):
		return grpGCMark
	case strings.HasPrefix(leaf, "internal/runtime/syscall") || strings.HasPrefix(leaf, "syscall."):
		return grpSyscall
	case anyFrame(frames, "runtime.mallocgc", "runtime.gcAssistAlloc"):
		return grpAlloc
	case anyFrame(frames, "runtime.schedule", "runtime.findRunnable", "runtime.park_m", "runtime.mcall",
		"runtime.futex", "runtime.netpoll", "runtime.goexit0", "runtime.wakep", "runtime.notewakeup"):
		return grpSched
	case anyFrame(frames, "google.golang.org/protobuf/encoding/protojson", "encoding/json",
		"google.golang.org/protobuf/internal/encoding/json", "github.com/eventproc/eventproc/internal/eventjson"):
		return grpJSON
	case anyFrame(frames, "google.golang.org/grpc/internal/transport", "golang.org/x/net/http2"):
		return grpHTTP2
	case anyFrame(frames, "google.golang.org/protobuf/", "github.com/planetscale/vtprotobuf/",
		"github.com/eventproc/eventproc/internal/vtcodec.", "github.com/eventproc/eventproc/internal/wire."),
		anyVTFrame(frames):
		return grpProto
	}
	for _, fr := range frames {
		switch {
		case strings.HasPrefix(fr, "github.com/eventproc/eventproc/event/sink"):
			return grpSink
		case strings.HasPrefix(fr, "github.com/eventproc/eventproc/event/pubsub"):
			return grpPubSub
		case strings.HasPrefix(fr, "github.com/grpc-ecosystem/"),
			strings.HasPrefix(fr, "github.com/eventproc/eventproc/event/v1.RegisterSinkServiceHandlerServer"),
			strings.HasPrefix(fr, "github.com/eventproc/eventproc/event/v1.local_request"):
			return grpGateway
		case strings.HasPrefix(fr, "google.golang.org/grpc"):
			return grpGRPC
		case strings.HasPrefix(fr, "net/http."):
			return grpNetHTTP
		case strings.HasPrefix(fr, "main."), strings.HasPrefix(fr, "github.com/"), strings.HasPrefix(fr, "go.opentelemetry.io/"),
			strings.HasPrefix(fr, "golang.org/x/sync"):
			return grpOtherLib
		}
	}
	return grpOtherTime
}

// breakdown groups a profile's samples and returns a table of the groups,
// largest first, with each group's share and its cost per request.
func breakdown(tracesText string, requests int) *table {
	samples := parseTraces(tracesText)
	by := map[string]time.Duration{}
	var total time.Duration
	for _, s := range samples {
		if len(s.frames) == 0 {
			continue
		}
		by[classify(s.frames)] += s.value
		total += s.value
	}
	type kv struct {
		k string
		v time.Duration
	}
	var rows []kv
	for k, v := range by {
		rows = append(rows, kv{k, v})
	}
	slices.SortFunc(rows, func(a, b kv) int { return cmp.Compare(b.v, a.v) })
	t := &table{header: []string{"group", "CPU", "share", "per request"}, numeric: func(i, _ int) bool { return i > 0 }}
	for _, r := range rows {
		per := "–"
		if requests > 0 {
			per = fmtUs(r.v / time.Duration(requests))
		}
		t.add(r.k, fmt.Sprintf("%.2fs", r.v.Seconds()), strconv.FormatFloat(100*float64(r.v)/float64(total), 'f', 1, 64)+"%", per)
	}
	t.add("total", fmt.Sprintf("%.2fs", total.Seconds()), "100%", fmtUs(total/time.Duration(max(requests, 1))))
	return t
}
