package auth

import (
	"context"
	"fmt"
	"os"
	"time"

	"bytes"
)

// watchFile loads path now, then polls it every ReloadInterval and loads
// it again when its contents change: a Kubernetes secret or config map
// changes by swapping a symlink, which reading through the path follows.
// A failed reload keeps what was loaded and logs why.
func (a *Authenticator) watchFile(ctx context.Context, what, path string, load func([]byte) error) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := load(data); err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	a.wg.Go(func() {
		t := time.NewTicker(a.cfg.ReloadInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			now, err := os.ReadFile(path)
			if err == nil && bytes.Equal(now, data) {
				continue
			}
			if err == nil {
				err = load(now)
			}
			if err != nil {
				a.metrics.reloads.WithLabelValues(what, "error").Inc()
				a.log.Warn("auth: reload failed; keeping the previous "+what, "file", path, "err", err)
				data = now // do not log the same bad file every interval
				continue
			}
			data = now
			a.metrics.reloads.WithLabelValues(what, "ok").Inc()
			a.log.Info("auth: reloaded "+what, "file", path)
		}
	})
	return nil
}
