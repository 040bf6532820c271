package pubsub

import (
	"slices"
	"testing"
)

func contents(r *ring[int]) []int {
	var out []int
	for i := range r.len() {
		out = append(out, r.at(i))
	}
	return out
}

func TestRing(t *testing.T) {
	type op struct {
		push        int  // value to push, or -1 to pop
		wantValue   int  // evicted value on push, popped value on pop
		wantOK      bool // evicted on push, got a value on pop
		wantContent []int
	}
	const pop = -1
	tests := []struct {
		name  string
		limit int
		ops   []op
	}{
		{name: "holds nothing", limit: 0, ops: []op{
			{push: 1, wantValue: 1, wantOK: true},
			{push: pop},
		}},
		{name: "fifo", limit: 3, ops: []op{
			{push: 1, wantContent: []int{1}},
			{push: 2, wantContent: []int{1, 2}},
			{push: pop, wantValue: 1, wantOK: true, wantContent: []int{2}},
			{push: 3, wantContent: []int{2, 3}},
			{push: 4, wantContent: []int{2, 3, 4}},
			{push: 5, wantValue: 2, wantOK: true, wantContent: []int{3, 4, 5}},
			{push: 6, wantValue: 3, wantOK: true, wantContent: []int{4, 5, 6}},
			{push: pop, wantValue: 4, wantOK: true, wantContent: []int{5, 6}},
			{push: pop, wantValue: 5, wantOK: true, wantContent: []int{6}},
			{push: pop, wantValue: 6, wantOK: true},
			{push: pop},
			{push: 7, wantContent: []int{7}},
		}},
		{name: "grows while wrapped", limit: 20, ops: []op{
			{push: 1}, {push: 2}, {push: 3}, {push: 4}, {push: 5}, {push: 6},
			{push: pop, wantValue: 1, wantOK: true},
			{push: pop, wantValue: 2, wantOK: true},
			{push: 7}, {push: 8}, {push: 9}, {push: 10},
			{push: 11, wantContent: []int{3, 4, 5, 6, 7, 8, 9, 10, 11}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ring[int]{limit: tt.limit}
			for i, o := range tt.ops {
				var v int
				var ok bool
				if o.push == pop {
					v, ok = r.pop()
				} else {
					v, ok = r.push(o.push)
				}
				if v != o.wantValue || ok != o.wantOK {
					t.Fatalf("op %d (%d): got %d, %v; want %d, %v", i, o.push, v, ok, o.wantValue, o.wantOK)
				}
				if o.wantContent != nil && !slices.Equal(contents(&r), o.wantContent) {
					t.Fatalf("op %d (%d): ring holds %v, want %v", i, o.push, contents(&r), o.wantContent)
				}
				if len(r.buf) > tt.limit {
					t.Fatalf("op %d: storage of %d exceeds the limit %d", i, len(r.buf), tt.limit)
				}
			}
		})
	}
}
