package pbft

// Clients on their way back: a closed-loop client (every gateway's client under load)
// sends its next request once its reply arrives, so the clients whose requests a primary
// just executed are the requests about to come. A driver timing batches (pbft/node's
// batching) waits for them, at most its batch timeout, instead of cutting a batch the
// moment nothing is in flight: cutting at once splits the clients into as many groups as
// rounds fit in one client's round trip, each group paying a round of its own.

// maxReturning bounds the clients a primary tracks: past it, it simply waits for no more
// of them (the batch timeout bounds any wait anyway).
const maxReturning = 4096

// returning counts, at the primary, the clients whose newest request it executed and
// that have sent no newer one since. Only the primary tracks them, and a client counts
// for at most two ticks: one that does not come back (an open-loop client, a gateway
// that stopped) stops delaying batches. Local bookkeeping, not replicated state.
type returning struct {
	clients map[string]returningClient
	back    int // clients with back set
}

type returningClient struct {
	latest uint64 // the newest timestamp of a request of this client the primary queued
	back   bool   // its request latest (or a newer one) executed here, none newer came
	tick   uint64 // the tick of the last change
}

// executed notes that the primary executed client's request t.
func (w *returning) executed(client string, t, tick uint64) {
	c, ok := w.clients[client]
	if !ok && len(w.clients) >= maxReturning {
		return
	}
	if c.back || t < c.latest {
		return // already counted, or its next request came before this one executed
	}
	if w.clients == nil {
		w.clients = make(map[string]returningClient)
	}
	c.latest, c.back, c.tick = t, true, tick
	w.back++
	w.clients[client] = c
}

// arrived notes that the primary queued client's request t: the client is back.
func (w *returning) arrived(client string, t, tick uint64) {
	c, ok := w.clients[client]
	if !ok && len(w.clients) >= maxReturning {
		return
	}
	if w.clients == nil {
		w.clients = make(map[string]returningClient)
	}
	if t > c.latest {
		c.latest = t
	}
	if c.back {
		c.back = false
		w.back--
	}
	c.tick = tick
	w.clients[client] = c
}

// expire forgets the clients not heard of since the tick before tick.
func (w *returning) expire(tick uint64) {
	for id, c := range w.clients {
		if c.tick+1 < tick {
			if c.back {
				w.back--
			}
			delete(w.clients, id)
		}
	}
}

func (w *returning) reset() {
	clear(w.clients)
	w.back = 0
}

// Returning reports, at an active primary, how many clients whose requests it executed
// have not sent their next one yet (returning.go): the requests a batch about to be cut
// could still take in. Zero at a backup.
func (r *Replica) Returning() int {
	if !r.IsPrimary() || !r.viewActive {
		return 0
	}
	return r.ret.back
}
