package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventproc/eventproc/event/httpapi"
	"github.com/eventproc/eventproc/event/pubsub"
	"github.com/eventproc/eventproc/event/sink"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// echo is a Backend that replies to every event with the event itself. A
// program serving a real sink passes its *sink.Sink instead.
type echo struct{}

func (echo) Send(_ context.Context, req *eventv1.SendRequest) (*eventv1.SendResponse, error) {
	return &eventv1.SendResponse{Outcome: eventv1.Outcome_OUTCOME_REPLIED, Event: req.GetEvent()}, nil
}

func (echo) SubscribeEvents(context.Context, []eventv1.Type, string) (*pubsub.Subscription, error) {
	return nil, status.Error(codes.Unimplemented, "echo publishes nothing")
}

func (echo) Status() []sink.RouteStatus { return nil }

func Example() {
	api, err := httpapi.New(echo{}, httpapi.Options{MaxBodyBytes: 64 << 10})
	if err != nil {
		panic(err)
	}
	// A program serves it with an http.Server, calling api.Shutdown when
	// the server's shutdown starts (srv.RegisterOnShutdown(api.Shutdown)).
	for _, body := range []string{`{"type":"TYPE_HELLO","payload":{"n":1}}`, ``} {
		w := httptest.NewRecorder()
		api.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/events", strings.NewReader(body)))
		if w.Code != http.StatusOK {
			var st struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			}
			_ = json.Unmarshal(w.Body.Bytes(), &st)
			fmt.Printf("%d: code %d, %s\n", w.Code, st.Code, st.Message)
			continue
		}
		fmt.Printf("%d: %s\n", w.Code, w.Body)
	}
	// Output:
	// 200: {"type":"TYPE_HELLO","payload":{"n":1}}
	// 400: code 3, empty request body: want a JSON event such as {"type":"TYPE_HELLO"}
}
