package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventproc/eventproc/event/auth"
	"github.com/eventproc/eventproc/event/processor"
	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/authtest"
)

// TestDeadLettersListReplay: a poison event is dead-lettered with its
// reason while the next event is delivered; it is listed, and replayed
// once the processor is fixed, and delivered; both endpoints need the
// replay scope of the type.
func TestDeadLettersListReplay(t *testing.T) {
	ctx := testContext(t)
	var broken atomic.Bool
	broken.Store(true)
	delivered := make(chan string, 16)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	processor.NewServer(processor.HandlerFunc(func(_ context.Context, ev *eventv1.Event) (*eventv1.Event, error) {
		p := ev.GetPayload().GetStringValue()
		if p == "poison" && broken.Load() {
			return nil, status.Error(codes.FailedPrecondition, "cannot digest poison")
		}
		delivered <- p
		return nil, nil
	}), processor.Options{Logger: discardLogger()}).Register(srv)
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-served })

	keys := filepath.Join(t.TempDir(), "keys.json")
	authtest.WriteAPIKeys(t, keys, map[string]auth.APIKey{
		"key-ops":    {Principal: "ops", Scopes: []string{"send:hello", "replay:hello"}},
		"key-sender": {Principal: "sender", Scopes: []string{"send:*"}},
	})
	s := startSink(t, "--route", "hello="+lis.Addr().String(), "--durable", "hello", "--data-dir", t.TempDir(),
		"--auth-api-keys", keys)
	s.waitRoute(ctx, "TYPE_HELLO", true)
	request := func(method, path, body, key string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, s.url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Api-Key", key)
		req.Header.Set("Content-Type", "application/json")
		resp, b := s.do(ctx, req)
		checkOpenAPI(t, ctx, s, req, []byte(body), resp, b)
		return resp.StatusCode, b
	}
	for _, p := range []string{"poison", "fine"} {
		if code, b := request(http.MethodPost, "/v1/events", `{"type":"TYPE_HELLO","payload":"`+p+`"}`, "key-ops"); code != http.StatusAccepted {
			t.Fatalf("POST %s: %d %s, want 202", p, code, b)
		}
	}
	if got := <-delivered; got != "fine" {
		t.Fatalf("delivered %q first, want fine (the poison is dead-lettered)", got)
	}

	type list struct {
		Type        string `json:"type"`
		DeadLetters []struct {
			Sequence   uint64          `json:"sequence"`
			Code       string          `json:"code"`
			Reason     string          `json:"reason"`
			Deliveries int             `json:"deliveries"`
			Event      json.RawMessage `json:"event"`
		} `json:"deadletters"`
		Next uint64 `json:"next"`
	}
	var l list
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for len(l.DeadLetters) == 0 { // the dead letter is stored after the processor answered
		code, b := request(http.MethodGet, "/v1/deadletters?type=hello", "", "key-ops")
		if code != http.StatusOK {
			t.Fatalf("GET /v1/deadletters: %d %s", code, b)
		}
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatalf("GET /v1/deadletters: %s: %v", b, err)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("no dead letter listed")
		}
	}
	d := l.DeadLetters[0]
	if len(l.DeadLetters) != 1 || l.Type != "TYPE_HELLO" || d.Code != "FailedPrecondition" ||
		!strings.Contains(d.Reason, "cannot digest poison") || d.Deliveries != 1 ||
		!strings.Contains(string(d.Event), `"payload":"poison"`) || l.Next != d.Sequence {
		t.Fatalf("dead letters = %+v, want the poison event, FailedPrecondition with the processor's message, 1 delivery", l)
	}

	for _, c := range []struct{ method, path, body string }{
		{http.MethodGet, "/v1/deadletters?type=hello", ""},
		{http.MethodPost, "/v1/deadletters:replay", `{"type":"hello"}`},
	} {
		if code, b := request(c.method, c.path, c.body, "key-sender"); code != http.StatusForbidden {
			t.Errorf("%s %s without replay:hello: %d %s, want 403", c.method, c.path, code, b)
		}
	}
	if code, b := request(http.MethodGet, "/v1/deadletters?type=goodbye", "", "key-ops"); code != http.StatusForbidden {
		t.Errorf("GET dead letters of goodbye with replay:hello only: %d %s, want 403", code, b)
	}

	broken.Store(false)
	code, b := request(http.MethodPost, "/v1/deadletters:replay", `{"type":"TYPE_HELLO","sequences":[`+jsonUint(d.Sequence)+`]}`, "key-ops")
	var replay struct {
		Replayed []struct {
			DeadSequence uint64 `json:"dead_sequence"`
			Sequence     uint64 `json:"sequence"`
		} `json:"replayed"`
	}
	if err := json.Unmarshal(b, &replay); code != http.StatusOK || err != nil || len(replay.Replayed) != 1 ||
		replay.Replayed[0].DeadSequence != d.Sequence || replay.Replayed[0].Sequence != 3 {
		t.Fatalf("replay: %d %s (%v), want the dead letter stored again as sequence 3", code, b, err)
	}
	select {
	case got := <-delivered:
		if got != "poison" {
			t.Fatalf("delivered %q after the replay, want poison", got)
		}
	case <-ctx.Done():
		t.Fatal("the replayed event was not delivered")
	}
	if code, b := request(http.MethodGet, "/v1/deadletters?type=hello", "", "key-ops"); code != http.StatusOK ||
		!strings.Contains(string(b), `"deadletters":[]`) {
		t.Errorf("dead letters after the replay: %d %s, want none", code, b)
	}
	if code, b := request(http.MethodPost, "/v1/deadletters:replay", `{"type":"hello","sequences":[`+jsonUint(d.Sequence)+`]}`, "key-ops"); code != http.StatusNotFound {
		t.Errorf("replaying it again: %d %s, want 404", code, b)
	}
}

func jsonUint(n uint64) string { b, _ := json.Marshal(n); return string(b) }
