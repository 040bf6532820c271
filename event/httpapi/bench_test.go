package httpapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// BenchmarkHTTPSend measures the HTTP front alone on the hot path — POST
// /v1/events through the in-process gateway, body limit, strict decoder and
// reply encoding — against a backend that answers at once, without a
// network on either side.
func BenchmarkHTTPSend(b *testing.B) {
	reply := &eventv1.Event{Id: "0123456789ab-1", Type: eventv1.Type_TYPE_HELLO, Payload: structpb.NewStringValue("hello")}
	api := newAPI(b, &stubBackend{resp: &eventv1.SendResponse{Event: reply, Outcome: eventv1.Outcome_OUTCOME_REPLIED}}, Options{})
	body := []byte(`{"type":"TYPE_HELLO","payload":"hello"}`)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(body))
			w := httptest.NewRecorder()
			api.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Errorf("HTTP %d: %s", w.Code, w.Body)
				return
			}
		}
	})
}
