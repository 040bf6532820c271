package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// buildFlags are the go build flags of every image binary, with
// CGO_ENABLED=0 and GOOS=linux: no paths of the build machine in the
// binary, no VCS stamp (the revision is an image label; a build from a
// tree without .git, as in the Dockerfile, gives the same bytes), no symbol
// table or DWARF (stack traces still name functions and lines). The
// Dockerfile uses the same flags (TestDockerfileMatches).
var buildFlags = []string{"-trimpath", "-buildvcs=false", "-ldflags=-s -w"}

// buildBinaries compiles progs for linux/goarch into dir, in one go build,
// and returns the path of each binary by program name.
func buildBinaries(ctx context.Context, goarch, dir string, progs []program) (map[string]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	args := append([]string{"build", "-o", dir + string(filepath.Separator)}, buildFlags...)
	paths := make(map[string]string, len(progs))
	for _, p := range progs {
		args = append(args, p.pkg)
		paths[p.name] = filepath.Join(dir, p.name)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %w\n%s", err, out)
	}
	return paths, nil
}
