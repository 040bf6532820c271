// Package chaos holds the chaos test of the event gateway. TestChaos builds
// the real eventproc (sink) and proc (echo processor) binaries, runs the
// sink in front of two processor replicas A and B, keeps steady closed-loop
// HTTP load on it, and meanwhile kills and restarts A and freezes and thaws
// B (SIGKILL, restart on the same port, SIGSTOP, SIGCONT). It checks that
// every request gets exactly one timely answer (200, 503 or 504, never after
// its deadline plus a slack), that every reply echoes its own request, that
// traffic moves to the healthy replica and back, and that the sink's
// goroutines and memory return to their level before the load.
//
// The test is short by default (one cycle of the scenario) so that
// `go test ./...` runs it; -chaos.duration (or CHAOS_DURATION) repeats the
// cycle for longer runs:
//
//	go test -race -count=1 -v -run TestChaos ./internal/chaos -chaos.duration=60s
//
// It is skipped under -short. The other -chaos.* flags tune the tolerances;
// see chaos_test.go.
package chaos
