package bus

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pbft-nats/pbft/internal/poll"
)

// pullPair connects replicas n1 and n2 on their own in-process connections; n2's
// deliveries go to h until it is pulled.
func pullPair(t *testing.T, h Handler) (n1, n2 *NATSTransport) {
	t.Helper()
	s := startServer(t, 0)
	join := func(id string, h Handler) *NATSTransport {
		nc, err := ConnectInProcess(s, id)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		tr, err := NewNATS(nc, "test", id, RoleReplica, h)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	return join("n1", func(Message) {}), join("n2", h)
}

// Pulling in the middle of a stream loses and reorders nothing: what the handler got
// and what Take returns after it are the stream, in order, broadcasts and
// point-to-point messages alike (one connection's order, which the arrival queue keeps).
// The handler holds its first message until Pull has begun, so the switch happens with
// the rest of the first half still queued.
func TestNATSPullMidStreamKeepsEveryMessageInOrder(t *testing.T) {
	const total = 2000
	var got []string // the handler's until Pull returns, then the test's
	first, release := make(chan struct{}), make(chan struct{})
	n1, n2 := pullPair(t, func(m Message) {
		if len(got) == 0 {
			close(first)
			<-release
		}
		got = append(got, m.Kind+":"+string(m.Data))
	})
	want := make([]string, total)
	send := func(i int) {
		data := []byte(strconv.Itoa(i))
		var err error
		if i%2 == 0 {
			want[i], err = "prepare:"+string(data), n1.Broadcast("prepare", data)
		} else {
			want[i], err = "commit:"+string(data), n1.Send("n2", "commit", data)
		}
		if err != nil {
			t.Error(err)
		}
	}
	for i := range total / 2 {
		send(i)
	}
	<-first
	stop := n2.dispatchStop
	pulled := make(chan error, 1)
	var q Arrivals
	go func() {
		var err error
		q, err = n2.Pull()
		pulled <- err
	}()
	poll.Eventually(t, 10*time.Second, "Pull to stop the dispatcher", func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	})
	close(release)
	if err := <-pulled; err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("the handler got %d messages, want only the one it held", len(got))
	}
	for i := total / 2; i < total; i++ {
		send(i)
	}
	var batch []Message
	deadline := time.After(10 * time.Second)
	for len(got) < total {
		select {
		case m := <-q.C:
			batch = q.Take(m, batch[:0], 64)
			for _, m := range batch {
				got = append(got, m.Kind+":"+string(m.Data))
			}
		case <-deadline:
			t.Fatalf("got %d of %d messages", len(got), total)
		}
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("message %d is %s, want %s", i, got[i], want[i])
		}
	}
	if st := n2.Stats(); st.Received != total || st.Dropped != 0 {
		t.Errorf("stats %+v, want Received %d, Dropped 0", st, total)
	}
}

// Take stops at its limit and leaves the rest queued.
func TestNATSTakeStopsAtItsLimit(t *testing.T) {
	n1, n2 := pullPair(t, func(Message) {})
	q, err := n2.Pull()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := n1.Broadcast("prepare", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	poll.Eventually(t, 10*time.Second, "ten queued arrivals", func() bool { return len(q.C) == 10 })
	if got := q.Take(<-q.C, nil, 4); len(got) != 4 || got[3].Data[0] != 3 {
		t.Fatalf("Take with limit 4 returned %v", got)
	}
	if got := q.Take(<-q.C, nil, 100); len(got) != 6 || got[5].Data[0] != 9 {
		t.Fatalf("the second Take returned %v", got)
	}
}

// When nobody reads the arrival queue, nats.go drops what does not fit and Stats
// counts it: the transport never blocks the connection, and says what it lost.
func TestNATSFullArrivalQueueDropsAndCounts(t *testing.T) {
	defer func(n int) { arrivalQueue = n }(arrivalQueue)
	arrivalQueue = 1000
	n1, n2 := pullPair(t, func(Message) {})
	q, err := n2.Pull()
	if err != nil {
		t.Fatal(err)
	}
	const over = 100
	for range arrivalQueue + over {
		if err := n1.Broadcast("prepare", nil); err != nil {
			t.Fatal(err)
		}
	}
	poll.Eventually(t, 30*time.Second, "every message queued or dropped", func() bool {
		return len(q.C) == arrivalQueue && n2.Stats().Dropped == over
	})
	// The queue works again once read.
	q.Take(<-q.C, nil, arrivalQueue)
	if err := n1.Send("n2", "commit", []byte("after")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-q.C:
		if got := q.Take(m, nil, 1); len(got) != 1 || string(got[0].Data) != "after" {
			t.Fatalf("after the drops got %v", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing arrived after the queue was drained")
	}
	if err := n2.Close(); err != nil {
		t.Fatal(err)
	}
	if st := n2.Stats(); st.Dropped != over {
		t.Errorf("after Close stats %+v, want the %d drops still counted", st, over)
	}
}

// Pull refuses a client (no arrival queue), a second Pull and a closed endpoint; Take
// drops arrivals once Close has begun.
func TestNATSPullRefusals(t *testing.T) {
	s := startServer(t, 0)
	nc, err := ConnectInProcess(s, "c1")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	client, err := NewNATS(nc, "test", "c1", RoleClient, func(Message) {})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.Pull(); !errors.Is(err, errNoArrivals) {
		t.Errorf("Pull of a client: %v", err)
	}

	_, n2 := pullPair(t, func(Message) {})
	q, err := n2.Pull()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n2.Pull(); err == nil {
		t.Error("a second Pull succeeded")
	}
	if err := n2.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := n2.Pull(); !errors.Is(err, ErrClosed) {
		t.Errorf("Pull after Close: %v", err)
	}
	late := &nats.Msg{Subject: "pbft.test.prepare.n1"}
	if got := q.Take(late, nil, 1); len(got) != 0 {
		t.Errorf("Take after Close delivered %v", got)
	}
	if st := n2.Stats(); st.Dropped != 1 {
		t.Errorf("stats %+v, want the late arrival dropped", st)
	}
}

// Close of a replica endpoint that was never pulled stops its dispatcher: the handler
// is not called afterwards, and what was still queued counts as dropped.
func TestNATSCloseStopsTheDispatcher(t *testing.T) {
	release := make(chan struct{})
	var calls sync.WaitGroup
	calls.Add(1)
	var once sync.Once
	var after bool
	var mu sync.Mutex
	closed := false
	n1, n2 := pullPair(t, func(m Message) {
		once.Do(func() { calls.Done(); <-release }) // hold the first call
		mu.Lock()
		after = after || closed
		mu.Unlock()
	})
	for i := range 5 {
		if err := n1.Send("n2", "commit", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	calls.Wait()
	poll.Eventually(t, 10*time.Second, "the other four queued", func() bool { return len(n2.arrivals) == 4 })
	done := make(chan error)
	go func() { done <- n2.Close() }()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	closed = true
	mu.Unlock()
	st := n2.Stats()
	if after || st.Received+st.Dropped != 5 || st.Received == 0 {
		t.Errorf("stats %+v (handler called after Close: %v), want 5 received or dropped", st, after)
	}
}
