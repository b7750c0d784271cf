package bus

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/internal/poll"
)

// countHandler counts the records logged at warn level.
type countHandler struct{ warns atomic.Int64 }

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		h.warns.Add(1)
	}
	return nil
}
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countHandler) WithGroup(string) slog.Handler      { return h }

// freePort returns a loopback port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// A process that starts before NATS waits for it, retrying, and connects once it is up.
func TestConnectWaitingWaitsForNATS(t *testing.T) {
	port := freePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	h := &countHandler{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type result struct {
		err       error
		connected bool
	}
	done := make(chan result, 1)
	go func() {
		nc, err := ConnectWaiting(ctx, url, "waiter", slog.New(h))
		r := result{err: err}
		if nc != nil {
			r.connected = nc.IsConnected()
			tr, terr := NewNATS(nc, "c", "waiter", RoleClient, func(Message) {})
			if terr != nil {
				r.err = terr
			} else {
				tr.Close()
			}
			nc.Close()
		}
		done <- r
	}()
	// It keeps trying (and says so) while nothing listens.
	// Polling a counter: the retries are on nats.go's clock.
	if err := poll.Within(10*time.Second, poll.Interval, func() (bool, error) {
		select {
		case r := <-done:
			return false, fmt.Errorf("returned before NATS was up: %+v", r)
		default:
		}
		return h.warns.Load() >= 2, nil
	}); err != nil {
		t.Fatalf("retries while NATS is down: %v", err)
	}
	startServer(t, port)
	select {
	case r := <-done:
		if r.err != nil || !r.connected {
			t.Fatalf("after NATS came up: %+v", r)
		}
	case <-ctx.Done():
		t.Fatal("did not connect after NATS came up")
	}
}

// Waiting ends with the context (a signal), with an error naming the server.
func TestConnectWaitingGivesUpWithTheContext(t *testing.T) {
	url := fmt.Sprintf("nats://127.0.0.1:%d", freePort(t))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	nc, err := ConnectWaiting(ctx, url, "waiter", slog.New(&countHandler{}))
	if err == nil || nc != nil {
		t.Fatalf("ConnectWaiting = %v, %v; want an error", nc, err)
	}
	if want := "127.0.0.1"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name the server", err)
	}
}

func TestBackoffIsCapped(t *testing.T) {
	if backoff(1) != reconnectBase || backoff(2) != 2*reconnectBase {
		t.Fatalf("backoff(1), backoff(2) = %v, %v", backoff(1), backoff(2))
	}
	if backoff(100) != connectBackoff {
		t.Fatalf("backoff(100) = %v, want the cap %v", backoff(100), connectBackoff)
	}
}
