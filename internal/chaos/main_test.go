// Package chaos holds the chaos test of the event gateway.
//
// TestChaos builds the real eventproc (sink) and proc (echo processor)
// binaries and runs the sink in front of two processor replicas, A and B,
// with --keepalive 1s --keepalive-timeout 1s. Two closed-loop loads send
// TYPE_HELLO events, each with a unique payload and a 1s deadline, at once:
// eight HTTP clients post them with Grpc-Timeout: 1S, and eight workers
// share two SinkService.Stream client streams, each sending an event with
// an id of its own and timeout 1s and waiting for the StreamResponse with
// that id (the second stream batches both ways: the events that wait
// together go out as one StreamRequest.batch, and it reads answers in
// batches) (its gRPC code counts as the HTTP status the gateway would give:
// OK 200, UNAVAILABLE 503, DEADLINE_EXCEEDED 504). Meanwhile the scenario
// runs: SIGKILL A, restart it on the same port, SIGSTOP B for longer than
// keepalive and its timeout, SIGCONT B, with steady time between the steps.
// The test records every request and checks, for each of the two APIs, that
//
//   - every request gets exactly one answer, 200, 503 or 504, no later than
//     its deadline plus a slack (-chaos.slack);
//   - every 200 echoes its own payload, comes from A or B (metadata
//     processed_by, proc's --name), and no reply answers two requests; a
//     Stream reply carries its event's id;
//   - no Stream answer comes for an id that is not in flight (unknown,
//     answered already, or past the client-side timeout), and no Stream
//     ends before the test closes it (the load does not reopen streams);
//   - while A is dead, requests succeed on B (after -chaos.grace);
//   - the restarted A answers within -chaos.recover of printing its
//     listening line;
//   - while B is frozen, requests succeed on A once the sink should have
//     noticed (-chaos.detect, by default keepalive + timeout + 500ms);
//   - B serves again after SIGCONT;
//   - the sink's goroutines (go_goroutines on /metrics) and resident memory
//     return near their level before the load, and it counted as many
//     answers as the clients got.
//
// It prints a summary: counts by API, phase and replica, the latest answer
// past its deadline, recovery times by API, and the sink's goroutines and
// memory.
//
// The test is short by default (one cycle of the scenario) so that `make
// test` runs it; -chaos.duration (or CHAOS_DURATION) repeats the cycle for
// longer runs:
//
//	go test -race -count=1 -v -run TestChaos ./internal/chaos -chaos.duration=60s
//
// It is skipped under -short. Other -chaos.* flags size the two loads
// (-chaos.clients, -chaos.stream-clients, -chaos.streams), tune the
// scenario and the tolerances, build the binaries with -race, keep the
// programs' logs, or dump every request's record; see chaos_test.go.
package chaos

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
