package settle

import (
	"slices"
	"testing"
	"time"
)

// Against external replicas every one is presumed live, and the grace after f+1 is a
// sixteenth of the request timeout, never more than maxGrace.
func TestAfterQuorum(t *testing.T) {
	ids := []string{"a", "b", "c", "d"}
	for _, c := range []struct {
		timeout, grace time.Duration
	}{
		{time.Second, time.Second / 16},
		{4 * time.Second, maxGrace},
		{time.Minute, maxGrace},
	} {
		p := AfterQuorum(ids, c.timeout).Plan()
		if p.FaultsKnown || !slices.Equal(p.Live, ids) || p.Grace != c.grace || p.NoQuorum != 0 {
			t.Errorf("timeout %v: %+v, want every replica live and grace %v", c.timeout, p, c.grace)
		}
		if !p.IsLive("c") || p.IsCrashed("c") {
			t.Errorf("c not live in %+v", p)
		}
	}
	policy := AfterQuorum(ids, time.Second)
	ids[0] = "changed"
	if p := policy.Plan(); p.Live[0] != "a" {
		t.Fatal("the plan shares the caller's slice")
	}
}
