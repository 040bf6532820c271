package sink

import (
	"testing"
	"time"
)

// TestTimerReuse: a timer from getTimer fires after the duration it was
// given, never with a value left from an earlier use, whether the timer it
// reuses was stopped in time or had fired.
func TestTimerReuse(t *testing.T) {
	for range 100 {
		stopped := getTimer(time.Hour)
		putTimer(stopped) // stopped before firing: may be reused

		fired := getTimer(time.Millisecond)
		<-fired.C
		putTimer(fired) // fired: must not be reused

		long := getTimer(time.Hour)
		select {
		case v := <-long.C:
			t.Fatalf("a timer set for an hour delivered %v at once", v)
		default:
		}
		start := time.Now()
		short := getTimer(time.Millisecond)
		if v := <-short.C; v.Before(start) {
			t.Fatalf("a timer delivered a time from before it was set: %v < %v", v, start)
		}
		putTimer(short)
		putTimer(long)
	}
}
