package main

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// defaultSource is the org.opencontainers.image.source label.
const defaultSource = "https://github.com/eventproc/eventproc"

// metadata is what the labels say about the build.
type metadata struct {
	version, revision, source, licenses string
	created                             time.Time
}

// fill sets what was not given from git, and created from
// SOURCE_DATE_EPOCH or else the time of the commit.
func (m *metadata) fill(ctx context.Context, getenv func(string) string) error {
	var err error
	if m.revision == "" {
		if m.revision, err = git(ctx, "rev-parse", "HEAD"); err != nil {
			return err
		}
	}
	if m.version == "" {
		if m.version, err = git(ctx, "describe", "--tags", "--always", "--dirty"); err != nil {
			return err
		}
	}
	epoch := strings.TrimSpace(getenv("SOURCE_DATE_EPOCH"))
	if epoch == "" {
		if epoch, err = git(ctx, "log", "-1", "--format=%ct", "HEAD"); err != nil {
			return err
		}
	}
	secs, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil || secs < 0 {
		return fmt.Errorf("SOURCE_DATE_EPOCH %q: want seconds since 1970", epoch)
	}
	m.created = time.Unix(secs, 0).UTC()
	return nil
}

// labels are the OCI annotations of p's image config.
func (m metadata) labels(p program) map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":       p.name,
		"org.opencontainers.image.description": p.about,
		"org.opencontainers.image.source":      m.source,
		"org.opencontainers.image.revision":    m.revision,
		"org.opencontainers.image.version":     m.version,
		"org.opencontainers.image.created":     m.created.Format(time.RFC3339),
	}
	if m.licenses != "" {
		l["org.opencontainers.image.licenses"] = m.licenses
	}
	return l
}

// git runs git with args and returns its output without the line end.
func git(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "git", args...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return "", fmt.Errorf("git %s: %w (set the value with a flag, or SOURCE_DATE_EPOCH)", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}
