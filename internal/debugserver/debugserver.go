// Package debugserver is the --debug-addr server of eventproc and proc:
// Go's profiler (/debug/pprof/) and runtime variables, memory statistics
// included (/debug/vars). It is off unless the flag is set, and belongs on
// an address only operators can reach.
package debugserver

import (
	"expvar"
	"net/http"
	"net/http/pprof"
	"time"
)

// New returns the debug server; the caller serves it on its own listener.
func New() *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/debug/vars", expvar.Handler())
	return &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
}
