// Package workpool runs short tasks on reused goroutines.
//
// The sink and the processor SDK run one task per event. Starting a
// goroutine for each costs little by itself, but every new goroutine starts
// on a small stack and grows it, copying it, the first time the task calls
// deep into gRPC or protobuf; profiles showed that copying at 9–16 % of the
// CPU on the busiest paths. A Pool keeps finished goroutines waiting for the
// next task, with their grown stacks.
package workpool

import "sync"

// Pool runs tasks on reused goroutines. It does not bound how many run at
// once: callers bound that themselves (with a semaphore, or by the number
// of requests they admit), and the Pool never holds more goroutines than
// the most tasks that ran at once. Go and Close must not be called
// concurrently with each other; Go must not be called after Close.
type Pool struct {
	work chan func()
	once sync.Once
}

// New returns an empty pool.
func New() *Pool {
	return &Pool{work: make(chan func())}
}

// Go runs f on an idle goroutine of the pool, or on a new one when none is
// idle. It does not wait for f.
func (p *Pool) Go(f func()) {
	select {
	case p.work <- f:
	default:
		go p.worker(f)
	}
}

func (p *Pool) worker(f func()) {
	for ok := true; ok; f, ok = <-p.work {
		f()
	}
}

// Close lets the pool's goroutines exit once their current task is done.
// It does not wait for them. It is idempotent.
func (p *Pool) Close() {
	p.once.Do(func() { close(p.work) })
}
