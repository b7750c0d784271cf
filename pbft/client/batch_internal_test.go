package client

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft"
)

// recorder is a transport that keeps what it is asked to send.
type recorder struct {
	mu   sync.Mutex
	sent []string // kind and request count of each send, "to kind n"
}

func (r *recorder) Send(to, kind string, data []byte) error { r.note(to, kind); return nil }
func (r *recorder) Broadcast(kind string, data []byte) error {
	r.note("*", kind)
	return nil
}
func (r *recorder) Close() error { return nil }
func (r *recorder) ID() string   { return "c" }
func (r *recorder) note(to, kind string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, to+" "+kind)
}

// A batch is split at pbft.MaxRequestsPerMessage requests and at about maxBatchBytes; a
// request too large to share a message goes alone, as a request.
func TestBatchesAreSplitAtTheirBounds(t *testing.T) {
	ids := []string{"r1", "r2", "r3", "r4"}
	keys, err := auth.GenerateKeyrings(append([]string{"c"}, ids...), ids, 1)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	c, err := New(Config{Keys: keys["c"], Replicas: ids, Connect: func(bus.Handler) (bus.Transport, error) { return rec, nil }})
	if err != nil {
		t.Fatal(err)
	}
	var q sendQueue
	tiny := make([]*pbft.Request, pbft.MaxRequestsPerMessage+3)
	for i := range tiny {
		tiny[i] = c.NewRequest(fmt.Sprintf("c%d", i), 1, []byte("set x=1"))
	}
	if err := c.sendBatch("r1", tiny, &q); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("v"), maxBatchBytes/2)
	large := []*pbft.Request{c.NewRequest("a", 1, big), c.NewRequest("b", 1, big), c.NewRequest("c", 1, big)}
	if err := c.sendBatch("r1", large, &q); err != nil {
		t.Fatal(err)
	}
	want := "[r1 requests r1 requests r1 request r1 request r1 request]"
	if got := fmt.Sprint(rec.sent); got != want {
		t.Fatalf("sent %s, want %s", got, want)
	}
}

// limitedRecorder is a recorder on a bus that takes max bytes a message.
type limitedRecorder struct {
	recorder
	max     int64
	largest int
}

func (l *limitedRecorder) MaxPayload() int64 { return l.max }
func (l *limitedRecorder) Send(to, kind string, data []byte) error {
	l.largest = max(l.largest, len(data))
	return l.recorder.Send(to, kind, data)
}

// On a bus that takes less than maxBatchBytes a message (PBFT_EMBEDDED_MAX_PAYLOAD may
// be 64 KiB), a run of requests is split to fit it: sent whole it would be refused.
func TestBatchesFitTheBus(t *testing.T) {
	ids := []string{"r1", "r2", "r3", "r4"}
	keys, err := auth.GenerateKeyrings(append([]string{"c"}, ids...), ids, 1)
	if err != nil {
		t.Fatal(err)
	}
	rec := &limitedRecorder{max: 64 << 10}
	c, err := New(Config{Keys: keys["c"], Replicas: ids, Connect: func(bus.Handler) (bus.Transport, error) { return rec, nil }})
	if err != nil {
		t.Fatal(err)
	}
	reqs := make([]*pbft.Request, 300)
	for i := range reqs {
		reqs[i] = c.NewRequest(fmt.Sprintf("c%d", i), 1, bytes.Repeat([]byte("v"), 900))
	}
	var q sendQueue
	if err := c.sendBatch("r1", reqs, &q); err != nil {
		t.Fatal(err)
	}
	if rec.largest > int(rec.max) || len(rec.sent) < 5 {
		t.Fatalf("%d messages, the largest %d bytes, on a bus that takes %d", len(rec.sent), rec.largest, rec.max)
	}
}
