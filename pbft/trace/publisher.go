package trace

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"
)

// Options tune a Publisher; zero fields take the defaults.
type Options struct {
	// Buffer is how many events may wait for the publisher goroutine; Emit drops beyond
	// it. Default 1024.
	Buffer int
	// Rate is the budget of events per second. Above it the publisher drops events and
	// samples rounds more sparsely; below a quarter of it, more densely. Default 1000.
	Rate int
	// Window is the period over which the budget is enforced and sampling adjusted.
	// Default 250ms.
	Window time.Duration
	// MaxBatch is how many events one published message carries at most. Default 64.
	MaxBatch int
}

func (o *Options) defaults() {
	if o.Buffer <= 0 {
		o.Buffer = 1024
	}
	if o.Rate <= 0 {
		o.Rate = 1000
	}
	if o.Window <= 0 {
		o.Window = 250 * time.Millisecond
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 64
	}
}

// maxShift bounds sparse sampling at one round in 2^20.
const maxShift = 20

// Stats are a Publisher's counters.
type Stats struct {
	Published uint64 // events handed to the sink
	Dropped   uint64 // events dropped: buffer full, over budget, or the sink failed
	// SampleEvery is the current sampling: one sequence number in SampleEvery is traced.
	SampleEvery uint64
}

// Publisher takes events from one goroutine (a replica's) without blocking it and
// publishes them, batched as newline-separated JSON, from its own goroutine.
type Publisher struct {
	o    Options
	sink func([]byte) error
	ch   chan Event

	shift     atomic.Uint32
	offered   atomic.Uint64 // events Emit saw in the current window
	published atomic.Uint64
	dropped   atomic.Uint64

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// NewPublisher returns a publisher that hands each batch to sink (which must not retain
// it). Start starts its goroutine.
func NewPublisher(sink func([]byte) error, o Options) *Publisher {
	o.defaults()
	return &Publisher{o: o, sink: sink, ch: make(chan Event, o.Buffer), stop: make(chan struct{}), done: make(chan struct{})}
}

// Sampled reports whether events of sequence number seq are traced now. Sequence number
// 0 (events with no number) is always sampled.
func (p *Publisher) Sampled(seq uint64) bool {
	return seq&(1<<p.shift.Load()-1) == 0
}

// SampleEvery is 1 when every round is traced, otherwise the sampling period.
func (p *Publisher) SampleEvery() uint64 { return 1 << p.shift.Load() }

// Emit queues e; it never blocks. It reports false if e was dropped.
func (p *Publisher) Emit(e Event) bool {
	p.offered.Add(1)
	select {
	case p.ch <- e:
		return true
	default:
		p.dropped.Add(1)
		return false
	}
}

// Stats returns the counters.
func (p *Publisher) Stats() Stats {
	return Stats{Published: p.published.Load(), Dropped: p.dropped.Load(), SampleEvery: p.SampleEvery()}
}

// Start runs the publisher goroutine; the returned function stops it, after it has
// published what was queued (within the budget), and waits for it.
func (p *Publisher) Start() (stop func()) {
	go p.run()
	return func() {
		p.stopOnce.Do(func() { close(p.stop) })
		<-p.done
	}
}

func (p *Publisher) run() {
	defer close(p.done)
	window := time.NewTicker(p.o.Window)
	defer window.Stop()
	budget := p.windowBudget()
	tokens := budget
	var buf []byte
	batch := 0
	flush := func() {
		if batch == 0 {
			return
		}
		if err := p.sink(buf); err != nil {
			p.dropped.Add(uint64(batch))
		} else {
			p.published.Add(uint64(batch))
		}
		buf, batch = buf[:0], 0
	}
	take := func(e Event) {
		// Events with no sequence number (view changes, checkpoints, summaries) are
		// rare and always kept; numbered ones spend the budget.
		if e.Seq != 0 {
			if tokens <= 0 {
				p.dropped.Add(1)
				return
			}
			tokens--
		}
		b, err := json.Marshal(e)
		if err != nil {
			p.dropped.Add(1)
			return
		}
		buf = append(append(buf, b...), '\n')
		batch++
		if batch >= p.o.MaxBatch {
			flush()
		}
	}
	for {
		select {
		case e := <-p.ch:
			take(e)
			// Take whatever else is queued before publishing, so that a burst goes out
			// in few messages.
			for more := true; more && batch < p.o.MaxBatch; {
				select {
				case e := <-p.ch:
					take(e)
				default:
					more = false
				}
			}
			flush()
		case <-window.C:
			p.adjust(budget)
			tokens = budget
		case <-p.stop:
			for {
				select {
				case e := <-p.ch:
					take(e)
				default:
					flush()
					return
				}
			}
		}
	}
}

func (p *Publisher) windowBudget() int {
	b := int(int64(p.o.Rate) * int64(p.o.Window) / int64(time.Second))
	return max(b, 1)
}

// adjust makes the sampling period as many times longer as the last window offered more
// than the budget (rounded up to a power of two), and halves it when the window offered
// less than a quarter of the budget.
func (p *Publisher) adjust(budget int) {
	offered := p.offered.Swap(0)
	s := p.shift.Load()
	switch {
	case offered > uint64(budget):
		for offered > uint64(budget) && s < maxShift {
			offered /= 2
			s++
		}
		p.shift.Store(s)
	case offered < uint64(budget)/4 && s > 0:
		p.shift.Store(s - 1)
	}
}
