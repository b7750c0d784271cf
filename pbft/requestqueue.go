package pbft

// requestQueue holds requests a replica knows of that no accepted pre-prepare carries
// yet, in arrival order: the primary orders them; a backup times them.
type requestQueue struct {
	// order[head:] is the arrival order; a removed request stays there until pop passes
	// it. Popping moves head, and an emptied queue starts again at the front of the same
	// array, so a steady stream of batches does not allocate here.
	order []*Request
	head  int
	byKey map[reqKey]*Request
}

// maxKeptOrder bounds the capacity of an emptied queue's array that is kept for reuse: a
// burst's larger one goes.
const maxKeptOrder = 4096

func newRequestQueue() *requestQueue { return &requestQueue{byKey: make(map[reqKey]*Request)} }

func (q *requestQueue) len() int { return len(q.byKey) }

func (q *requestQueue) has(k reqKey) bool { _, ok := q.byKey[k]; return ok }

// live reports whether r, an entry of order, is still queued: not popped, not removed,
// not replaced by a later request under its key.
func (q *requestQueue) live(r *Request) bool { return q.byKey[keyOf(r)] == r }

func (q *requestQueue) push(r *Request) {
	if n := len(q.order); n == cap(q.order) && n > 0 && len(q.byKey) <= n/2 {
		// Full, and half of it popped or removed (a backup removes, never pops): keep the
		// live requests, at the front, instead of growing.
		live := q.order[:0]
		for _, x := range q.order[q.head:] {
			if q.live(x) {
				live = append(live, x)
			}
		}
		clear(q.order[len(live):])
		q.order, q.head = live, 0
	}
	q.byKey[keyOf(r)] = r
	q.order = append(q.order, r)
}

// remove forgets k's request; an emptied queue lets go of the array's stale entries, as
// pop does (a backup removes, never pops).
func (q *requestQueue) remove(k reqKey) {
	delete(q.byKey, k)
	if len(q.byKey) == 0 {
		q.reset()
	}
}

// reset empties the array for reuse, or lets a burst's large one go.
func (q *requestQueue) reset() {
	clear(q.order)
	q.order, q.head = q.order[:0], 0
	if cap(q.order) > maxKeptOrder {
		q.order = nil
	}
}

// pop takes up to max requests in arrival order, skipping removed ones, and stops before
// their operations pass maxBytes (a larger request goes alone), so that a pre-prepare
// stays within what the bus carries. The batch it returns is the pre-prepare's: its own
// allocation, sized for what is queued.
func (q *requestQueue) pop(max, maxBytes int) []*Request {
	batch := make([]*Request, 0, min(max, q.len()))
	size := 0
	i := q.head
	for ; i < len(q.order) && len(batch) < max; i++ {
		r := q.order[i]
		k := keyOf(r)
		if q.byKey[k] != r {
			continue
		}
		if len(batch) > 0 && (size+RequestSize(r) > maxBytes || IsReconfig(r.Op)) {
			break
		}
		batch = append(batch, r)
		size += RequestSize(r)
		delete(q.byKey, k)
		if IsReconfig(r.Op) {
			i++
			break // a reconfiguration goes alone
		}
	}
	clear(q.order[q.head:i]) // let the popped and removed requests go
	q.head = i
	if len(q.byKey) == 0 {
		q.reset()
	}
	return batch
}

// all returns the queued requests in arrival order.
func (q *requestQueue) all() []*Request {
	var out []*Request
	for _, r := range q.order[q.head:] {
		if q.live(r) {
			out = append(out, r)
		}
	}
	return out
}
