package sink

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// fakeResolver resolves every host to the addresses it is set to.
type fakeResolver struct {
	mu    sync.Mutex
	addrs []string
}

func (r *fakeResolver) set(addrs ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addrs = addrs
}

func (r *fakeResolver) LookupHost(context.Context, string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.addrs), nil
}

// A dns:/// target gets streams to every address it resolves to, load is
// spread over them, and addresses that disappear are dropped.
func TestDNSTargetReplicas(t *testing.T) {
	lis1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(lis1.Addr().String())
	lis2, err := net.Listen("tcp", "127.0.0.2:"+port)
	if err != nil {
		lis1.Close()
		t.Skipf("cannot listen on 127.0.0.2: %v", err)
	}
	var counts [2]atomic.Int64
	for i, lis := range []net.Listener{lis1, lis2} {
		serveFake(t, &fakeProcessor{answer: func(ctx context.Context, req *eventv1.ProcessRequest) *eventv1.ProcessResponse {
			counts[i].Add(1)
			return echo(ctx, req)
		}}, lis)
	}
	res := &fakeResolver{}
	res.set("127.0.0.1", "127.0.0.2")
	target := "dns:///procs.example:" + port
	s := startSink(t, Config{
		Routes:           helloRoute(target),
		Resolver:         res,
		ResolveInterval:  20 * time.Millisecond,
		StreamsPerTarget: 1,
	})
	waitFor(t, s, func() bool { return s.Status()[0].Targets[0].LiveStreams == 2 })
	ctx := testCtx(t)

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if _, err := send(s, ctx, hello("x")); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if counts[0].Load() == 0 || counts[1].Load() == 0 {
		t.Errorf("load not spread over replicas: %d and %d", counts[0].Load(), counts[1].Load())
	}
	st := s.Status()[0].Targets[0]
	if got := strings.Join(st.Addresses, ","); got != "127.0.0.1:"+port+",127.0.0.2:"+port {
		t.Errorf("addresses %q", got)
	}

	res.set("127.0.0.2")
	waitFor(t, s, func() bool { return len(s.Status()[0].Targets[0].Addresses) == 1 })
	before := counts[0].Load()
	for range 20 {
		if _, err := send(s, ctx, hello("x")); err != nil {
			t.Fatal(err)
		}
	}
	if counts[0].Load() != before {
		t.Errorf("removed address still got %d events", counts[0].Load()-before)
	}
}

func TestBadDNSTarget(t *testing.T) {
	_, err := New(Config{Routes: helloRoute("dns:///no-port")})
	if err == nil || !strings.Contains(err.Error(), "want host:port or dns:///name:port (missing port in address)") {
		t.Fatalf("err %v, want one explaining the dns target form", err)
	}
}
