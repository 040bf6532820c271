package processor

import (
	"context"
	"errors"
	"testing"
	"time"
)

// newTestRequest returns a request as dispatch leaves it.
func newTestRequest(parent context.Context, deadline time.Time) *request {
	return &request{id: 1, parent: parent, deadline: deadline}
}

// isDone reports whether ch is closed.
func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// checkDone checks that ctx is done with want, by every way of asking.
func checkDone(t *testing.T, ctx context.Context, want error) {
	t.Helper()
	if err := ctx.Err(); err != want {
		t.Errorf("Err = %v, want %v", err, want)
	}
	if !isDone(ctx.Done()) {
		t.Error("Done not closed")
	}
	if err := ctx.Err(); err != want {
		t.Errorf("Err after Done = %v, want %v", err, want)
	}
	if err := context.Cause(ctx); err != want {
		t.Errorf("Cause = %v, want %v", err, want)
	}
	child, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := child.Err(); err != want {
		t.Errorf("derived context's Err = %v, want %v", err, want)
	}
}

func TestCancelCtxKeyLearnt(t *testing.T) {
	if cancelCtxKey == nil {
		t.Fatal("the context package's cancelCtxKey was not found: derived contexts each cost a goroutine")
	}
}

func TestRequestContext(t *testing.T) {
	type key struct{}
	tests := []struct {
		name string
		// act makes the request done, or not; it may use Done first
		// (wait) or not.
		deadline time.Duration // 0: none
		wait     bool          // call Done before anything happens
		act      func(r *request, cancelParent context.CancelFunc)
		want     error
	}{
		{name: "nothing happened", deadline: time.Hour, act: func(*request, context.CancelFunc) {}},
		{name: "nothing happened, waiting", deadline: time.Hour, wait: true, act: func(*request, context.CancelFunc) {}},
		{name: "no deadline", act: func(*request, context.CancelFunc) {}},
		{name: "ended", deadline: time.Hour, act: func(r *request, _ context.CancelFunc) { r.end() }, want: context.Canceled},
		{name: "ended, waiting", wait: true, act: func(r *request, _ context.CancelFunc) { r.end() }, want: context.Canceled},
		{name: "stream ended", act: func(_ *request, cancel context.CancelFunc) { cancel() }, want: context.Canceled},
		{name: "stream ended, waiting", deadline: time.Hour, wait: true, act: func(_ *request, cancel context.CancelFunc) { cancel() }, want: context.Canceled},
		{name: "expired", deadline: 10 * time.Millisecond, act: func(*request, context.CancelFunc) { time.Sleep(20 * time.Millisecond) }, want: context.DeadlineExceeded},
		{name: "expired, waiting", deadline: 10 * time.Millisecond, wait: true, act: func(r *request, _ context.CancelFunc) { <-r.Done() }, want: context.DeadlineExceeded},
		{name: "expired, then ended", deadline: 10 * time.Millisecond, act: func(r *request, _ context.CancelFunc) {
			time.Sleep(20 * time.Millisecond)
			r.end()
		}, want: context.DeadlineExceeded},
		{name: "ended, then expired", deadline: 10 * time.Millisecond, act: func(r *request, _ context.CancelFunc) {
			r.end()
			time.Sleep(20 * time.Millisecond)
		}, want: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
			defer cancel()
			var deadline time.Time
			if tt.deadline > 0 {
				deadline = time.Now().Add(tt.deadline)
			}
			r := newTestRequest(parent, deadline)
			if d, ok := r.Deadline(); d != deadline || ok != !deadline.IsZero() {
				t.Errorf("Deadline = %v, %v; want %v", d, ok, deadline)
			}
			if tt.wait {
				if isDone(r.Done()) {
					t.Fatal("done before anything happened")
				}
			}
			stopped := make(chan struct{})
			stop := context.AfterFunc(r, func() { close(stopped) })
			defer stop()
			tt.act(r, cancel)
			if r.Value(key{}) != "v" {
				t.Errorf("Value = %v, want the parent's", r.Value(key{}))
			}
			if tt.want == nil {
				if err := r.Err(); err != nil {
					t.Errorf("Err = %v, want nil", err)
				}
				if isDone(r.Done()) {
					t.Error("Done closed")
				}
				return
			}
			checkDone(t, r, tt.want)
			// Later events change nothing.
			cancel()
			r.end()
			checkDone(t, r, tt.want)
			select {
			case <-stopped:
			case <-time.After(10 * time.Second):
				t.Error("AfterFunc not called")
			}
		})
	}
}

func TestRequestContextDerived(t *testing.T) {
	r := newTestRequest(context.Background(), time.Time{})
	child, cancel := context.WithTimeout(r, time.Hour)
	defer cancel()
	if isDone(child.Done()) {
		t.Fatal("derived context done before its parent")
	}
	r.end()
	select {
	case <-child.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("derived context not cancelled with its parent")
	}
	if !errors.Is(child.Err(), context.Canceled) {
		t.Errorf("derived Err = %v, want Canceled", child.Err())
	}
}

func TestRequestDeadlineOfParent(t *testing.T) {
	early := time.Now().Add(time.Minute)
	parent, cancel := context.WithDeadline(context.Background(), early)
	defer cancel()
	r := newTestRequest(parent, early.Add(time.Minute))
	if d, ok := r.Deadline(); !ok || !d.Equal(early) {
		t.Errorf("Deadline = %v, %v; want the parent's %v", d, ok, early)
	}
	r = newTestRequest(parent, early.Add(-time.Second))
	if d, ok := r.Deadline(); !ok || !d.Equal(early.Add(-time.Second)) {
		t.Errorf("Deadline = %v, %v; want its own %v", d, ok, early.Add(-time.Second))
	}
}
