package pubsub

import (
	"errors"
	"slices"
	"testing"
)

func seqs(es []entry) []uint64 {
	var out []uint64
	for _, e := range es {
		out = append(out, e.seq)
	}
	return out
}

func TestHistory(t *testing.T) {
	tests := []struct {
		name      string
		limit     int
		evicted   int      // evictedLimit; 0 means 1024
		added     []uint64 // sequence numbers added, increasing
		after     uint64
		wantAfter []uint64
		wantLost  uint64
	}{
		{name: "empty", limit: 4, after: 0},
		{name: "all retained", limit: 4, added: []uint64{1, 2, 3}, after: 0, wantAfter: []uint64{1, 2, 3}},
		{name: "after the middle", limit: 4, added: []uint64{2, 5, 7, 9}, after: 5, wantAfter: []uint64{7, 9}},
		{name: "after a gap value", limit: 4, added: []uint64{2, 5, 7, 9}, after: 6, wantAfter: []uint64{7, 9}},
		{name: "after the newest", limit: 4, added: []uint64{2, 5}, after: 5},
		{name: "wrapped, nothing lost", limit: 3, added: []uint64{1, 2, 3, 4, 5, 6, 7}, after: 4, wantAfter: []uint64{5, 6, 7}},
		{name: "wrapped, some lost", limit: 3, added: []uint64{1, 2, 3, 4, 5, 6, 7}, after: 1, wantAfter: []uint64{5, 6, 7}, wantLost: 3},
		{name: "sparse, lost bounded by count", limit: 2, added: []uint64{10, 20, 30, 40}, after: 0, wantAfter: []uint64{30, 40}, wantLost: 2},
		{name: "sparse, lost after the id", limit: 2, added: []uint64{10, 20, 30, 40}, after: 18, wantAfter: []uint64{30, 40}, wantLost: 1},
		{name: "sparse, lost before the id", limit: 2, added: []uint64{10, 20, 30, 40}, after: 20, wantAfter: []uint64{30, 40}},
		// 20, 30 and 40 were lost; 20 is forgotten, and bounded by 20-15.
		{name: "forgotten, upper bound", limit: 1, evicted: 2, added: []uint64{10, 20, 30, 40, 50}, after: 15, wantAfter: []uint64{50}, wantLost: 4},
		{name: "forgotten before the id", limit: 1, evicted: 2, added: []uint64{10, 20, 30, 40, 50}, after: 25, wantAfter: []uint64{50}, wantLost: 2},
		{name: "forgotten, bounded by count", limit: 1, evicted: 1, added: []uint64{10, 20, 30, 40, 50}, after: 0, wantAfter: []uint64{50}, wantLost: 4},
		{name: "disabled", limit: 0, added: []uint64{1, 2, 3}, after: 1, wantLost: 2},
		{name: "disabled, nothing after", limit: 0, added: []uint64{1, 2, 3}, after: 3},
		{name: "grows past first allocation", limit: 100, added: seqRange(1, 60), after: 50, wantAfter: seqRange(51, 60)},
		{name: "wraps many times", limit: 7, added: seqRange(1, 1000), after: 995, wantAfter: seqRange(996, 1000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evicted := tt.evicted
			if evicted == 0 {
				evicted = 1024
			}
			h := newHistory(tt.limit, evicted)
			for _, seq := range tt.added {
				h.add(entry{seq: seq})
			}
			if got := seqs(h.appendAfter(nil, tt.after)); !slices.Equal(got, tt.wantAfter) {
				t.Errorf("appendAfter(%d) = %v, want %v", tt.after, got, tt.wantAfter)
			}
			if got, _ := h.lostAfter(tt.after); got != tt.wantLost {
				t.Errorf("lostAfter(%d) = %d, want %d", tt.after, got, tt.wantLost)
			}
			if got := h.events.len(); got != min(len(tt.added), tt.limit) {
				t.Errorf("retains %d events, want %d", got, min(len(tt.added), tt.limit))
			}
		})
	}
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func FuzzParseLastEventID(f *testing.F) {
	for _, s := range []string{"", "0", "1", "42", "007", "-1", "+1", " 1", "1.5", "0x10", "18446744073709551615", "18446744073709551616", "abc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		after, resume, err := parseLastEventID(id)
		if id == "" {
			if err != nil || resume {
				t.Fatalf("parseLastEventID(%q) = %d, %v, %v; want 0, false, nil", id, after, resume, err)
			}
			return
		}
		digits := len(id) > 0
		for _, r := range id {
			digits = digits && r >= '0' && r <= '9'
		}
		if err == nil {
			if !digits || !resume {
				t.Fatalf("parseLastEventID(%q) = %d, %v, nil; want an error for a non-decimal id", id, after, resume)
			}
			return
		}
		if !errors.Is(err, ErrInvalidLastEventID) {
			t.Fatalf("parseLastEventID(%q) error = %v, want ErrInvalidLastEventID", id, err)
		}
		if digits && len(id) < 20 {
			t.Fatalf("parseLastEventID(%q) = %v; want a decimal id below 2^64 accepted", id, err)
		}
	})
}
