package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"

	"github.com/eventproc/eventproc/event/processor"
	"github.com/eventproc/eventproc/event/tlsfiles"
	"github.com/eventproc/eventproc/internal/debugserver"
)

// run is proc: it parses args and the environment (read through getenv),
// listens, and serves the echo processor until ctx is done, then stops
// gracefully and returns nil. Once it accepts connections it writes
// exactly one line to stdout, "listening on ADDR" with the real address,
// so that `--addr 127.0.0.1:0` is usable. Logs go to stderr; -h writes the
// usage to stdout. Unless the environment sets GOGC, run sets it to 400.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}

	lis, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen on --addr %s: %w", cfg.addr, err)
	}
	name := cfg.name
	if name == "" {
		name, err = defaultName(lis.Addr())
		if err != nil {
			_ = lis.Close()
			return err
		}
	}
	opts := processor.Options{
		MaxConcurrency: cfg.maxConcurrency,
		ShutdownGrace:  cfg.shutdownGrace,
		Logger:         log,
	}
	if cfg.tlsCert != "" {
		files, err := tlsfiles.New(tlsfiles.Options{CertFile: cfg.tlsCert, KeyFile: cfg.tlsKey, CAFile: cfg.tlsClientCA, Logger: log})
		if err != nil {
			_ = lis.Close()
			return fmt.Errorf("--tls-cert/--tls-key/--tls-client-ca: %w", err)
		}
		opts.TLS = files.ServerConfig("h2")
		reloadCtx, stopReload := context.WithCancel(ctx)
		reloaded := make(chan struct{})
		go func() {
			defer close(reloaded)
			_ = files.Run(reloadCtx) // nil at its end
		}()
		defer func() {
			stopReload()
			<-reloaded
		}()
	}
	h := &echo{name: name, consume: cfg.consume, log: log}
	srv := processor.NewServer(h, opts)
	if cfg.publish {
		h.publish = srv.Publish
	}

	if cfg.debugAddr != "" {
		stop, err := serveDebug(cfg.debugAddr, log)
		if err != nil {
			_ = lis.Close()
			return err
		}
		defer stop()
	}

	fmt.Fprintf(stdout, "listening on %s\n", lis.Addr())
	log.Info("proc: serving", "addr", lis.Addr().String(), "name", name, "consume", cfg.consume, "publish", cfg.publish,
		"max_concurrency", cfg.maxConcurrency, "tls", cfg.tlsCert != "", "client_certificates", cfg.tlsClientCA != "")
	if err := srv.Serve(ctx, lis); err != nil {
		return err
	}
	log.Info("proc: stopped")
	return nil
}

// serveDebug serves --debug-addr until stop is called.
func serveDebug(addr string, log *slog.Logger) (stop func(), err error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on --debug-addr %s: %w", addr, err)
	}
	log.Info("proc: debug listening on "+lis.Addr().String(), "addr", lis.Addr().String())
	srv := debugserver.New()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			log.Error("proc: debug server stopped", "err", err)
		}
	}()
	return func() {
		_ = srv.Close()
		<-done
	}, nil
}

// gcPercent is the GOGC proc runs with when none is set: its live heap is
// small, so fewer collections cost only a few MiB.
const gcPercent = 400

// defaultName is proc's name without --name: HOST:PORT, with addr's port.
func defaultName(addr net.Addr) (string, error) {
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("no --name given and no host name to default to: %w", err)
	}
	_, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "", fmt.Errorf("no --name given and no port in %s: %w", addr, err)
	}
	return net.JoinHostPort(host, port), nil
}
