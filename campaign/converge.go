package campaign

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pbft-nats/pbft/internal/poll"
)

// ReplicaState is one replica's entry of the gateway's pbft_cluster answer.
type ReplicaState struct {
	Node             string `json:"node"`
	View             uint64 `json:"view"`
	LastExecuted     uint64 `json:"last_executed"`
	StableCheckpoint uint64 `json:"stable_checkpoint"`
	Fault            string `json:"fault"`
}

// ClusterState is the gateway's pbft_cluster answer.
type ClusterState struct {
	View     uint64         `json:"view"`
	Primary  string         `json:"primary"`
	Replicas []ReplicaState `json:"replicas"`
}

var msgIDs atomic.Int64

// QueryCluster asks the gateway for pbft_cluster (POST /v1/messages).
func (c *KVClient) QueryCluster(ctx context.Context) (ClusterState, error) {
	body := fmt.Sprintf(`{"type":"pbft_cluster","msg_id":%d}`, msgIDs.Add(1))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/messages", bytes.NewBufferString(body))
	if err != nil {
		return ClusterState{}, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return ClusterState{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return ClusterState{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return ClusterState{}, fmt.Errorf("pbft_cluster: %d %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	var st ClusterState
	if err := json.Unmarshal(b, &st); err != nil {
		return ClusterState{}, fmt.Errorf("pbft_cluster: %w", err)
	}
	return st, nil
}

// converged reports whether every replica answered and all executed the same number of
// requests. Views may differ: a replica that was cut off long enough to start a view
// change stays in its higher view until the others move (viewNote reports it).
func converged(st ClusterState) bool {
	if len(st.Replicas) == 0 {
		return false
	}
	first := st.Replicas[0]
	for _, r := range st.Replicas {
		if r.Fault == "unreachable" || r.LastExecuted != first.LastExecuted {
			return false
		}
	}
	return true
}

// viewNote describes replicas whose view is not the majority's, or "".
func viewNote(st ClusterState) string {
	count := map[uint64]int{}
	for _, r := range st.Replicas {
		count[r.View]++
	}
	if len(count) <= 1 {
		return ""
	}
	var major uint64
	for v, c := range count {
		if c > count[major] || (c == count[major] && v < major) {
			major = v
		}
	}
	var odd []string
	for _, r := range st.Replicas {
		if r.View != major {
			odd = append(odd, fmt.Sprintf("%s in view %d", r.Node, r.View))
		}
	}
	return fmt.Sprintf("views differ after convergence: %s while %d replicas are in view %d "+
		"(a replica that moved to a higher view without the others stays there until they move)",
		strings.Join(odd, ", "), count[major], major)
}

// WaitConverged polls pbft_cluster until the replicas agree on their progress, or
// timeout passes; it returns the last state seen.
func (c *KVClient) WaitConverged(ctx context.Context, timeout time.Duration) (ClusterState, error) {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last ClusterState
	var lastErr error
	err := poll.Until(pctx, 250*time.Millisecond, func() (bool, error) {
		// A query may finish after the deadline: its answer still counts.
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		st, err := c.QueryCluster(qctx)
		if err != nil {
			lastErr = err
			return false, nil
		}
		last, lastErr = st, nil
		return converged(st), nil
	})
	switch {
	case err == nil:
		return last, nil
	case lastErr != nil:
		return last, lastErr
	case ctx.Err() != nil:
		return last, ctx.Err()
	}
	return last, fmt.Errorf("replicas did not converge within %v: %+v", timeout, last.Replicas)
}

// WaitCaughtUp polls pbft_cluster until replica id answers and has executed at least
// as much as the others did when the wait began, or ctx ends.
func (c *KVClient) WaitCaughtUp(ctx context.Context, id string) error {
	var target uint64
	targetSet := false
	var lastErr error
	err := poll.Until(ctx, 250*time.Millisecond, func() (bool, error) {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		st, err := c.QueryCluster(qctx)
		if lastErr = err; err != nil {
			return false, nil
		}
		var mine *ReplicaState
		var others uint64
		for i, r := range st.Replicas {
			if r.Node == id {
				mine = &st.Replicas[i]
			} else if r.Fault != "unreachable" {
				others = max(others, r.LastExecuted)
			}
		}
		if !targetSet {
			target, targetSet = others, true
		}
		return mine != nil && mine.Fault != "unreachable" && mine.LastExecuted >= target, nil
	})
	switch {
	case err == nil:
		return nil
	case !targetSet && lastErr != nil:
		return lastErr // no answer at all: say why
	}
	return fmt.Errorf("%s did not reach %d: %w", id, target, err)
}
