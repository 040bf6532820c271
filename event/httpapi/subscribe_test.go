package httpapi

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// FuzzSubscribeRequest feeds arbitrary query strings and headers to the
// subscribe request parser: it never panics, fails only with
// INVALID_ARGUMENT, and what it accepts names at least one valid type.
func FuzzSubscribeRequest(f *testing.F) {
	for _, seed := range []struct{ query, lastID, accept string }{
		{"types=TYPE_HELLO", "", ""},
		{"types=hello,goodbye&last_event_id=12", "", "text/event-stream"},
		{"types=Hello&types=GOODBYE&lastEventId=3", "7", "application/json, text/event-stream;q=0.5"},
		{"types=,,&types=", "", "*/*"},
		{"types=TYPE_UNSPECIFIED", "", ""},
		{"types=%zz", "", ""},
		{"types=hello;goodbye", "x", "text/event-stream;q=0"},
		{"bogus", "", "text/event-stream;;"},
		{"types=" + strings.Repeat("hello,", 100), "", ""},
	} {
		f.Add(seed.query, seed.lastID, seed.accept)
	}
	f.Fuzz(func(t *testing.T, query, lastID, accept string) {
		req := httptest.NewRequest("GET", "/v1/events:subscribe", nil)
		req.URL.RawQuery = query
		req.Header.Set("Last-Event-ID", lastID)
		req.Header.Set("Accept", accept)
		got, err := parseSubscribeRequest(req)
		if err != nil {
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("error %v, want INVALID_ARGUMENT", err)
			}
			return
		}
		if len(got.types) == 0 {
			t.Fatalf("accepted %q with no types", query)
		}
		for _, typ := range got.types {
			if _, ok := eventv1.Type_name[int32(typ)]; !ok || typ == eventv1.Type_TYPE_UNSPECIFIED {
				t.Fatalf("accepted %q with type %v", query, typ)
			}
		}
		if id := strings.TrimSpace(lastID); id != "" && got.lastEventID != id {
			t.Errorf("last event id %q, want the header's %q", got.lastEventID, id)
		}
		if _, err := url.ParseQuery(query); err != nil {
			t.Errorf("accepted a malformed query %q", query)
		}
	})
}
