package sink

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

var errBadDNSTarget = errors.New(`want "dns:///host:port"`)

// Resolver looks up the addresses of a host name; *net.Resolver is one.
type Resolver interface {
	LookupHost(ctx context.Context, host string) (addrs []string, err error)
}

// target is one configured processor target. A "dns:///host:port" target is
// resolved by the sink itself, again every ResolveInterval, into one pool per
// address, so every replica behind the name gets its own streams and the
// least-loaded pick sees each replica. Any other target is a single pool,
// resolved by gRPC.
type target struct {
	name      string
	host      string // for dns targets; "" otherwise
	port      string
	cfg       *Config
	newPool   func(name, dialTarget string) (*pool, error)
	onChange  func() // called when the set of pools changes
	pools     atomic.Pointer[[]*pool]
	dropped   atomic.Uint64 // answers for unknown or expired ids, over all pools
	reconnect atomic.Uint64 // streams re-opened, over all pools
}

// newTarget builds the target name; mkPool makes a pool of t for one
// address.
func newTarget(name string, cfg *Config, mkPool func(t *target, poolName, dialTarget string) (*pool, error), onChange func()) (*target, error) {
	t := &target{name: name, cfg: cfg, onChange: onChange}
	t.newPool = func(poolName, dialTarget string) (*pool, error) { return mkPool(t, poolName, dialTarget) }
	if rest, ok := strings.CutPrefix(name, "dns:///"); ok {
		host, port, err := net.SplitHostPort(rest)
		if err != nil || host == "" || port == "" {
			return nil, errBadDNSTarget
		}
		t.host, t.port = host, port
		t.pools.Store(&[]*pool{})
		return t, nil
	}
	p, err := t.newPool(name, name)
	if err != nil {
		return nil, err
	}
	t.pools.Store(&[]*pool{p})
	return t, nil
}

// run serves the target's pools until ctx ends.
func (t *target) run(ctx context.Context) {
	if t.host == "" {
		(*t.pools.Load())[0].run(ctx)
		return
	}
	type running struct {
		p      *pool
		cancel context.CancelFunc
		done   chan struct{}
	}
	byAddr := make(map[string]*running)
	defer func() {
		for _, r := range byAddr {
			r.cancel()
			<-r.done
		}
	}()
	tick := time.NewTicker(t.cfg.ResolveInterval)
	defer tick.Stop()
	for {
		addrs, err := t.cfg.Resolver.LookupHost(ctx, t.host)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil || len(addrs) == 0:
			t.cfg.Logger.Warn("resolving processor target failed; keeping known addresses", "target", t.name, "err", err)
		default:
			want := make(map[string]bool, len(addrs))
			for _, a := range addrs {
				want[net.JoinHostPort(a, t.port)] = true
			}
			var gone []*running
			for addr, r := range byAddr {
				if !want[addr] {
					t.cfg.Logger.Info("processor address gone", "target", t.name, "addr", addr)
					gone = append(gone, r)
					delete(byAddr, addr)
				}
			}
			for addr := range want {
				if byAddr[addr] != nil {
					continue
				}
				p, err := t.newPool(t.name+" ("+addr+")", "passthrough:///"+addr)
				if err != nil {
					t.cfg.Logger.Error("cannot dial processor address", "target", t.name, "addr", addr, "err", err)
					continue
				}
				pctx, cancel := context.WithCancel(ctx)
				r := &running{p: p, cancel: cancel, done: make(chan struct{})}
				go func() {
					defer close(r.done)
					p.run(pctx)
				}()
				byAddr[addr] = r
				t.cfg.Logger.Info("processor address found", "target", t.name, "addr", addr)
			}
			pools := make([]*pool, 0, len(byAddr))
			for _, r := range byAddr {
				pools = append(pools, r.p)
			}
			slices.SortFunc(pools, func(a, b *pool) int { return strings.Compare(a.target, b.target) })
			// Publish the new set before closing the old pools, so no
			// request is sent to a pool being closed.
			t.pools.Store(&pools)
			for _, r := range gone {
				r.cancel()
				<-r.done
			}
			if len(gone) > 0 {
				t.onChange()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// pick returns the least loaded live stream over the target's pools,
// skipping the pool skip.
func (t *target) pick(skip *pool) *stream {
	var best *stream
	var bestN int64
	for _, p := range *t.pools.Load() {
		if p == skip {
			continue
		}
		if s := p.pick(); s != nil {
			if m := s.pending.Load(); best == nil || m < bestN {
				best, bestN = s, m
			}
		}
	}
	return best
}

// live reports how many streams of the target take requests.
func (t *target) live() int {
	n := 0
	for _, p := range *t.pools.Load() {
		n += p.live()
	}
	return n
}

// pending reports the requests in flight to the target.
func (t *target) pending() int64 {
	var n int64
	for _, p := range *t.pools.Load() {
		n += p.pending()
	}
	return n
}

// closeAll closes the connections of pools that never ran.
func (t *target) closeAll() {
	for _, p := range *t.pools.Load() {
		p.conn.Close()
	}
}
