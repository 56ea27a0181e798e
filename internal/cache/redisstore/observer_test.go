package redisstore

import (
	"sync"
	"time"
)

type recObs struct {
	mu  sync.Mutex
	ops map[string]int
	st  []string
}

func (o *recObs) ObserveStore(op string, d time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ops == nil {
		o.ops = map[string]int{}
	}
	o.ops[op]++
}

func (o *recObs) BreakerState(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.st = append(o.st, s)
}

func (o *recObs) states() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.st...)
}

func (o *recObs) count(op string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ops[op]
}
