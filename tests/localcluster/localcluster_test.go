// Package localcluster tests scripts/local-cluster.sh, the README's way of running the
// replicas as separate processes: start, status, a golden case through bin/gateway
// against the started cluster, stop, and nothing left running.
package localcluster

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// script runs scripts/local-cluster.sh with its state in dir and returns its output
// and exit code.
func script(t *testing.T, root, dir string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{filepath.Join(root, "scripts", "local-cluster.sh")}, args...)...)
	cmd.Env = append(os.Environ(), "PBFT_LOCAL_CLUSTER_DIR="+dir)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("local-cluster.sh %v: %v", args, err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

func TestLocalClusterScript(t *testing.T) {
	root := repoRoot(t)
	dir := t.TempDir()
	out, code := script(t, root, dir, "start")
	t.Cleanup(func() { script(t, root, dir, "stop") })
	if code != 0 {
		t.Fatalf("start: exit %d\n%s", code, out)
	}
	pids := map[string]int{}
	for _, name := range []string{"nats", "n1", "n2", "n3", "n4"} {
		b, err := os.ReadFile(filepath.Join(dir, name+".pid"))
		if err != nil {
			t.Fatalf("no pid file for %s: %v", name, err)
		}
		pids[name], _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if out, code := script(t, root, dir, "status"); code != 0 || strings.Count(out, ": running") != 5 {
		t.Fatalf("status after start: exit %d\n%s", code, out)
	}
	if out, code := script(t, root, dir, "start"); code == 0 || !strings.Contains(out, "already runs") {
		t.Fatalf("a second start: exit %d\n%s", code, out)
	}
	url, code := script(t, root, dir, "url")
	if code != 0 || !strings.HasPrefix(url, "nats://127.0.0.1:") {
		t.Fatalf("url: exit %d %q", code, url)
	}

	// The README's command: the gateway against the four replica processes.
	in, err := os.ReadFile(filepath.Join(root, "testdata", "cases", "seed-status-shows-execution.in"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(root, "testdata", "cases", "seed-status-shows-execution.out"))
	if err != nil {
		t.Fatal(err)
	}
	gw := exec.CommandContext(t.Context(), filepath.Join(root, "bin", "gateway"))
	gw.Env = append(os.Environ(), "PBFT_NODE_IDS=n1,n2,n3,n4", "PBFT_NATS_URL="+strings.TrimSpace(url), "PBFT_KEYS_DIR="+filepath.Join(dir, "keys"))
	gw.Stdin = bytes.NewReader(in)
	got, err := gw.Output()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("gateway against the local cluster: %v\ngot:\n%s\nwant:\n%s", err, got, want)
	}

	if out, code := script(t, root, dir, "stop"); code != 0 {
		t.Fatalf("stop: exit %d\n%s", code, out)
	}
	if out, code := script(t, root, dir, "status"); code == 0 || strings.Contains(out, ": running") {
		t.Fatalf("status after stop: exit %d\n%s", code, out)
	}
	for name, pid := range pids {
		// stop waits for each process to end; one not yet reaped by init is a zombie.
		if err := syscall.Kill(pid, 0); err == nil && !zombie(pid) {
			t.Errorf("%s (pid %d) still runs after stop", name, pid)
		}
	}
}

func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // gone
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'Z'
}
