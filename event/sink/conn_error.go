package sink

import (
	"context"
	"net"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// watchConn records why the pool's connection fails, until ctx ends: the
// streams wait for the connection without failing (WaitForReady), so
// nothing else learns why it cannot be made (refused, a certificate that
// does not verify, a processor that refuses the sink's certificate). While
// the connection is in TRANSIENT_FAILURE, every Keepalive, a call that does
// not wait for it fails at once with the connection's last error, which
// becomes the pool's LastError.
func (p *pool) watchConn(ctx context.Context) {
	hc := healthpb.NewHealthClient(p.conn)
	for {
		state := p.conn.GetState()
		wait, stop := ctx, context.CancelFunc(func() {})
		if state == connectivity.TransientFailure {
			cctx, cancel := context.WithTimeout(ctx, p.cfg.KeepaliveTimeout)
			_, err := hc.Check(cctx, &healthpb.HealthCheckRequest{}) // fails fast: gRPC's default
			cancel()
			if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable && ctx.Err() == nil {
				msg := st.Message()
				if p.lookupHost != "" {
					// gRPC's balancer says only that it has no address
					// ("no children to pick from"); ask DNS why.
					lctx, cancel := context.WithTimeout(ctx, p.cfg.KeepaliveTimeout)
					if _, lerr := p.cfg.Resolver.LookupHost(lctx, p.lookupHost); lerr != nil && ctx.Err() == nil {
						msg = "resolving " + p.lookupHost + ": " + lerr.Error()
					}
					cancel()
				}
				p.setLastError(errorString(msg))
			}
			wait, stop = context.WithTimeout(ctx, p.cfg.Keepalive) // look again while it stays failed
		}
		p.conn.WaitForStateChange(wait, state)
		stop()
		if ctx.Err() != nil {
			return
		}
	}
}

// hostToLookUp is the host name of a "host:port" target, which gRPC
// resolves, for watchConn to look up when the connection fails; "" for an
// IP address or a target with a scheme.
func hostToLookUp(dialTarget string) string {
	if strings.Contains(dialTarget, ":/") || strings.HasPrefix(dialTarget, "unix:") {
		return ""
	}
	host, _, err := net.SplitHostPort(dialTarget)
	if err != nil || net.ParseIP(host) != nil {
		return ""
	}
	return host
}

// errorString is an error with a fixed message.
type errorString string

func (e errorString) Error() string { return string(e) }

// setLastError records err as the pool's latest connection or stream
// error (nil clears it, when a stream is up), and logs it when it changes.
func (p *pool) setLastError(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	p.errMu.Lock()
	changed := msg != p.lastErr
	p.lastErr = msg
	p.errMu.Unlock()
	if changed && msg != "" {
		p.log.Warn("processor unusable", "err", msg)
	}
}

// lastError returns what setLastError recorded.
func (p *pool) lastError() string {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.lastErr
}
