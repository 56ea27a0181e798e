package events

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Recorder takes events from the milter without ever making it wait: it
// queues them (bounded), writes them to the store in batches from its own
// goroutine, and hands each to the webhook, if any. A store that cannot
// take a batch costs that batch (counted and logged once per interval),
// never mail.
type Recorder struct {
	w       Writer
	hook    *Webhook
	log     *slog.Logger
	timeout time.Duration
	queue   chan Event
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once

	written, dropped atomic.Uint64
	lastLog          atomic.Int64
	// OnDrop is told how many events were dropped (metrics).
	OnDrop func(n int)
	// OnWritten is told how many events were written (metrics).
	OnWritten func(n int)
}

// RecorderOptions configure a Recorder.
type RecorderOptions struct {
	Queue   int           // events waiting at most (default 10000)
	Timeout time.Duration // one batch's store budget (default 2 s)
	Webhook *Webhook      // nil: none
	Logger  *slog.Logger
}

// NewRecorder starts a recorder writing to w (nil: webhook only).
func NewRecorder(w Writer, o RecorderOptions) *Recorder {
	if o.Queue <= 0 {
		o.Queue = 10000
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	r := &Recorder{w: w, hook: o.Webhook, log: o.Logger, timeout: o.Timeout,
		queue: make(chan Event, o.Queue), stop: make(chan struct{}), done: make(chan struct{})}
	go r.loop()
	return r
}

// Record queues events; it never blocks.
func (r *Recorder) Record(es ...Event) {
	for _, e := range es {
		select {
		case r.queue <- e:
		default:
			r.drop(1, "queue full")
		}
	}
}

// Stats returns how many events were written and dropped.
func (r *Recorder) Stats() (written, dropped uint64) { return r.written.Load(), r.dropped.Load() }

func (r *Recorder) drop(n int, why string) {
	total := r.dropped.Add(uint64(n))
	if r.OnDrop != nil {
		r.OnDrop(n)
	}
	now := time.Now().Unix()
	if last := r.lastLog.Load(); now-last >= 10 && r.lastLog.CompareAndSwap(last, now) {
		r.log.Warn("bounce events dropped", "why", why, "dropped_total", total)
	}
}

// Close writes what is queued (within the timeout) and stops.
func (r *Recorder) Close() {
	r.once.Do(func() { close(r.stop) })
	<-r.done
	if r.hook != nil {
		r.hook.Close()
	}
}

func (r *Recorder) loop() {
	defer close(r.done)
	batch := make([]Event, 0, 256)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if r.w != nil {
			ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
			err := r.w.AppendEvents(ctx, batch)
			cancel()
			if err != nil {
				r.drop(len(batch), "store: "+err.Error())
			} else {
				r.written.Add(uint64(len(batch)))
				if r.OnWritten != nil {
					r.OnWritten(len(batch))
				}
			}
		}
		batch = batch[:0]
	}
	add := func(e Event) {
		batch = append(batch, e)
		if r.hook != nil {
			r.hook.Send(e)
		}
		if len(batch) >= cap(batch) {
			flush()
		}
	}
	for {
		select {
		case e := <-r.queue:
			add(e)
		case <-tick.C:
			flush()
		case <-r.stop:
			// What was queued before Close is still written.
			for {
				select {
				case e := <-r.queue:
					add(e)
				default:
					flush()
					return
				}
			}
		}
	}
}
