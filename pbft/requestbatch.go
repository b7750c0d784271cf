package pbft

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Request batches: a gateway sends the requests it has queued for one replica in one bus
// message (KindRequests) instead of one message each. The bus envelope around the batch
// authenticates the whole batch as the gateway's, sealed for that replica. Each ordered
// request keeps its own authenticator (the client's tags over RequestDigest), since a
// primary relays it to the backups in a pre-prepare; a read-only request, never relayed,
// may leave its out and rely on the envelope. A replica checks every request of a batch
// on its own (it must name the envelope's gateway, and its tags, if any or if it is
// ordered, must verify) and refuses a forged or altered one without refusing the others.

// KindRequests carries several requests of one gateway in one bus message: ordered ones
// to one replica (the primary), read-only ones broadcast to every replica (even a lone
// read: its envelope authenticates it). A lone ordered request still travels as
// KindRequest.
const KindRequests = "requests"

// MaxRequestsPerMessage bounds what DecodeRequests accepts, and so what a sender puts in
// one batch.
const MaxRequestsPerMessage = 1 << 12

// AppendRequests packs reqs onto b as a count, then each request's wire encoding with its
// length.
func AppendRequests(b []byte, reqs []*Request) []byte {
	b = binary.AppendUvarint(b, uint64(len(reqs)))
	var one []byte
	for _, r := range reqs {
		one = AppendMessage(one[:0], r)
		b = binary.AppendUvarint(b, uint64(len(one)))
		b = append(b, one...)
	}
	return b
}

// minFramedRequest is the fewest bytes a request takes in a requests message: its length,
// its kind and one byte for each of its five fields.
const minFramedRequest = 7

// DecodeRequests unpacks AppendRequests. It checks the framing only: each request's
// authenticator is the receiver's to verify. The requests share one allocation, and
// their names a few more (requestNames), instead of three allocations each.
func DecodeRequests(b []byte) ([]*Request, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n == 0 || n > MaxRequestsPerMessage {
		return nil, errors.New("pbft: bad requests count")
	}
	b = b[k:]
	// A count above what the input can hold is a lie, and no reason to allocate.
	c := int(min(n, uint64(len(b)/minFramedRequest)))
	out := make([]*Request, 0, c)
	reqs := make([]Request, c)
	var names requestNames
	for i := uint64(0); i < n; i++ {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) || i >= uint64(c) {
			return nil, fmt.Errorf("pbft: request %d cut short", i)
		}
		one := b[k : k+int(l)]
		if len(one) == 0 || Kind(one[0]) != KindRequest {
			// Not a request: Unmarshal says what it is (or what is wrong with it).
			m, err := Unmarshal(one)
			if err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("pbft: %s among requests", m.Kind())
		}
		d := decoder{buf: one[1:]}
		r := &reqs[i]
		d.requestNamed(r, &names, c-int(i), len(b)-k-int(l))
		r.ReadOnly = d.readOnlyFlag()
		if d.err == nil && len(d.buf) != 0 {
			d.fail("trailing bytes")
		}
		if d.err != nil {
			return nil, d.err
		}
		out = append(out, r)
		b = b[k+int(l):]
	}
	if len(b) != 0 {
		return nil, errors.New("pbft: trailing bytes after requests")
	}
	return out, nil
}
