// Package auth authenticates the callers of a sink and authorizes what
// they do, for every entry alike: REST, Server-Sent Events and NDJSON
// subscriptions (through [Authenticator.HTTP], which event/httpapi calls
// for each request), and gRPC's Send, Stream and Subscribe (through
// [Authenticator.UnaryInterceptor] and [Authenticator.StreamInterceptor]).
// The in-process grpc-gateway calls the sink without gRPC interceptors, so
// the check cannot live in an interceptor alone; both fronts call the same
// code.
//
// A credential is a JWT bearer token verified against one issuer's JSON Web
// Key Set (fetched from a URL or read from a file), an API key from a file
// of hashed keys, or — for browsers, whose EventSource cannot set headers —
// a short-lived single-use ticket minted by an authenticated POST. It
// becomes a [Principal]: a name, the scopes the credential grants, and when
// it expires.
//
// Authorization is per event: [Authenticator.Authorize] is the sink's
// Config.Authorize hook, asked for every event (every event of a Stream,
// every entry of a batch) and every subscribed type. Scopes are
// "send:<type>" and "subscribe:<type>", with "*" for every type, as in
// OAuth 2's scope (space-separated) or scp (a list) claim. Once
// authentication is on, what no scope allows is refused.
//
// A credential's expiry ends the long-lived calls it opened: a Stream, a
// gRPC Subscribe, an SSE or NDJSON subscription end with UNAUTHENTICATED.
// A Stream client can send a fresh token in-band ([Authenticator.Refresh],
// the sink's Config.Refresh hook) and keep its stream.
//
// Rate limits are token buckets per principal, counted per event sent; and,
// before authentication, per client address, counted per failed attempt so
// that guessing keys or flooding bad tokens is bounded while good clients
// are never slowed. Per-key state lives in bounded LRU caches.
//
// Without credentials configured, every caller is allowed everything, and
// is known by its address (or its verified client certificate), which rate
// limits then apply to.
package auth
