package sink

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"
)

// idGenerator makes event ids that are unique across sink restarts without
// the cost of a UUID per event: a random per-process prefix and a counter.
type idGenerator struct {
	prefix string
	n      atomic.Uint64
}

func newIDGenerator() *idGenerator {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return &idGenerator{prefix: hex.EncodeToString(b[:]) + "-"}
}

func (g *idGenerator) next() string {
	var buf [40]byte
	b := append(buf[:0], g.prefix...)
	return string(strconv.AppendUint(b, g.n.Add(1), 10))
}
