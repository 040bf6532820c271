package main

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAddEventType proves the README's "Adding an event type": one enum
// value, then make generate, keeps the tests green, because no test lists
// the types. It copies the module, adds TYPE_TEST_EXTRA = 99 to enum Type,
// regenerates the code with the repository's buf (make generate's
// command), and runs the copy's go vet and its configuration, routing and
// type-listing tests, which must accept the new type.
//
// Why a copy rather than expectations derived from the descriptor: the
// tests do derive them (TestBadConfig reads the known types from the enum),
// but only a build with another value shows that nothing else — generated
// code, a switch, a hard-coded list — breaks.
func TestAddEventType(t *testing.T) {
	if testing.Short() {
		t.Skip("copies the module, regenerates its code and runs its tests")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute) // a cold build cache takes a while
	defer cancel()
	dst := t.TempDir()
	copyModule(t, "..", dst)

	proto := filepath.Join(dst, "event", "v1", "event.proto")
	src, err := os.ReadFile(proto)
	if err != nil {
		t.Fatal(err)
	}
	head, enum, ok := strings.Cut(string(src), "enum Type {")
	body, tail, ok2 := strings.Cut(enum, "\n}")
	if !ok || !ok2 {
		t.Fatal("event/v1/event.proto: no enum Type { … }")
	}
	edited := head + "enum Type {" + body + "\n  TYPE_TEST_EXTRA = 99;\n}" + tail
	if err := os.WriteFile(proto, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = dst
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("tool", "-modfile=tools/buf.mod", "buf", "generate")
	gen, err := os.ReadFile(filepath.Join(dst, "event", "v1", "event.pb.go"))
	if err != nil || !strings.Contains(string(gen), "Type_TYPE_TEST_EXTRA Type = 99") {
		t.Fatalf("buf generate did not add the type to event/v1/event.pb.go (%v)", err)
	}
	run("vet", "./event/...", "./eventproc", "./internal/...")
	out := run("test", "-count=1", "-v",
		"-run", "^(TestParseRoute|TestNewInvalidConfig|TestBadConfig|TestParseConfig|TestHelp|TestREADMEFlags|TestTypes)$",
		"./event/sink", "./event/httpapi", "./eventproc")
	for _, want := range []string{"--- PASS: TestParseRoute", "--- PASS: TestBadConfig", "--- PASS: TestTypes"} {
		if !strings.Contains(out, want) {
			t.Errorf("the copy's tests did not say %q:\n%s", want, out)
		}
	}
	// The new type is routable: the copy's sink accepts a route for it.
	cfgTest := filepath.Join(dst, "eventproc", "addtype_extra_test.go")
	if err := os.WriteFile(cfgTest, []byte(`package main

import "testing"

func TestExtraTypeRoutes(t *testing.T) {
	c, err := parseConfig([]string{"--route", "test_extra=localhost:9091", "--broadcast", "TYPE_TEST_EXTRA"}, noEnv)
	if err != nil || len(c.Sink.Routes) != 1 || c.Sink.Routes[0].Type.String() != "TYPE_TEST_EXTRA" {
		t.Fatalf("parseConfig = %+v, %v; want a route for TYPE_TEST_EXTRA", c.Sink.Routes, err)
	}
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := run("test", "-count=1", "-v", "-run", "^TestExtraTypeRoutes$", "./eventproc"); !strings.Contains(out, "--- PASS: TestExtraTypeRoutes") {
		t.Errorf("the copy's sink did not take a route for the new type:\n%s", out)
	}
}

// copyModule copies the module at src to dst: every file but those of
// .git, bin and directories starting with _ or . (as the go command
// ignores them).
func copyModule(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		name := d.Name()
		if rel != "." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || rel == "bin") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copying the module: %v", err)
	}
}
