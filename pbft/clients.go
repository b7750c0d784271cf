package pbft

import (
	"encoding/binary"
	"fmt"
	"sort"
)

// reqKey identifies a request for deduplication: a client and its timestamp (request id).
type reqKey struct {
	client string
	t      uint64
}

func keyOf(r *Request) reqKey { return reqKey{r.Client, r.Timestamp} }

// cachedReply is what a replica remembers of an executed request. view is the view it
// executed in, kept only locally: replicas may execute the same number in different views
// (before and after a view change), so it is not part of the replicated state.
type cachedReply struct {
	seq    uint64
	view   uint64
	result []byte
}

// clientRecord is the part of the replicated state that makes execution at-most-once:
// the replies of a client's most recent requests. It is in every checkpoint, so a
// replica that installs a snapshot deduplicates exactly as its peers do.
type clientRecord struct {
	replies map[uint64]cachedReply
	order   []uint64 // timestamps in execution order, oldest first
	// evicted is the highest timestamp dropped from the cache; an unknown request at or
	// below it may have executed already, so it is refused rather than risk running twice.
	evicted uint64
}

// clientTable holds one record per client.
type clientTable struct {
	capacity int
	records  map[string]*clientRecord
}

func newClientTable(capacity int) *clientTable {
	return &clientTable{capacity: capacity, records: make(map[string]*clientRecord)}
}

// lookup returns the cached reply of an executed request.
func (c *clientTable) lookup(k reqKey) (cachedReply, bool) {
	rec := c.records[k.client]
	if rec == nil {
		return cachedReply{}, false
	}
	rep, ok := rec.replies[k.t]
	return rep, ok
}

// stale reports a request that is not cached but too old to execute safely.
func (c *clientTable) stale(k reqKey) bool {
	rec := c.records[k.client]
	if rec == nil {
		return false
	}
	_, ok := rec.replies[k.t]
	return !ok && k.t <= rec.evicted
}

// record remembers an executed request's reply, evicting the client's oldest.
func (c *clientTable) record(k reqKey, rep cachedReply) {
	rec := c.records[k.client]
	if rec == nil {
		rec = &clientRecord{replies: make(map[uint64]cachedReply)}
		c.records[k.client] = rec
	}
	rec.replies[k.t] = rep
	rec.order = append(rec.order, k.t)
	if len(rec.order) > c.capacity {
		old := rec.order[0]
		rec.order = rec.order[1:]
		delete(rec.replies, old)
		if old > rec.evicted {
			rec.evicted = old
		}
	}
}

// appendSnapshot encodes the table canonically: clients sorted, replies in execution order.
func (c *clientTable) appendSnapshot(dst []byte) []byte {
	names := make([]string, 0, len(c.records))
	for name := range c.records {
		names = append(names, name)
	}
	sort.Strings(names)
	dst = appendUvarint(dst, uint64(len(names)))
	for _, name := range names {
		rec := c.records[name]
		dst = appendString(dst, name)
		dst = appendUvarint(dst, rec.evicted)
		dst = appendUvarint(dst, uint64(len(rec.order)))
		for _, t := range rec.order {
			rep := rec.replies[t]
			dst = appendUvarint(dst, t)
			dst = appendUvarint(dst, rep.seq)
			dst = appendBytes(dst, rep.result)
		}
	}
	return dst
}

// restore decodes what appendSnapshot wrote, consuming it from d.
func (c *clientTable) restore(d *decoder) error {
	records := make(map[string]*clientRecord)
	for i, n := 0, d.count(); i < n && d.err == nil; i++ {
		name := d.string()
		rec := &clientRecord{replies: make(map[uint64]cachedReply), evicted: d.uvarint()}
		for j, m := 0, d.count(); j < m && d.err == nil; j++ {
			t := d.uvarint()
			rep := cachedReply{seq: d.uvarint(), result: append([]byte(nil), d.bytes()...)}
			rec.replies[t] = rep
			rec.order = append(rec.order, t)
		}
		records[name] = rec
	}
	if d.err != nil {
		return fmt.Errorf("client table: %w", d.err)
	}
	c.records = records
	return nil
}

// snapshot is the replicated state at a checkpoint: the application's snapshot and the
// client table, each length-prefixed.
func encodeSnapshot(app []byte, clients *clientTable) []byte {
	dst := make([]byte, 0, len(app)+64)
	dst = binary.AppendUvarint(dst, uint64(len(app)))
	dst = append(dst, app...)
	return clients.appendSnapshot(dst)
}
