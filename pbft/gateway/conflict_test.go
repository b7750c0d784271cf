package gateway

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/client"
	"github.com/pbft-nats/pbft/pbft/gateway/embedded"
	"github.com/pbft-nats/pbft/pbft/gateway/settle"
)

// asExternal makes the gateway treat an embedded cluster as replicas run elsewhere: stdio
// then takes msg_id as the timestamp, and only the replicas can tell a conflict.
type asExternal struct {
	e      *embedded.Cluster
	policy settle.Policy
}

func (x asExternal) Client() *client.Client                 { return x.e.Client() }
func (x asExternal) Plan() settle.Plan                      { return x.policy.Plan() }
func (x asExternal) SetFault(id string, f pbft.Fault) error { return x.e.SetFault(id, f) }
func (x asExternal) InProcess() bool                        { return false }
func (x asExternal) Close()                                 { x.e.Close() }

// Stdio against external replicas: a msg_id used again with another operation gets error
// 22 from the replicas' f+1 conflict replies, and the write is not executed.
func TestStdioExternalConflictingRetransmission(t *testing.T) {
	s := testSettings()
	logger := slog.New(slog.DiscardHandler)
	svc := NewService(s, logger, func(ids []string) (Backend, error) {
		e, err := embedded.Start(ids, s, logger)
		if err != nil {
			return nil, err
		}
		return asExternal{e, settle.AfterQuorum(ids, s.RequestTimeout)}, nil
	})
	defer svc.Close()
	input := `{"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","n2","n3","n4"]}}
{"src":"c1","dest":"n1","body":{"type":"pbft_execute","msg_id":5,"operation":"get x","client":"c1"}}
{"src":"c1","dest":"n2","body":{"type":"pbft_execute","msg_id":5,"operation":"set x=7","client":"c1"}}
{"src":"c1","dest":"n3","body":{"type":"pbft_request","msg_id":5,"operation":"set x=8","client":"c1"}}
{"src":"c1","dest":"n1","body":{"type":"pbft_execute","msg_id":6,"operation":"get x","client":"c1"}}
`
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := NewStdio(svc, logger).Run(ctx, strings.NewReader(input), &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("want 5 lines, got:\n%s", out.String())
	}
	for _, i := range []int{2, 3} {
		if !strings.Contains(lines[i], `"code": 22`) || !strings.Contains(lines[i], "another operation") {
			t.Fatalf("line %d: want error 22 for the conflicting retransmission, got %s", i+1, lines[i])
		}
	}
	if !strings.Contains(lines[4], `"result": ""`) || !strings.Contains(lines[4], `"sequence_number": 2`) {
		t.Fatalf("the refused write was executed: %s", lines[4])
	}
}

// Against external replicas that do not answer, the timeout says what it waited for and
// what to check.
func TestExternalTimeoutSaysWhatToCheck(t *testing.T) {
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	dir := t.TempDir()
	ids := []string{"n1", "n2", "n3", "n4"}
	for _, id := range append([]string{"gateway"}, ids...) {
		if err := auth.WriteKeyPair(dir, id); err != nil {
			t.Fatal(err)
		}
	}
	s := testSettings()
	s.KeysDir, s.ClientID, s.NATSURL, s.RequestTimeout = dir, "gateway", srv.ClientURL(), 300*time.Millisecond
	svc := NewService(s, slog.New(slog.DiscardHandler), func(ids []string) (Backend, error) {
		return ConnectExternal(s.NATSURL, ids, s)
	})
	defer svc.Close()
	if err := InitCluster(svc, ids); err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"execute": func() error {
			_, err := svc.Execute(context.Background(), "", RequestArgs{Operation: "get x", Client: "c", Timestamp: 1})
			return err
		},
		"invoke": func() error {
			_, err := svc.Invoke(context.Background(), RequestArgs{Operation: "get x", Client: "c", Timestamp: 2})
			return err
		},
	} {
		var pe *ProtoError
		if err := call(); !errors.As(err, &pe) || pe.Code != CodeTimeout {
			t.Fatalf("%s: %v, want a timeout", name, err)
		}
		for _, want := range []string{"n1", "300ms", "running", srv.ClientURL(), "PBFT_NODE_IDS"} {
			if !strings.Contains(pe.Text, want) {
				t.Errorf("%s: timeout %q does not say %q", name, pe.Text, want)
			}
		}
	}
}
