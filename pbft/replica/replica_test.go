package replica_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/internal/poll"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/client"
	"github.com/pbft-nats/pbft/pbft/config"
	"github.com/pbft-nats/pbft/pbft/replica"
)

var quiet = replica.WithLogger(slog.New(slog.DiscardHandler))

// counter is an application of the test's own: "add N" adds to a sum and answers it.
type counter struct{ sum int }

func (c *counter) Execute(op []byte) []byte {
	n, err := strconv.Atoi(strings.TrimPrefix(string(op), "add "))
	if err != nil || !strings.HasPrefix(string(op), "add ") {
		return []byte("error: want add N")
	}
	c.sum += n
	return []byte(strconv.Itoa(c.sum))
}
func (c *counter) Snapshot() []byte { return []byte(strconv.Itoa(c.sum)) }
func (c *counter) Restore(b []byte) error {
	n, err := strconv.Atoi(string(b))
	c.sum = n
	return err
}

// Four replicas of an application that is not the key-value store, built by the library
// from settings alone (keys from a directory, NATS by URL), order and execute a client's
// operations; one serves its health endpoints.
func TestRunsAnApplicationOfItsOwn(t *testing.T) {
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	ids := []string{"r1", "r2", "r3", "r4"}
	dir := t.TempDir()
	for _, id := range append([]string{"teller"}, ids...) {
		if err := auth.WriteKeyPair(dir, id); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	var health string
	for _, id := range ids {
		s := config.Default()
		s.NodeID, s.NodeIDs, s.NATSURL, s.KeysDir = id, ids, srv.ClientURL(), dir
		if id == "r2" {
			s.HTTPAddr = "127.0.0.1:0"
		}
		r, err := replica.New(ctx, s, &counter{}, quiet)
		if err != nil {
			t.Fatal(err)
		}
		if id == "r2" {
			health = "http://" + r.HTTPAddr().String() + "/readyz"
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = r.Run(ctx) }()
	}
	keys, err := auth.LoadKeyring(dir, "teller", ids, uint64(time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := bus.Connect(srv.ClientURL(), "teller")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c, err := client.New(client.Config{Keys: keys, Replicas: ids, Timeout: 10 * time.Second,
		Retransmit: client.RetransmitAfter(500 * time.Millisecond),
		Connect: func(h bus.Handler) (bus.Transport, error) {
			return bus.NewNATS(nc, "pbft", "teller", bus.RoleClient, h)
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, want := range []string{"5", "12", "error: want add N"} {
		op := []string{"add 5", "add 7", "sub 1"}[i]
		res, err := c.Invoke(ctx, client.Request{Client: "alice", Timestamp: uint64(i + 1), Op: []byte(op)})
		if err != nil || string(res.Value) != want {
			t.Fatalf("%s: %q %v, want %q", op, res.Value, err, want)
		}
	}
	poll.Eventually(t, 10*time.Second, "r2's /readyz answers 200", func() bool {
		resp, err := http.Get(health)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// Bad settings are errors at start, never a crash.
func TestNewRefusesBadSettings(t *testing.T) {
	dir := t.TempDir()
	if err := auth.WriteKeyPair(dir, "r1"); err != nil {
		t.Fatal(err)
	}
	good := config.Default()
	good.NodeID, good.NodeIDs, good.NATSURL, good.KeysDir = "r1", []string{"r1"}, "nats://127.0.0.1:1", dir
	cases := map[string]func(*config.Settings){
		"no node id":      func(s *config.Settings) { s.NodeID = "" },
		"no NATS":         func(s *config.Settings) { s.NATSURL = "" },
		"no keys":         func(s *config.Settings) { s.KeysDir = "" },
		"not in the ids":  func(s *config.Settings) { s.NodeIDs = []string{"r2"} },
		"a bad tick":      func(s *config.Settings) { s.Tick = 0 },
		"a bad fault":     func(s *config.Settings) { s.Fault = "byzantine" },
		"a bad HTTP addr": func(s *config.Settings) { s.HTTPAddr = "127.0.0.1:http-nope" },
	}
	for name, change := range cases {
		s := good
		change(&s)
		if _, err := replica.New(context.Background(), s, &counter{}, quiet); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	var app pbft.Application
	if _, err := replica.New(context.Background(), good, app); err == nil || !strings.Contains(err.Error(), "no application") {
		t.Errorf("no application: %v", err)
	}
	// A NATS server that is not there, and a start given up: New says so.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := replica.New(ctx, good, &counter{}, quiet); err == nil {
		t.Error("unreachable NATS: accepted")
	}
}

// warnCounter counts the records logged at warn level.
type warnCounter struct{ warns atomic.Int64 }

func (h *warnCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *warnCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		h.warns.Add(1)
	}
	return nil
}
func (h *warnCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *warnCounter) WithGroup(string) slog.Handler      { return h }

// freePort returns a port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func get(url string) (int, string) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A replica started before NATS waits for it (as a pod may start before the NATS pods),
// alive but not ready on HTTP meanwhile, and runs once NATS is up, instead of exiting.
func TestWaitsForNATS(t *testing.T) {
	port, httpPort := freePort(t), freePort(t)
	web := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	dir := t.TempDir()
	if err := auth.WriteKeyPair(dir, "r1"); err != nil {
		t.Fatal(err)
	}
	s := config.Default()
	s.NodeID, s.NodeIDs, s.KeysDir = "r1", []string{"r1"}, dir
	s.NATSURL = fmt.Sprintf("nats://127.0.0.1:%d", port)
	s.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", httpPort)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	logs := &warnCounter{}
	type started struct {
		r   *replica.Replica
		err error
	}
	done := make(chan started, 1)
	go func() {
		r, err := replica.New(ctx, s, &counter{}, replica.WithLogger(slog.New(logs)))
		done <- started{r, err}
	}()
	poll.Eventually(t, 10*time.Second, "a failed attempt to reach NATS is logged", func() bool { return logs.warns.Load() > 0 })
	if code, _ := get(web + "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz while waiting for NATS: %d", code)
	}
	if code, body := get(web + "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "waiting for NATS") {
		t.Fatalf("/readyz while waiting for NATS: %d %q", code, body)
	}
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	got := <-done
	if got.err != nil {
		t.Fatalf("New after NATS came up: %v", got.err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- got.r.Run(runCtx) }()
	// One replica (f = 0) is ready as soon as it runs: no peers to hear from.
	poll.Eventually(t, 10*time.Second, "/readyz 200 once NATS is up", func() bool {
		code, _ := get(web + "/readyz")
		return code == http.StatusOK
	})
	stop()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
}
