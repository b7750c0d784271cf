package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/internal/poll"
)

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
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A replica started before NATS serves /healthz (alive) and a /readyz that says it is
// waiting for NATS, so that a Kubernetes liveness probe does not kill it; once NATS is
// up it connects and becomes ready.
func TestHTTPServedWhileWaitingForNATS(t *testing.T) {
	keys := t.TempDir()
	if err := keygen([]string{"-dir", keys, "n1"}, io.Discard); err != nil {
		t.Fatal(err)
	}
	natsPort, httpPort := freePort(t), freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	cmd := exec.CommandContext(t.Context(), os.Args[0])
	// One replica (f = 0) is ready as soon as it runs: no peers to hear from.
	cmd.Env = append(os.Environ(), "PBFT_TEST_RUN_MAIN=1", "PBFT_NODE_ID=n1", "PBFT_NODE_IDS=n1",
		"PBFT_KEYS_DIR="+keys, fmt.Sprintf("PBFT_NATS_URL=nats://127.0.0.1:%d", natsPort),
		fmt.Sprintf("PBFT_HTTP_ADDR=127.0.0.1:%d", httpPort), "PBFT_MAX_PROCS=3")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waited := false
	t.Cleanup(func() {
		if !waited {
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	poll.Eventually(t, 10*time.Second, "/healthz 200 while NATS is down", func() bool {
		code, _ := get(base + "/healthz")
		return code == http.StatusOK
	})
	if code, body := get(base + "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "waiting for NATS") {
		t.Fatalf("/readyz while NATS is down: %d %q, want 503 saying it waits for NATS", code, body)
	}

	ns, err := bus.StartEmbedded(bus.EmbeddedOptions{Port: natsPort})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	poll.Eventually(t, 20*time.Second, "/readyz 200 once NATS is up", func() bool {
		code, _ := get(base + "/readyz")
		return code == http.StatusOK
	})
	if code, _ := get(base + "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz of the running replica: %d", code)
	}
	// PBFT_MAX_PROCS sets the Go runtime's threads (3: not what this machine's CPUs give).
	if _, body := get(base + "/metrics"); !strings.Contains(body, "\ngo_sched_gomaxprocs_threads 3\n") {
		t.Fatalf("/metrics with PBFT_MAX_PROCS=3 lacks go_sched_gomaxprocs_threads 3")
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		waited = true
		if err != nil {
			t.Fatalf("replica after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("replica did not exit after SIGTERM\n%s", stderr.String())
	}
}
