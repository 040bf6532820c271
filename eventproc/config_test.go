package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventproc/eventproc/event/sink"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

func envOf(kv ...string) func(string) string {
	m := make(map[string]string)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestParseConfig(t *testing.T) {
	hello := sink.Route{Type: eventv1.Type_TYPE_HELLO, Targets: []string{"localhost:9090"}}
	tests := []struct {
		name  string
		args  []string
		env   func(string) string
		check func(t *testing.T, c Config)
	}{{
		name: "defaults",
		args: []string{"--route", "hello=localhost:9090"},
		env:  noEnv,
		check: func(t *testing.T, c Config) {
			want := Config{HTTPAddr: ":8080", GRPCAddr: ":8081", Sink: sink.Config{Routes: []sink.Route{hello}, Timeout: 10 * time.Second},
				MaxBodyBytes: 1 << 20, MaxStreamsPerConn: 1000, LogFormat: "text", LogLevel: slog.LevelInfo, ShutdownGrace: 10 * time.Second}
			if !equalConfig(c, want) {
				t.Errorf("config = %+v, want %+v", c, want)
			}
		},
	}, {
		name: "durable",
		args: []string{"--route", "hello=localhost:9090", "--route", "goodbye=localhost:9090", "--durable-max-deliver", "7",
			"--nats-url", "nats://n:4222", "--nats-replicas", "3", "--nats-sync", "always", "--idempotency-window", "5m"},
		env: envOf("EVENTPROC_DURABLE", "hello, TYPE_GOODBYE"),
		check: func(t *testing.T, c Config) {
			for _, r := range c.Sink.Routes {
				if !r.Durable {
					t.Errorf("route %s not durable", r.Type)
				}
			}
			d, st := c.Sink.Durable, c.Store
			if d.MaxDeliver != 7 || d.Replicas != 3 || d.DedupWindow != 5*time.Minute || d.MaxBytes != 256<<20 ||
				st.URL != "nats://n:4222" || !st.SyncAlways || st.DataDir != "eventproc-data" || st.MaxStore != 1<<30 || st.MaxMemory != 32<<20 {
				t.Errorf("durable config %+v, store %+v", d, st)
			}
		},
	}, {
		name: "idempotent",
		args: []string{"--route", "hello=localhost:9090", "--route", "goodbye=localhost:9090", "--idempotent", "goodbye",
			"--idempotency-window", "30s"},
		env: envOf("EVENTPROC_IDEMPOTENT", "hello"),
		check: func(t *testing.T, c Config) {
			for _, r := range c.Sink.Routes {
				if r.Idempotent != (r.Type == eventv1.Type_TYPE_GOODBYE) || r.Durable {
					t.Errorf("route %+v; want only goodbye idempotent (the flag wins over the variable), none durable", r)
				}
			}
			if !c.needsStore() || c.durable() || c.Sink.Durable.DedupWindow != 30*time.Second {
				t.Errorf("needsStore %v, durable %v, window %v; want the store, no durable route, 30s",
					c.needsStore(), c.durable(), c.Sink.Durable.DedupWindow)
			}
		},
	}, {
		name: "every flag",
		args: []string{"--http-addr", "127.0.0.1:1", "--grpc-addr=[::1]:2", "--route", "TYPE_HELLO=a:1, b:2",
			"--route", "goodbye=dns:///c:3", "--broadcast", "GOODBYE", "--timeout", "1.5", "--max-body-bytes", "10",
			"--streams-per-target", "3", "--max-pending", "4", "--max-streams-per-conn", "7", "--log-format", "JSON", "--log-level", "debug",
			"--shutdown-grace", "0"},
		env: noEnv,
		check: func(t *testing.T, c Config) {
			want := Config{HTTPAddr: "127.0.0.1:1", GRPCAddr: "[::1]:2",
				Sink: sink.Config{
					Routes: []sink.Route{
						{Type: eventv1.Type_TYPE_HELLO, Targets: []string{"a:1", "b:2"}},
						{Type: eventv1.Type_TYPE_GOODBYE, Targets: []string{"dns:///c:3"}, Broadcast: true},
					},
					Timeout: 1500 * time.Millisecond, StreamsPerTarget: 3, MaxPendingPerStream: 4,
				},
				MaxBodyBytes: 10, MaxStreamsPerConn: 7, LogFormat: "json", LogLevel: slog.LevelDebug}
			if !equalConfig(c, want) {
				t.Errorf("config = %+v, want %+v", c, want)
			}
		},
	}, {
		name: "environment",
		env: envOf("EVENTPROC_HTTP_ADDR", ":1", "EVENTPROC_GRPC_ADDR", ":2",
			"EVENTPROC_ROUTES", "hello=a:1,b:2; goodbye=c:3\n", "EVENTPROC_BROADCAST", "hello,goodbye",
			"EVENTPROC_TIMEOUT", "2s", "EVENTPROC_MAX_BODY_BYTES", "99", "EVENTPROC_STREAMS_PER_TARGET", "5",
			"EVENTPROC_MAX_PENDING", "6", "EVENTPROC_MAX_STREAMS_PER_CONN", "8", "EVENTPROC_LOG_FORMAT", "json", "EVENTPROC_LOG_LEVEL", "warn",
			"EVENTPROC_SHUTDOWN_GRACE", "1m"),
		check: func(t *testing.T, c Config) {
			want := Config{HTTPAddr: ":1", GRPCAddr: ":2",
				Sink: sink.Config{
					Routes: []sink.Route{
						{Type: eventv1.Type_TYPE_HELLO, Targets: []string{"a:1", "b:2"}, Broadcast: true},
						{Type: eventv1.Type_TYPE_GOODBYE, Targets: []string{"c:3"}, Broadcast: true},
					},
					Timeout: 2 * time.Second, StreamsPerTarget: 5, MaxPendingPerStream: 6,
				},
				MaxBodyBytes: 99, MaxStreamsPerConn: 8, LogFormat: "json", LogLevel: slog.LevelWarn, ShutdownGrace: time.Minute}
			if !equalConfig(c, want) {
				t.Errorf("config = %+v, want %+v", c, want)
			}
		},
	}, {
		name: "flags win over the environment",
		args: []string{"--route", "hello=localhost:9090", "--timeout", "3s", "--http-addr", ":7"},
		env:  envOf("EVENTPROC_ROUTES", "goodbye=x:1", "EVENTPROC_TIMEOUT", "bogus", "EVENTPROC_HTTP_ADDR", ":1"),
		check: func(t *testing.T, c Config) {
			if c.Sink.Timeout != 3*time.Second || c.HTTPAddr != ":7" || !slices.EqualFunc(c.Sink.Routes, []sink.Route{hello}, equalRoute) {
				t.Errorf("config = %+v, want the flags' values", c)
			}
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(tc.args, tc.env)
			if err != nil {
				t.Fatalf("parseConfig: %v", err)
			}
			tc.check(t, c)
		})
	}
}

func equalRoute(a, b sink.Route) bool {
	return a.Type == b.Type && a.Broadcast == b.Broadcast && a.Durable == b.Durable && slices.Equal(a.Targets, b.Targets)
}

func equalConfig(a, b Config) bool {
	return slices.EqualFunc(a.Sink.Routes, b.Sink.Routes, equalRoute) &&
		a.HTTPAddr == b.HTTPAddr && a.GRPCAddr == b.GRPCAddr && a.Sink.Timeout == b.Sink.Timeout &&
		a.MaxBodyBytes == b.MaxBodyBytes && a.Sink.StreamsPerTarget == b.Sink.StreamsPerTarget &&
		a.Sink.MaxPendingPerStream == b.Sink.MaxPendingPerStream && a.MaxStreamsPerConn == b.MaxStreamsPerConn && a.LogFormat == b.LogFormat && a.LogLevel == b.LogLevel &&
		a.ShutdownGrace == b.ShutdownGrace
}

// TestBadConfig: every bad value stops the program with a message naming
// the flag or variable.
func TestBadConfig(t *testing.T) {
	const route = "hello=localhost:9090"
	// The known types, from the enum: adding one must not break this test.
	var known []string
	values := (eventv1.Type)(0).Descriptor().Values()
	for i := 1; i < values.Len(); i++ {
		known = append(known, strings.TrimPrefix(string(values.Get(i).Name()), "TYPE_"))
	}
	tests := []struct {
		args []string
		env  func(string) string
		want string
	}{
		{nil, noEnv, "no routes: give at least one --route"},
		{[]string{"--route", "foo=x:1"}, noEnv, `--route "foo=x:1": unknown event type "foo" (known: ` + strings.Join(known, ", ") + ")"},
		{[]string{"--route", "hello"}, noEnv, `--route "hello": want TYPE=TARGET`},
		{[]string{"--route", "hello="}, noEnv, `--route "hello=": route for TYPE_HELLO has no targets`},
		{[]string{"--route", "hello=a b"}, noEnv, `--route "hello=a b": route for TYPE_HELLO: bad target "a b"`},
		{[]string{"--route", "hello=localhost"}, noEnv, `--route "hello=localhost": route for TYPE_HELLO: bad target "localhost": want host:port or dns:///name:port (missing port in address)`},
		{[]string{"--route", "unspecified=x:1"}, noEnv, `--route "unspecified=x:1": unknown event type`},
		{[]string{"--route", route, "--route", "TYPE_HELLO=y:2"}, noEnv, `--route "TYPE_HELLO=y:2": second route for TYPE_HELLO`},
		{[]string{"--route", route, "--broadcast", "goodbye"}, noEnv, `--broadcast "goodbye": no --route for TYPE_GOODBYE`},
		{[]string{"--route", route, "--broadcast", "wave"}, noEnv, `--broadcast "wave": unknown event type "wave"`},
		{[]string{"--route", route, "--timeout", "soon"}, noEnv, `--timeout "soon": want a duration`},
		{[]string{"--route", route, "--timeout", "0"}, noEnv, `--timeout "0": want a positive duration`},
		{[]string{"--route", route, "--shutdown-grace", "-1s"}, noEnv, `--shutdown-grace "-1s": want a positive duration`},
		{[]string{"--route", route, "--max-body-bytes", "0"}, noEnv, `--max-body-bytes "0": want at least 1`},
		{[]string{"--route", route, "--max-body-bytes", "1e9x"}, noEnv, `--max-body-bytes "1e9x": want a whole number`},
		{[]string{"--route", route, "--max-body-bytes", "99999999999"}, noEnv, `--max-body-bytes "99999999999": want at most`},
		{[]string{"--route", route, "--streams-per-target", "-1"}, noEnv, `--streams-per-target "-1": want at least 0`},
		{[]string{"--route", route, "--max-pending", "many"}, noEnv, `--max-pending "many": want a whole number`},
		{[]string{"--route", route, "--max-streams-per-conn", "0"}, noEnv, `--max-streams-per-conn "0": want at least 1`},
		{[]string{"--route", route, "--log-format", "xml"}, noEnv, `--log-format "xml": want text or json`},
		{[]string{"--route", route, "--log-level", "loud"}, noEnv, `--log-level "loud": want debug, info, warn or error`},
		{[]string{"--route", route, "--http-addr", "8080"}, noEnv, `--http-addr "8080": want HOST:PORT`},
		{[]string{"--route", route, "--bogus"}, noEnv, "flag provided but not defined: -bogus"},
		{[]string{"--route"}, noEnv, "flag needs an argument: -route"},
		{[]string{"--route", route, "extra"}, noEnv, `unexpected argument "extra"`},
		{[]string{"--route", route, "--durable", "goodbye"}, noEnv, `--durable "goodbye": no --route for TYPE_GOODBYE`},
		{[]string{"--route", route, "--broadcast", "hello", "--durable", "hello"}, noEnv, `--durable "hello": TYPE_HELLO is a --broadcast route`},
		{[]string{"--route", route, "--durable", "hello", "--nats-url", "nats://x:4222", "--nats-listen", ":4222"}, noEnv, "not both"},
		{[]string{"--route", route, "--durable", "hello", "--nats-replicas", "3"}, noEnv, "--nats-replicas above 1 needs --nats-url"},
		{[]string{"--route", route, "--durable", "hello", "--nats-creds", "/x.creds"}, noEnv, "--nats-creds secure the connection to --nats-url, which is not set"},
		{[]string{"--route", route, "--durable", "hello", "--data-dir", " "}, noEnv, "--data-dir must not be empty"},
		{[]string{"--route", route, "--idempotent", "goodbye"}, noEnv, `--idempotent "goodbye": no --route for TYPE_GOODBYE`},
		{[]string{"--route", route, "--broadcast", "hello", "--idempotent", "hello"}, noEnv, `--idempotent "hello": TYPE_HELLO is a --broadcast route`},
		{[]string{"--route", route, "--idempotent", "hello", "--data-dir", " "}, noEnv, "--data-dir must not be empty"},
		{[]string{"--route", route, "--nats-sync", "never"}, noEnv, `--nats-sync "never": want a duration`},
		{[]string{"--route", route, "--nats-max-store", "0"}, noEnv, `--nats-max-store "0": want a size above zero`},
		{[]string{"--route", route, "--durable-max-deliver", "0"}, noEnv, `--durable-max-deliver "0": want at least 1`},
		{[]string{"--route", route}, envOf("EVENTPROC_DURABLE", "hello,goodbye"), `EVENTPROC_DURABLE "goodbye": no --route for TYPE_GOODBYE`},
		{nil, envOf("EVENTPROC_ROUTES", "hello=a:1;bye=b:2"), `EVENTPROC_ROUTES "bye=b:2": unknown event type "bye"`},
		{[]string{"--route", route}, envOf("EVENTPROC_TIMEOUT", "x"), `EVENTPROC_TIMEOUT "x": want a duration`},
		{[]string{"--route", route}, envOf("EVENTPROC_MAX_PENDING", "-5"), `EVENTPROC_MAX_PENDING "-5": want at least 0`},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			ctx := testContext(t)
			var stdout, stderr bytes.Buffer
			err := run(ctx, tc.args, tc.env, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run(%q) = %v, want an error containing %q", tc.args, err, tc.want)
			}
			if stdout.Len() > 0 || stderr.Len() > 0 {
				t.Errorf("run printed %q %q; main prints the error", stdout.String(), stderr.String())
			}
		})
	}
}

// TestListenError names the address that could not be used.
func TestListenError(t *testing.T) {
	ctx := testContext(t)
	s := startSink(t, "--route", "hello="+deadAddr(t))
	err := run(ctx, []string{"--route", "hello=x:1", "--grpc-addr", "127.0.0.1:0", "--http-addr", strings.TrimPrefix(s.url, "http://")},
		noEnv, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "--http-addr") {
		t.Fatalf("run on a busy address = %v, want an error naming --http-addr", err)
	}
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"--help", "-h", "-help"} {
		t.Run(arg, func(t *testing.T) {
			var stdout bytes.Buffer
			if err := run(testContext(t), []string{arg}, noEnv, &stdout, &bytes.Buffer{}); err != nil {
				t.Fatalf("run(%s) = %v, want nil", arg, err)
			}
			out := stdout.String()
			for _, o := range options(new(Config)) {
				if !strings.Contains(out, "--"+o.name) || !strings.Contains(out, o.env) {
					t.Errorf("usage lacks --%s or %s", o.name, o.env)
				}
			}
			for _, want := range []string{"Usage: eventproc", "POST /v1/events", "/readyz", "Grpc-Timeout"} {
				if !strings.Contains(out, want) {
					t.Errorf("usage lacks %q", want)
				}
			}
		})
	}
}

// TestMemoryBudgetConfig: --memory-budget and its variable take sizes; by
// default the budget applies unless GOMEMLIMIT is set, 128 MiB larger when
// the sink runs the embedded NATS server.
func TestMemoryBudgetConfig(t *testing.T) {
	route := []string{"--route", "hello=localhost:9090"}
	for _, tt := range []struct {
		args []string
		env  func(string) string
		want int64
	}{
		{nil, noEnv, 48 << 20},
		{[]string{"--memory-budget", "1GiB"}, noEnv, 1 << 30},
		{[]string{"--memory-budget", "64 MiB"}, noEnv, 64 << 20},
		{[]string{"--memory-budget", "2048KiB"}, noEnv, 2 << 20},
		{[]string{"--memory-budget", "1000"}, noEnv, 1000},
		{[]string{"--memory-budget", "off"}, noEnv, 0},
		{[]string{"--memory-budget", "0"}, noEnv, 0},
		{nil, envOf("EVENTPROC_MEMORY_BUDGET", "100MiB"), 100 << 20},
		{nil, envOf("GOMEMLIMIT", "1GiB"), 0},
		{nil, envOf("GOMEMLIMIT", "1GiB", "EVENTPROC_MEMORY_BUDGET", "60MiB"), 60 << 20},
		{[]string{"--memory-budget", "70MiB"}, envOf("GOMEMLIMIT", "1GiB"), 70 << 20},
		// The embedded NATS server's memory is the sink's.
		{[]string{"--durable", "hello"}, noEnv, (48 + 128) << 20},
		{[]string{"--idempotent", "hello"}, noEnv, (48 + 128) << 20},
		{[]string{"--nats-listen", "127.0.0.1:4222"}, noEnv, (48 + 128) << 20},
		{[]string{"--durable", "hello", "--nats-url", "nats://n:4222"}, noEnv, 48 << 20},
		{[]string{"--durable", "hello", "--memory-budget", "64MiB"}, noEnv, 64 << 20},
		{[]string{"--durable", "hello"}, envOf("EVENTPROC_MEMORY_BUDGET", "100MiB"), 100 << 20},
		{[]string{"--durable", "hello"}, envOf("GOMEMLIMIT", "1GiB"), 0},
	} {
		c, err := parseConfig(append(route, tt.args...), tt.env)
		if err != nil {
			t.Errorf("%q: %v", tt.args, err)
			continue
		}
		if c.MemoryBudget != tt.want {
			t.Errorf("%q: budget %d, want %d", tt.args, c.MemoryBudget, tt.want)
		}
	}
	for _, bad := range []string{"lots", "-1MiB", "1.5GiB", "MiB", "9999999999GiB"} {
		_, err := parseConfig(append(route, "--memory-budget", bad), noEnv)
		if err == nil || !strings.Contains(err.Error(), `--memory-budget "`+bad+`": want a size`) {
			t.Errorf("--memory-budget %q: error %v", bad, err)
		}
	}
}

// TestREADMEFlags: the flags table in the README is the one options()
// makes. With UPDATE_README=1 the test rewrites it.
func TestREADMEFlags(t *testing.T) {
	const path = "../README.md"
	const begin, end = "<!-- flags: made from options() in eventproc/config.go -->\n", "<!-- end of flags -->\n"
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok := strings.Cut(string(readme), begin)
	got, after, ok2 := strings.Cut(rest, end)
	if !ok || !ok2 {
		t.Fatalf("README.md lacks the lines %q and %q around the flags table", begin, end)
	}
	var want strings.Builder
	want.WriteString("| flag | env | default | meaning |\n|---|---|---|---|\n")
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	for _, o := range options(new(Config)) {
		def := "—"
		if o.def != "" {
			def = "`" + cell(o.def) + "`"
		}
		fmt.Fprintf(&want, "| `--%s %s` | `%s` | %s | %s |\n", o.name, cell(o.arg), o.env, def, cell(o.usage))
	}
	// The Memory paragraph says what --help says, in the same words.
	if memory, _, _ := strings.Cut(after, "\n\n## "); !strings.Contains(strings.Join(strings.Fields(memory), " "), memoryRule) {
		t.Errorf("the README's Memory paragraph, after the flags table, lacks --help's words %q", memoryRule)
	}
	if got == want.String() {
		return
	}
	if os.Getenv("UPDATE_README") == "1" {
		if err := os.WriteFile(path, []byte(before+begin+want.String()+end+after), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("rewrote the flags table in README.md")
		return
	}
	t.Errorf("the flags table in README.md is not the flag set's; UPDATE_README=1 go test ./eventproc -run TestREADMEFlags rewrites it to:\n%s", want.String())
}

// TestCETypeFlag: --ce-type and EVENTPROC_CE_TYPES map event types to
// CloudEvents types; malformed and duplicate mappings are errors.
func TestCETypeFlag(t *testing.T) {
	route := []string{"--route", "hello=localhost:9090"}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    map[eventv1.Type]string
		wantErr string
	}{
		{name: "flag", args: []string{"--ce-type", "goodbye=com.example.order.placed", "--ce-type", "TYPE_HELLO=com.example.hi"},
			want: map[eventv1.Type]string{eventv1.Type_TYPE_GOODBYE: "com.example.order.placed", eventv1.Type_TYPE_HELLO: "com.example.hi"}},
		{name: "env", env: map[string]string{"EVENTPROC_CE_TYPES": "goodbye=com.example.a, hello=com.example.b"},
			want: map[eventv1.Type]string{eventv1.Type_TYPE_GOODBYE: "com.example.a", eventv1.Type_TYPE_HELLO: "com.example.b"}},
		{name: "none"},
		{name: "no name", args: []string{"--ce-type", "hello="}, wantErr: "want TYPE=CETYPE"},
		{name: "unknown type", args: []string{"--ce-type", "nope=x"}, wantErr: "unknown event type"},
		{name: "type twice", args: []string{"--ce-type", "hello=a", "--ce-type", "hello=b"}, wantErr: "second CloudEvents type"},
		{name: "name twice", args: []string{"--ce-type", "hello=a", "--ce-type", "goodbye=a"}, wantErr: "already the CloudEvents type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(append(route, tc.args...), func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(c.CloudEventTypes, tc.want) {
				t.Errorf("CloudEventTypes %v, want %v", c.CloudEventTypes, tc.want)
			}
		})
	}
}
