package pbft

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"strings"
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
	// op is the digest of the operation that executed: a retransmission must repeat it,
	// and a request with the same id and another operation is answered as a conflict.
	op opDigest
}

// ConflictResult begins the result of a reply to a request whose (client, timestamp)
// was ordered with another operation: a retransmission must repeat its request, so this
// one is neither ordered nor executed. The rest of the result is the digest of the
// refused operation (ConflictResultFor), so a client that later reuses the id for the
// first operation again cannot take a late conflict answer for its own. Its Seq is the
// number the other operation has, so every correct replica answers alike and a client
// needs matching ones, as for any result. It is not UTF-8 (results of the key-value
// store are text), so no application result equals it.
const ConflictResult = "\xffconflict: this client and timestamp were used with another operation "

// ConflictResultFor is the result replicas answer a request with operation op whose id
// was used with another operation.
func ConflictResultFor(op []byte) []byte {
	d := digestOp(op)
	return append([]byte(ConflictResult), d[:]...)
}

// IsConflictAnswerTo reports whether result is ConflictResultFor(op), given op's
// SHA-256 (a client already has it): no encoding of the answer to compare with.
func IsConflictAnswerTo(result []byte, opSHA256 *[32]byte) bool {
	var d opDigest
	rest, ok := bytes.CutPrefix(result, []byte(ConflictResult))
	return ok && len(rest) == len(d) && bytes.Equal(rest, opSHA256[:len(d)])
}

// IsConflict reports whether result answers a conflicting request (any operation).
func IsConflict(result []byte) bool {
	return bytes.HasPrefix(result, []byte(ConflictResult))
}

// opDigest is the first half of an operation's SHA-256: collision-resistant enough
// (only a client could gain from a collision, and only a wrong answer to itself), and
// the client table in every checkpoint holds one per cached reply.
type opDigest [16]byte

func digestOp(op []byte) opDigest {
	h := sha256.Sum256(op)
	return opDigest(h[:16])
}

func (d *decoder) opDigest() opDigest {
	var x opDigest
	if d.err != nil {
		return x
	}
	if len(d.buf) < len(x) {
		d.fail("short operation digest")
		return x
	}
	copy(x[:], d.buf)
	d.buf = d.buf[len(x):]
	return x
}

// clientRecord is the part of the replicated state that makes execution at-most-once:
// the replies of a client's most recent requests. It is in every checkpoint, so a
// replica that installs a snapshot deduplicates exactly as its peers do.
type clientRecord struct {
	// order, replies and starts hold evicted entries before head: eviction moves head
	// instead of re-slicing, and appending moves the live entries back to the front when
	// the buffers are full, so a client's steady stream of requests allocates nothing
	// here (re-slicing lost the front of the buffers, and every few hundred requests
	// reallocated all three).
	head    int
	order   []uint64      // timestamps in execution order, oldest first (from head)
	replies []cachedReply // replies[i] is order[i]'s
	// disorder counts the places where order goes down. Clients number their requests
	// upwards, so it is almost always 0 and a lookup is a binary search over a few cache
	// lines; a map per client here cost more in cache misses than all the protocol's maps.
	disorder int
	// evicted is the highest timestamp dropped from the cache; an unknown request at or
	// below it may have executed already, so it is refused rather than risk running twice.
	evicted uint64
	// newest is the highest timestamp recorded (or evicted): anything above it is unknown.
	newest uint64
	// enc holds the snapshot encoding of the cached replies, appended as they execute;
	// starts[i] is where order[i]'s begins. A checkpoint copies it instead of encoding
	// every cached reply again: with many clients that was most of a checkpoint's cost.
	enc    []byte
	starts []int
}

// find returns the cached reply of the request with timestamp t (none in a nil record:
// a client not seen yet).
func (rec *clientRecord) find(t uint64) (cachedReply, bool) {
	if rec == nil || t > rec.newest {
		return cachedReply{}, false
	}
	order, replies := rec.order[rec.head:], rec.replies[rec.head:]
	if rec.disorder == 0 {
		if i, ok := slices.BinarySearch(order, t); ok {
			return replies[i], true
		}
		return cachedReply{}, false
	}
	if i := slices.Index(order, t); i >= 0 {
		return replies[i], true
	}
	return cachedReply{}, false
}

// cached is how many replies the record holds.
func (rec *clientRecord) cached() int { return len(rec.order) - rec.head }

// clientTable holds one record per client.
type clientTable struct {
	capacity int
	records  map[string]*clientRecord
	names    []string // sorted client names; nil when a client was added since
}

func newClientTable(capacity int) *clientTable {
	return &clientTable{capacity: capacity, records: make(map[string]*clientRecord)}
}

// lookup returns the cached reply of an executed request.
func (c *clientTable) lookup(k reqKey) (cachedReply, bool) {
	return c.records[k.client].find(k.t)
}

// stale reports a request that is not cached but too old to execute safely.
func (c *clientTable) stale(k reqKey) bool {
	rec := c.records[k.client]
	_, ok := rec.find(k.t)
	return !ok && rec.evictedUpTo(k.t)
}

// evictedUpTo reports that requests up to timestamp t may have had their replies evicted
// (none in a nil record).
func (rec *clientRecord) evictedUpTo(t uint64) bool { return rec != nil && t <= rec.evicted }

// record remembers an executed request's reply, evicting the client's oldest.
func (c *clientTable) record(k reqKey, rep cachedReply) {
	c.recordIn(c.records[k.client], k, rep)
}

// recordIn is record with k.client's record already looked up (nil: none yet).
func (c *clientTable) recordIn(rec *clientRecord, k reqKey, rep cachedReply) {
	if rec == nil {
		rec = &clientRecord{}
		// The key outlives the request: a copy of its own, so that it does not keep the
		// names of the request's whole batch (requestNames) alive.
		c.records[strings.Clone(k.client)] = rec
		c.names = nil
	}
	rec.add(k.t, rep)
	if rec.cached() > c.capacity {
		h := rec.head
		old := rec.order[h]
		if rec.order[h+1] < old {
			rec.disorder--
		}
		rec.replies[h] = cachedReply{} // let its result go
		rec.head++
		if old > rec.evicted {
			rec.evicted = old
		}
		if off := rec.starts[rec.head]; off > len(rec.enc)/2 {
			// Drop the evicted encodings once they are half the buffer, in place.
			rec.enc = rec.enc[:copy(rec.enc, rec.enc[off:])]
			for i := rec.head; i < len(rec.starts); i++ {
				rec.starts[i] -= off
			}
		}
	}
}

func (rec *clientRecord) add(t uint64, rep cachedReply) {
	if n := len(rec.order); n > rec.head && t < rec.order[n-1] {
		rec.disorder++
	}
	if h := rec.head; h > 0 && len(rec.order) == cap(rec.order) {
		// Full: move the live entries to the front instead of growing.
		n := copy(rec.order, rec.order[h:])
		copy(rec.replies, rec.replies[h:])
		copy(rec.starts, rec.starts[h:])
		clear(rec.replies[n:])
		rec.order, rec.replies, rec.starts, rec.head = rec.order[:n], rec.replies[:n], rec.starts[:n], 0
	}
	rec.newest = max(rec.newest, t)
	rec.order = append(rec.order, t)
	rec.replies = append(rec.replies, rep)
	rec.starts = append(rec.starts, len(rec.enc))
	rec.enc = appendUvarint(rec.enc, t)
	rec.enc = appendUvarint(rec.enc, rep.seq)
	rec.enc = appendBytes(rec.enc, rep.result)
	rec.enc = append(rec.enc, rep.op[:]...)
}

// sortedNames returns the client names in order, cached between new clients.
func (c *clientTable) sortedNames() []string {
	if c.names == nil || len(c.names) != len(c.records) {
		c.names = make([]string, 0, len(c.records))
		for name := range c.records {
			c.names = append(c.names, name)
		}
		sort.Strings(c.names)
	}
	return c.names
}

// snapshotSize bounds what appendSnapshot appends, so that encodeSnapshot allocates a
// snapshot once.
func (c *clientTable) snapshotSize() int {
	size := 10
	for _, name := range c.sortedNames() {
		rec := c.records[name]
		size += len(name) + 30
		if rec.cached() > 0 {
			size += len(rec.enc) - rec.starts[rec.head] // not the evicted encodings before it
		}
	}
	return size
}

// appendSnapshot encodes the table canonically: clients sorted, replies in execution order.
// encodeSnapshot sizes dst for it (snapshotSize).
func (c *clientTable) appendSnapshot(dst []byte) []byte {
	names := c.sortedNames()
	dst = appendUvarint(dst, uint64(len(names)))
	for _, name := range names {
		rec := c.records[name]
		dst = appendString(dst, name)
		dst = appendUvarint(dst, rec.evicted)
		dst = appendUvarint(dst, uint64(rec.cached()))
		if rec.cached() > 0 {
			dst = append(dst, rec.enc[rec.starts[rec.head]:]...)
		}
	}
	return dst
}

// restore decodes what appendSnapshot wrote, consuming it from d.
func (c *clientTable) restore(d *decoder) error {
	records := make(map[string]*clientRecord)
	for i, n := 0, d.count(); i < n && d.err == nil; i++ {
		name := d.string()
		rec := &clientRecord{evicted: d.uvarint()}
		rec.newest = rec.evicted
		for j, m := 0, d.count(); j < m && d.err == nil; j++ {
			t := d.uvarint()
			rep := cachedReply{seq: d.uvarint(), result: append([]byte(nil), d.bytes()...)}
			rep.op = d.opDigest()
			rec.add(t, rep)
		}
		records[name] = rec
	}
	if d.err != nil {
		return fmt.Errorf("client table: %w", d.err)
	}
	c.records = records
	return nil
}

// snapshot is the replicated state at a checkpoint: the application's snapshot
// (length-prefixed), the client table and the configuration.
func encodeSnapshot(app []byte, clients *clientTable, conf configState) []byte {
	size := 10 + len(app) + clients.snapshotSize() + 64 // 64: a configuration's numbers
	for _, m := range []*Membership{&conf.cur, conf.next} {
		if m != nil {
			size += 2 * len(m.Members)
			for _, id := range m.Members {
				size += len(id)
			}
		}
	}
	dst := make([]byte, 0, size)
	dst = binary.AppendUvarint(dst, uint64(len(app)))
	dst = append(dst, app...)
	dst = clients.appendSnapshot(dst)
	return appendConfigState(dst, conf)
}
