package main

import (
	"net"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Limits a client meets on both servers besides the flags; the README's
// "Limits" section lists them all.
const (
	// defaultMaxConns is --max-conns: open connections per listener.
	defaultMaxConns = 10000
	// maxHeaderBytes bounds a request's headers: HTTP/1.1's request line
	// and headers (431 beyond), and the header list of an HTTP/2 request on
	// either server (SETTINGS_MAX_HEADER_LIST_SIZE; gRPC's default is 16 MiB).
	// Room for cookies and bearer tokens, not for a megabyte per request.
	maxHeaderBytes = 64 << 10
	// maxHTTP2Streams bounds the concurrent requests (subscriptions
	// included) of one HTTP/2 connection to the HTTP server: net/http's
	// own default, made explicit. The gRPC server's is --max-streams-per-conn.
	maxHTTP2Streams = 250
)

// connMetrics counts the connections of both listeners.
type connMetrics struct {
	refused *prometheus.CounterVec
	reg     prometheus.Registerer
}

func newConnMetrics(reg prometheus.Registerer) *connMetrics {
	m := &connMetrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventproc_connections_refused_total",
			Help: "Connections closed as soon as they were accepted, by listener (http, grpc) and reason (max_conns).",
		}, []string{"listener", "reason"}),
		reg: reg,
	}
	reg.MustRegister(m.refused)
	return m
}

// limitConns returns lis with at most max connections open at once (no
// limit when max is 0), counted in the metrics as listener name. It wraps
// the raw TCP listener: TLS, when configured, goes on top of it, so that a
// refused connection costs no handshake.
//
// A connection beyond the limit is accepted and closed at once, which the
// client sees as a reset or EOF and can retry (elsewhere, behind a load
// balancer). netutil.LimitListener instead stops calling Accept at the
// limit: new connections then wait in the kernel's backlog, where the
// client's connect has already succeeded, yet nothing answers it until a
// connection closes. A few thousand slow clients would then stall every
// other client silently, and nothing would count them.
func (m *connMetrics) limitConns(name string, lis net.Listener, max int) net.Listener {
	l := &limitListener{Listener: lis, max: int64(max), refused: m.refused.WithLabelValues(name, "max_conns")}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "eventproc_connections_open",
		Help:        "Connections open, by listener (http, grpc).",
		ConstLabels: prometheus.Labels{"listener": name},
	}, func() float64 { return float64(l.open.Load()) }))
	return l
}

// limitListener is a net.Listener with a bound on open connections. Its
// methods are safe for concurrent use, as net.Listener's are.
type limitListener struct {
	net.Listener
	max     int64 // 0: no limit
	open    atomic.Int64
	refused prometheus.Counter
}

// Accept returns the next connection within the limit, closing those
// beyond it.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.acquire() {
			return &limitedConn{Conn: c, release: func() { l.open.Add(-1) }}, nil
		}
		l.refused.Inc()
		c.Close()
	}
}

// acquire counts one more open connection unless the limit is reached.
func (l *limitListener) acquire() bool {
	for {
		n := l.open.Load()
		if l.max > 0 && n >= l.max {
			return false
		}
		if l.open.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// limitedConn is a connection counted by a limitListener until its first
// Close; later calls return nil.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	var err error
	c.once.Do(func() {
		err = c.Conn.Close()
		c.release()
	})
	return err
}
