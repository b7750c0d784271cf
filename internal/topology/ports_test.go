package topology

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// failFirstRun writes a script that stands for bin: its first run (other than keygen)
// ends as a process whose port was taken between picking and binding does; later runs
// are bin's.
func failFirstRun(t *testing.T, bin string) string {
	t.Helper()
	dir := t.TempDir()
	marker := filepath.Join(dir, "failed-once")
	script := filepath.Join(dir, filepath.Base(bin))
	body := "#!/bin/sh\n" +
		"if [ \"$1\" != keygen ] && [ ! -e '" + marker + "' ]; then touch '" + marker + "'; " +
		"echo 'listen tcp 127.0.0.1:1: bind: address already in use' >&2; exit 1; fi\n" +
		"exec '" + bin + "' \"$@\"\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}

// A NATS server, a replica and the gateway that end at start because a port was taken
// get new ports, and the topology comes up.
func TestStartRetriesTakenPorts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	real := mustBuild(t)
	bins := Binaries{NATSServer: failFirstRun(t, real.NATSServer), Replica: failFirstRun(t, real.Replica),
		Gateway: failFirstRun(t, real.Gateway)}
	var logs []string
	top, err := Start(ctx, bins, Options{Replicas: []string{"n1"}, GatewayHTTP: true, Logf: func(f string, args ...any) {
		t.Logf(f, args...)
		logs = append(logs, fmt.Sprintf(f, args...))
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer top.Close()
	joined := strings.Join(logs, "\n")
	for _, want := range []string{"NATS start attempt 1 failed", "replica n1 lost its HTTP port", "gateway lost its HTTP port"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no %q in the progress log:\n%s", want, joined)
		}
	}
	if code, body, err := httpGet(ctx, top.GatewayURL()+"/readyz"); err != nil || code != 200 {
		t.Errorf("gateway /readyz: %d %q %v", code, body, err)
	}
	if code, body, err := httpGet(ctx, top.ReplicaHTTP("n1")+"/readyz"); err != nil || code != 200 {
		t.Errorf("replica /readyz: %d %q %v", code, body, err)
	}
}
