package auth

import (
	"context"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// grpcCredential reads a gRPC call's credential from its metadata and
// peer.
func grpcCredential(ctx context.Context) credential {
	var c credential
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			c.authorization = v[0]
		}
		if v := md.Get("x-api-key"); len(v) > 0 {
			c.apiKey = v[0]
		}
	}
	if p, ok := peer.FromContext(ctx); ok {
		if p.Addr != nil {
			c.addr = hostOf(p.Addr.String())
		}
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			c.tls = &info.State
		}
	}
	return c
}

// public reports whether a gRPC method is served without credentials:
// health checking (probes and load balancers use it) and reflection (the
// API's schema, which is public).
func public(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.") || strings.HasPrefix(method, "/grpc.reflection.")
}

// UnaryInterceptor authenticates unary calls.
func (a *Authenticator) UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if public(info.FullMethod) {
		return handler(ctx, req)
	}
	p, err := a.authenticate(grpcCredential(ctx))
	if err != nil {
		return nil, err
	}
	return handler(withPrincipal(ctx, p), req)
}

// StreamInterceptor authenticates streaming calls, and ends each one with
// UNAUTHENTICATED when its credential expires.
func (a *Authenticator) StreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if public(info.FullMethod) {
		return handler(srv, ss)
	}
	p, err := a.authenticate(grpcCredential(ss.Context()))
	if err != nil {
		return err
	}
	ctx, release := a.bind(ss.Context(), p, "grpc")
	defer release()
	err = handler(srv, &serverStream{ServerStream: ss, ctx: ctx})
	if expired := ExpiredError(ctx); expired != nil {
		return expired
	}
	return err
}

// serverStream is a grpc.ServerStream with another context.
type serverStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *serverStream) Context() context.Context { return s.ctx }

// Refresh is the sink's Config.Refresh hook: it verifies a fresh
// credential sent in-band on a Stream and, when it is the same
// principal's, makes it the stream's, with its scopes and expiry. It
// returns the new expiry. A refused credential leaves the stream's as it
// was.
func (a *Authenticator) Refresh(ctx context.Context, credential string) (time.Time, error) {
	s, _ := ctx.Value(contextKey{}).(*session)
	if !a.Enabled() || s == nil || s.end == nil {
		return time.Time{}, status.Error(codes.FailedPrecondition, "this stream has no credential to refresh")
	}
	c := grpcCredential(ctx)
	c.authorization, c.apiKey = "Bearer "+credential, ""
	p, err := a.authenticate(c)
	if err != nil {
		return time.Time{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.Name != s.p.Name || p.Method != s.p.Method {
		return time.Time{}, status.Error(codes.PermissionDenied, errNotSameCaller.Error())
	}
	s.p = p
	if s.expiry != nil && !p.Expires.IsZero() {
		s.expiry.Reset(p.Expires.Sub(a.now()))
	}
	a.log.Debug("auth: stream credential refreshed", "principal", p.Name, "expires", p.Expires)
	return p.Expires, nil
}
