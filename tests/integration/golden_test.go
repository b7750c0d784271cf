package integration

import (
	"github.com/pbft-nats/pbft/internal/topology"
	"github.com/pbft-nats/pbft/tests/golden"

	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var fourNodes = []string{"n1", "n2", "n3", "n4"}

// usesFault reports whether a case sends pbft_fault, which only the embedded cluster
// supports, or pbft_reconfigure, which only it serves so far (docs/protocol.md).
// initIDs returns the node_ids of the case's first init line (four nodes if none): the
// external replicas the case needs.
func initIDs(input []byte) []string {
	sc := bufio.NewScanner(bytes.NewReader(input))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var l struct {
			Body struct {
				Type    string   `json:"type"`
				NodeIDs []string `json:"node_ids"`
			} `json:"body"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Body.Type == "init" && len(l.Body.NodeIDs) > 0 {
			return l.Body.NodeIDs
		}
	}
	return fourNodes
}

func usesFault(input []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(input))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var l struct {
			Body struct {
				Type string `json:"type"`
			} `json:"body"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && (l.Body.Type == "pbft_fault" || l.Body.Type == "pbft_reconfigure") {
			return true
		}
	}
	return false
}

// TestGoldenCasesAgainstExternalReplicas runs each golden case through the gateway
// binary against a fresh cluster of four replica processes.
func TestGoldenCasesAgainstExternalReplicas(t *testing.T) {
	b := buildBinaries(t)
	ins, err := filepath.Glob(filepath.Join(moduleRoot(t), "testdata", "cases", "*.in"))
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in")
		input, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(strings.TrimSuffix(in, ".in") + ".out")
		if err != nil {
			t.Fatal(err)
		}
		if usesFault(input) {
			t.Run(name, func(t *testing.T) {
				t.Skip("uses pbft_fault or pbft_reconfigure, which only the embedded cluster serves")
			})
			continue
		}
		ran++
		t.Run(name, func(t *testing.T) {
			c := startCluster(t, b, topology.Options{Replicas: initIDs(input)})
			run := c.runGateway(input, 10*time.Second)
			t.Logf("gateway ran %v", run.elapsed.Round(time.Millisecond))
			if run.exitErr != nil {
				t.Errorf("gateway exit: %v", run.exitErr)
			}
			if diff := golden.Diff(string(want), run.stdout); diff != "" {
				t.Errorf("stdout differs from %s.out: %s\nwhole stdout:\n%s", name, diff, run.stdout)
			}
		})
	}
	if ran == 0 {
		t.Fatalf("no golden case without pbft_fault in testdata/cases (found %d .in files)", len(ins))
	}

	t.Run("pbft_fault-is-embedded-only", func(t *testing.T) {
		c := startCluster(t, b, topology.Options{Replicas: fourNodes})
		input := `{"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","n2","n3","n4"]}}
{"src":"c0","dest":"n1","body":{"type":"pbft_fault","msg_id":2,"node":"n3","fault":"crash"}}
{"src":"c1","dest":"n1","body":{"type":"pbft_execute","msg_id":3,"operation":"set x=1","client":"c1"}}
`
		run := c.runGateway([]byte(input), 10*time.Second)
		if run.exitErr != nil {
			t.Errorf("gateway exit: %v", run.exitErr)
		}
		lines := golden.SplitLines(string(run.stdout))
		if len(lines) != 3 {
			t.Fatalf("want 3 reply lines, got:\n%s", run.stdout)
		}
		fault, err := parseReply(lines[1])
		if err != nil {
			t.Fatal(err)
		}
		if fault.Body.Type != "error" || fault.Body.Code == nil || *fault.Body.Code != 10 ||
			fault.Body.InReplyTo == nil || *fault.Body.InReplyTo != 2 {
			t.Errorf("pbft_fault against external replicas: got %s, want error code 10 in reply to 2", lines[1])
		}
		// The refused fault changed nothing: all four replicas still reply.
		exec, err := parseReply(lines[2])
		if err != nil {
			t.Fatal(err)
		}
		if exec.Body.Type != "pbft_execute_ok" || exec.Body.Result == nil || *exec.Body.Result != "OK" || exec.Body.Replies != 4 {
			t.Errorf("execute after the refused fault: got %s, want pbft_execute_ok, result OK, 4 replies", lines[2])
		}
	})
}
