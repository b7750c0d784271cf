package client_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/internal/poll"
	"github.com/pbft-nats/pbft/pbft/client"
)

func keysFor(t *testing.T, ids ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, id := range ids {
		if err := auth.WriteKeyPair(dir, id); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Options that cannot work are refused with a clear error, before any connection.
func TestConnectRefusesBadOptions(t *testing.T) {
	dir := keysFor(t, "app", "r1", "r2", "r3", "r4")
	good := client.Options{NATSURL: "nats://127.0.0.1:1", ID: "app", KeysDir: dir, Replicas: []string{"r1", "r2", "r3", "r4"}}
	cases := map[string]func(*client.Options){
		"no url":           func(o *client.Options) { o.NATSURL = "" },
		"no id":            func(o *client.Options) { o.ID = "" },
		"no keys dir":      func(o *client.Options) { o.KeysDir = "" },
		"no replicas":      func(o *client.Options) { o.Replicas = nil },
		"id is a replica":  func(o *client.Options) { o.ID = "r2" },
		"duplicate ids":    func(o *client.Options) { o.Replicas = []string{"r1", "r1"} },
		"negative timeout": func(o *client.Options) { o.Timeout = -time.Second },
	}
	for name, spoil := range cases {
		o := good
		spoil(&o)
		if c, err := client.Connect(context.Background(), o); !errors.Is(err, client.ErrOptions) {
			t.Errorf("%s: Connect = %v, %v; want ErrOptions", name, c, err)
		}
	}
	o := good
	o.ID = "stranger" // no key pair in dir
	if _, err := client.Connect(context.Background(), o); !errors.Is(err, auth.ErrKeys) {
		t.Errorf("client without keys: Connect = %v, want auth.ErrKeys", err)
	}
}

// With NATS not reachable, Connect waits until its context ends, then says so.
func TestConnectGivesUpWithItsContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "nats://" + l.Addr().String()
	l.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = client.Connect(ctx, client.Options{NATSURL: url, ID: "app", KeysDir: keysFor(t, "app", "r1"), Replicas: []string{"r1"}})
	if err == nil || !strings.Contains(err.Error(), "gave up waiting for NATS") {
		t.Fatalf("Connect = %v; want it to give up waiting for NATS", err)
	}
}

// The client owns the connection Connect made: Close closes it.
func TestCloseClosesTheConnection(t *testing.T) {
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	c, err := client.Connect(context.Background(), client.Options{NATSURL: srv.ClientURL(), ID: "app",
		KeysDir: keysFor(t, "app", "r1"), Replicas: []string{"r1"}})
	if err != nil {
		t.Fatal(err)
	}
	if n := srv.NumClients(); n != 1 {
		t.Fatalf("%d connections after Connect, want 1", n)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 5*time.Second, "the connection to close", func() bool { return srv.NumClients() == 0 })
}
