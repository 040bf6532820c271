// Package eventid makes event ids for the sink and the Go client: a random
// prefix per generator and a counter, unique across restarts without the
// cost of a UUID per event.
package eventid

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"
)

// Generator makes ids "<prefix>-<n>": a random 12-digit hex prefix and a
// counter from 1. It is safe for concurrent use.
type Generator struct {
	prefix string // with its "-"
	n      atomic.Uint64
}

// New returns a Generator with a fresh random prefix.
func New() *Generator {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return &Generator{prefix: hex.EncodeToString(b[:]) + "-"}
}

// Prefix is the generator's random prefix, without the "-".
func (g *Generator) Prefix() string { return g.prefix[:len(g.prefix)-1] }

// Next returns a new id.
func (g *Generator) Next() string {
	var buf [40]byte
	b := append(buf[:0], g.prefix...)
	return string(strconv.AppendUint(b, g.n.Add(1), 10))
}
