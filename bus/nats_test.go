package bus

import (
	"errors"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// startServer runs an embedded server for the test's lifetime.
func startServer(t testing.TB, port int) *server.Server {
	t.Helper()
	s, err := StartEmbedded(EmbeddedOptions{Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// natsCluster gives every endpoint its own connection, as in a deployment,
// in-process or over TCP.
func natsCluster(tcp bool) clusterFactory {
	return func(t *testing.T) joinFunc {
		port := 0
		if tcp {
			port = -1
		}
		s := startServer(t, port)
		return func(id string, role Role, h Handler) (Transport, error) {
			var nc *nats.Conn
			var err error
			if tcp {
				nc, err = Connect(s.ClientURL(), id)
			} else {
				nc, err = ConnectInProcess(s, id)
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			tr, err := NewNATS(nc, "test", id, role, h)
			if err != nil {
				return nil, err
			}
			t.Cleanup(func() { tr.Close() })
			return tr, nil
		}
	}
}

func TestNATSConformanceInProcess(t *testing.T) { runConformance(t, natsCluster(false)) }
func TestNATSConformanceTCP(t *testing.T)       { runConformance(t, natsCluster(true)) }

// A subject that matches a subscription but does not parse is dropped and
// counted, never handed to the handler.
func TestNATSUnparseableDropped(t *testing.T) {
	s := startServer(t, 0)
	c := newTestCluster(t, func(*testing.T) joinFunc { return natsJoinOn(t, s) }, nil)
	n1 := c.replicas[0]
	raw, err := ConnectInProcess(s, "raw")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, subj := range []string{
		"pbft.test.to.n1",    // broadcast shape with the reserved kind
		"pbft.test.x.n1",     // claims to come from n1 itself
		"pbft.test.marker.r", // valid: orders after the two above
	} {
		if err := raw.Publish(subj, nil); err != nil {
			t.Fatal(err)
		}
	}
	n1.waitFor("marker", func() bool { return len(filterKind(n1.msgs, "marker")) == 1 })
	if got := n1.received("x"); len(got) != 0 {
		t.Errorf("n1 got %v", got)
	}
	if st := stats(t, n1.tr); st.Dropped != 2 || st.Received != 1 {
		t.Errorf("n1 stats %+v, want Dropped 2 Received 1", st)
	}
}

func natsJoinOn(t *testing.T, s *server.Server) joinFunc {
	return func(id string, role Role, h Handler) (Transport, error) {
		nc, err := ConnectInProcess(s, id)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		tr, err := NewNATS(nc, "test", id, role, h)
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { tr.Close() })
		return tr, nil
	}
}

// Without NoEcho the server bounces a replica's broadcast back; the
// transport must still not deliver it.
func TestNATSEchoDropped(t *testing.T) {
	s := startServer(t, 0)
	nc, err := nats.Connect("", nats.InProcessServer(s)) // echo on
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	r := &recorder{t: t, id: "n1", changed: make(chan struct{})}
	tr, err := NewNATS(nc, "test", "n1", RoleReplica, r.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	r.tr = tr
	peer := &testCluster{t: t, join: natsJoinOn(t, s)}
	n2 := peer.add("n2", RoleReplica, nil)

	if err := tr.Broadcast("prepare", nil); err != nil {
		t.Fatal(err)
	}
	barrier(r, n2) // the echo, if any, arrives before the pong
	n2.waitFor("prepare", func() bool { return len(filterKind(n2.msgs, "prepare")) == 1 })
	if got := r.received("prepare"); len(got) != 0 {
		t.Fatalf("n1 received its own broadcast: %v", got)
	}
	if st := tr.Stats(); st.Dropped != 1 {
		t.Errorf("stats %+v, want the echo counted as Dropped", st)
	}
}

// The caller owns the connection: Close leaves it open, and a transport
// whose connection was closed under it fails cleanly.
func TestNATSConnectionOwnership(t *testing.T) {
	s := startServer(t, 0)
	nc, err := ConnectInProcess(s, "n1")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	tr, err := NewNATS(nc, "test", "n1", RoleReplica, func(Message) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if !nc.IsConnected() {
		t.Fatal("Close closed the caller's connection")
	}
	// The same connection can serve a new transport (a restart).
	tr2, err := NewNATS(nc, "test", "n1", RoleReplica, func(Message) {})
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if err := tr2.Send("n2", "x", nil); !errors.Is(err, nats.ErrConnectionClosed) {
		t.Errorf("Send on closed connection = %v, want nats.ErrConnectionClosed", err)
	}
	if err := tr2.Close(); err != nil {
		t.Errorf("Close after the connection closed = %v", err)
	}
	if _, err := NewNATS(nc, "test", "n3", RoleReplica, func(Message) {}); err == nil {
		t.Error("NewNATS on a closed connection succeeded")
	}
	if _, err := NewNATS(nil, "test", "n3", RoleReplica, func(Message) {}); err == nil {
		t.Error("NewNATS with nil connection succeeded")
	}
}

func TestStartEmbeddedInvalidPort(t *testing.T) {
	if s, err := StartEmbedded(EmbeddedOptions{Port: -2}); err == nil {
		s.Shutdown()
		t.Fatal("port -2 accepted")
	}
}
