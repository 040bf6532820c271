package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/grpclog"

	"github.com/eventproc/eventproc/internal/vtcodec"
)

func main() {
	// Before any gRPC use, as packages encoding and grpclog require.
	encoding.RegisterCodecV2(vtcodec.Codec{})
	// gRPC's and grpc-gateway's own log goes to the process log, errors
	// only, as gRPC's default logger does (their info and warning lines are
	// about connections coming and going, which the sink logs itself).
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, grpcLogWriter{slog.LevelError}))
	if os.Getenv("GOGC") == "" {
		// Fewer collections (docs/design.md, Memory); the budget bounds the heap.
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// A second signal kills the process at once.
	context.AfterFunc(ctx, stop)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "eventproc: %v\n", err)
		os.Exit(1)
	}
}

// gcPercent is the GOGC the sink runs with unless GOGC is set.
const gcPercent = 400

// run is the whole program: it parses args and the environment read through
// getenv, serves until ctx ends, then shuts down gracefully. It writes --help
// to stdout and logs to stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout)
		return nil
	}
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	processLog.Store(log)
	srv, err := newServer(cfg, log)
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	grpcLis, err := lc.Listen(ctx, "tcp", cfg.GRPCAddr)
	if err != nil {
		srv.close()
		return fmt.Errorf("--grpc-addr %q: %w", cfg.GRPCAddr, err)
	}
	httpLis, err := lc.Listen(ctx, "tcp", cfg.HTTPAddr)
	if err != nil {
		grpcLis.Close()
		srv.close()
		return fmt.Errorf("--http-addr %q: %w", cfg.HTTPAddr, err)
	}
	grpcLis = srv.conns.limitConns("grpc", grpcLis, cfg.MaxConns)
	httpLis = srv.conns.limitConns("http", httpLis, cfg.MaxConns)
	var debugLis net.Listener
	if cfg.DebugAddr != "" {
		if debugLis, err = lc.Listen(ctx, "tcp", cfg.DebugAddr); err != nil {
			grpcLis.Close()
			httpLis.Close()
			srv.close()
			return fmt.Errorf("--debug-addr %q: %w", cfg.DebugAddr, err)
		}
	}
	return srv.serve(ctx, grpcLis, httpLis, debugLis)
}

// newLogger returns the process logger, writing to w as cfg says.
func newLogger(cfg Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// processLog is the logger of the last run, which grpcLogWriter writes to.
var processLog atomic.Pointer[slog.Logger]

// grpcLogWriter writes grpclog's lines to the process log at its level.
type grpcLogWriter struct{ level slog.Level }

func (w grpcLogWriter) Write(p []byte) (int, error) {
	if log := processLog.Load(); log != nil {
		log.Log(context.Background(), w.level, strings.TrimSpace(string(p)), "source", "grpc")
	}
	return len(p), nil
}
