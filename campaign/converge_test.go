package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeGateway answers pbft_cluster with states[i] on the i-th query (the last one from
// then on) and GET /v1/kv/k0 with 503 until servingAfter reads.
func fakeGateway(t *testing.T, servingAfter int64, states ...ClusterState) (*KVClient, *atomic.Int64) {
	t.Helper()
	var queries, reads atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/messages":
			i := min(int(queries.Add(1))-1, len(states)-1)
			_ = json.NewEncoder(w).Encode(states[i])
		case r.Method == http.MethodGet && r.URL.Path == "/v1/kv/k0":
			if reads.Add(1) <= servingAfter {
				http.Error(w, "no quorum yet", http.StatusServiceUnavailable)
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	c := NewKVClient(srv.URL, 5*time.Second)
	t.Cleanup(c.Close)
	return c, &queries
}

func state(executed ...uint64) ClusterState {
	var st ClusterState
	for i, n := range executed {
		st.Replicas = append(st.Replicas, ReplicaState{Node: "n" + string(rune('1'+i)), LastExecuted: n, Fault: "none"})
	}
	return st
}

func TestWaitServingPollsUntilARead(t *testing.T) {
	c, _ := fakeGateway(t, 2, state(0))
	if err := waitServing(t.Context(), c, 10*time.Second); err != nil {
		t.Fatalf("a gateway serving from the third read: %v", err)
	}
	c, _ = fakeGateway(t, 1<<40, state(0))
	if err := waitServing(t.Context(), c, 500*time.Millisecond); !errors.Is(err, errNotReady) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("a gateway that never serves: %v, want errNotReady with the last answer", err)
	}
}

func TestWaitConvergedPollsUntilEqualProgress(t *testing.T) {
	c, queries := fakeGateway(t, 0, state(5, 3, 5, 5), state(5, 4, 5, 5), state(6, 6, 6, 6))
	st, err := c.WaitConverged(t.Context(), 10*time.Second)
	if err != nil || !converged(st) || st.Replicas[0].LastExecuted != 6 || queries.Load() != 3 {
		t.Fatalf("WaitConverged: %+v, %v after %d queries; want the third state", st, err, queries.Load())
	}
	c, _ = fakeGateway(t, 0, state(5, 3, 5, 5))
	st, err = c.WaitConverged(t.Context(), 500*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "did not converge") || len(st.Replicas) != 4 {
		t.Fatalf("never converging: %+v, %v; want the last state and an error", st, err)
	}
}

func TestWaitCaughtUpWaitsForTheOthersProgressAtTheStart(t *testing.T) {
	// n2 must reach 7, what the others had executed at the first query, not 9.
	c, queries := fakeGateway(t, 0, state(7, 2, 7, 7), state(8, 5, 8, 8), state(9, 7, 9, 9), state(9, 9, 9, 9))
	if err := c.WaitCaughtUp(t.Context(), "n2"); err != nil || queries.Load() != 3 {
		t.Fatalf("WaitCaughtUp: %v after %d queries, want success at the third", err, queries.Load())
	}
	c, _ = fakeGateway(t, 0, state(7, 2, 7, 7))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if err := c.WaitCaughtUp(ctx, "n2"); err == nil || !strings.Contains(err.Error(), "n2 did not reach 7") {
		t.Fatalf("never catching up: %v", err)
	}
}
