package golden

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBuiltGatewayIgnoresBareVariables runs every golden case against the built
// cmd/gateway with the bare names of its settings set to harmful values: only PBFT_
// variables configure it, so every answer is the golden one. (envconfig used to fall
// back to the bare names: TICK=1h stopped the gateway at start.)
func TestBuiltGatewayIgnoresBareVariables(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "gateway")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/gateway")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PBFT_") {
			env = append(env, kv)
		}
	}
	env = append(env, "DATA_DIR=/nonexistent", "TICK=1h", "REQUEST_TIMEOUT=1ns", "CLUSTER=x",
		"FAULT=crash", "VIEW_CHANGE_TIMEOUT=1ns", "NATS_URL=nats://127.0.0.1:1", "HTTP_ADDR=127.0.0.1:1")
	ins, err := Cases(filepath.Join(root, "testdata", "cases"), filepath.Join(root, "pbft", "gateway", "testdata", "cases"))
	if err != nil {
		t.Fatal(err)
	}
	var report bytes.Buffer
	failed, err := Run(&report, bin, ins, RunOptions{Timeout: 10 * time.Second, Env: env})
	if err != nil || failed > 0 {
		t.Fatalf("%d of %d cases differ with bare names set (%v):\n%s", failed, len(ins), err, report.String())
	}
	t.Log(report.String())
}
