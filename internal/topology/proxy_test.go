package topology

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// startServer runs a NATS server in this process on a free 127.0.0.1 port.
func startServer(t *testing.T) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

// waitEvent waits for an event on ch, failing after timeout.
func waitEvent(t *testing.T, ch <-chan struct{}, timeout time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(timeout):
		t.Fatalf("no %s within %v", what, timeout)
	}
}

// A NATS client behind the proxy sees a disconnect when it is cut, cannot reconnect while
// it stays cut, and reconnects (and works) once it is healed.
func TestProxyCutAndHeal(t *testing.T) {
	s := startServer(t)
	p, err := NewProxy(s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	disconnected := make(chan struct{}, 16)
	reconnected := make(chan struct{}, 16)
	nc, err := nats.Connect("nats://"+p.Addr(),
		nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond), nats.ReconnectJitter(0, 0),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { disconnected <- struct{}{} }),
		nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	observer, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer observer.Close()
	sub, err := observer.SubscribeSync("probe")
	if err != nil {
		t.Fatal(err)
	}
	if err := observer.Flush(); err != nil {
		t.Fatal(err)
	}
	roundTrip := func(msg string) {
		t.Helper()
		if err := nc.Publish("probe", []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if err := nc.FlushTimeout(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil || string(m.Data) != msg {
			t.Fatalf("observer got %v, %v; want %q", m, err, msg)
		}
	}
	roundTrip("before")

	p.Cut()
	if !p.IsCut() {
		t.Fatal("IsCut false after Cut")
	}
	waitEvent(t, disconnected, 5*time.Second, "disconnect after Cut")
	// While cut, the client keeps trying and failing: a flush cannot complete.
	if err := nc.FlushTimeout(300 * time.Millisecond); err == nil {
		t.Fatal("flush through a cut proxy succeeded")
	}
	if nc.IsConnected() {
		t.Fatal("client connected through a cut proxy")
	}
	// A fresh connection is refused too.
	if c, err := nats.Connect("nats://"+p.Addr(), nats.Timeout(500*time.Millisecond)); err == nil {
		c.Close()
		t.Fatal("new connection through a cut proxy succeeded")
	}

	p.Heal()
	waitEvent(t, reconnected, 10*time.Second, "reconnect after Heal")
	roundTrip("after")
}

// The proxy moves on to the next upstream when one is down.
func TestProxyFailsOver(t *testing.T) {
	s := startServer(t)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	_ = dead.Close()
	p, err := NewProxy(deadAddr, s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for range 3 { // whichever upstream the rotation starts at
		nc, err := nats.Connect("nats://"+p.Addr(), nats.Timeout(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.FlushTimeout(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		nc.Close()
	}
	if err := p.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
	if _, err := NewProxy(); err == nil {
		t.Fatal("a proxy without upstreams was created")
	}
}
