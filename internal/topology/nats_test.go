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

// A NATS server that exits at start (its port was taken between picking and binding)
// gets new ports: the first run of the server here fails as a taken port would.
func TestNATSStartRetriesOnNewPorts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bins := mustBuild(t)
	dir := t.TempDir()
	failedOnce := filepath.Join(dir, "failed-once")
	script := filepath.Join(dir, "nats-server")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"+
		"if [ ! -e '"+failedOnce+"' ]; then touch '"+failedOnce+"'; echo 'listen: address already in use' >&2; exit 1; fi\n"+
		"exec '"+bins.NATSServer+"' \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	bins.NATSServer = script
	var logs []string
	top, err := Start(ctx, bins, Options{Replicas: []string{"n1"}, Logf: func(f string, args ...any) {
		t.Logf(f, args...)
		logs = append(logs, fmt.Sprintf(f, args...))
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer top.Close()
	if _, err := os.Stat(failedOnce); err != nil {
		t.Fatalf("the first server run did not happen: %v", err)
	}
	if !strings.Contains(strings.Join(logs, "\n"), "NATS start attempt 1 failed") {
		t.Errorf("no failed attempt logged: %q", logs)
	}
	if err := top.WaitReplicaReady(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
}
