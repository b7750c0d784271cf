package embedded

import (
	"log/slog"
	"slices"
	"testing"

	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/config"
)

// The embedded cluster's plan sorts its replicas by the faults it injected: live ones are
// waited for, silent and equivocating ones get the late grace (and an equivocating one's
// replies are awaited too), crashed ones nothing; with fewer than 2f+1 live replicas every
// wait is bounded.
func TestPlanFollowsInjectedFaults(t *testing.T) {
	ids := []string{"n1", "n2", "n3", "n4"}
	e, err := Start(ids, config.Default(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	p := e.Plan()
	if !p.FaultsKnown || !slices.Equal(p.Live, ids) || p.NoQuorum != 0 || p.Faults["n3"] != "none" {
		t.Fatalf("no faults: %+v", p)
	}
	for id, f := range map[string]pbft.Fault{"n2": pbft.FaultSilent, "n3": pbft.FaultEquivocate} {
		if err := e.SetFault(id, f); err != nil {
			t.Fatal(err)
		}
	}
	p = e.Plan()
	if !slices.Equal(p.Live, []string{"n1", "n4"}) || !slices.Equal(p.Receiving, []string{"n2", "n3"}) ||
		!slices.Equal(p.Replying, []string{"n3"}) || len(p.Crashed) != 0 || p.LateGrace != lateGrace ||
		p.NoQuorum != noQuorumWait || p.Faults["n2"] != "silent" || p.Faults["n3"] != "equivocate" {
		t.Fatalf("n2 silent, n3 equivocating: %+v", p)
	}
	for _, id := range []string{"n2", "n3"} {
		if err := e.SetFault(id, pbft.FaultNone); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.SetFault("n4", pbft.FaultCrash); err != nil {
		t.Fatal(err)
	}
	p = e.Plan()
	if !slices.Equal(p.Live, []string{"n1", "n2", "n3"}) || !p.IsCrashed("n4") || len(p.Receiving) != 0 || p.NoQuorum != 0 {
		t.Fatalf("n4 crashed: %+v", p)
	}
	if err := e.SetFault("n9", pbft.FaultCrash); err == nil {
		t.Fatal("fault switched on a replica that does not exist")
	}
}
