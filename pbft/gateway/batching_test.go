package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/pbft/config"
	"github.com/pbft-nats/pbft/pbft/gateway/embedded"
	"github.com/pbft-nats/pbft/pbft/gateway/jsonl"
)

func startServiceWith(t *testing.T, s config.Settings) (*Service, *embedded.Cluster) {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	var emb *embedded.Cluster
	svc := NewService(s, logger, func(ids []string) (Backend, error) {
		e, err := embedded.Start(ids, s, logger)
		emb = e
		return e, err
	})
	t.Cleanup(svc.Close)
	l, err := jsonl.Parse([]byte(`{"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","n2","n3","n4"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Init(l); err != nil {
		t.Fatal(err)
	}
	return svc, emb
}

// With a batch timeout far longer than the test, a lone request is still ordered at once
// (nothing in flight), and a burst of BatchMax requests fills a batch that goes without
// waiting for the timeout either.
func TestBatchTimeoutCostsALoneRequestNothing(t *testing.T) {
	s := testSettings()
	s.BatchTimeout = time.Hour
	s.BatchMax = 8
	svc, _ := startServiceWith(t, s)
	for i := uint64(1); i <= 3; i++ {
		res, err := svc.Invoke(context.Background(), RequestArgs{Operation: fmt.Sprintf("set k%d=v", i), Client: "lone", Timestamp: i})
		if err != nil {
			t.Fatalf("lone request %d: %v", i, err)
		}
		if res.Seq != i {
			t.Fatalf("lone request %d ordered at %d, want its own number %d", i, res.Seq, i)
		}
	}
}

// Under concurrent load a short batch timeout fills batches: far fewer sequence numbers
// than requests, every request answered.
func TestBatchTimeoutFillsBatchesUnderLoad(t *testing.T) {
	s := testSettings()
	s.BatchTimeout = 5 * time.Millisecond
	svc, e := startServiceWith(t, s)
	const clients, each = 32, 10
	var wg sync.WaitGroup
	errs := make(chan error, clients*each)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := uint64(1); k <= each; k++ {
				if _, err := svc.Invoke(context.Background(), RequestArgs{Operation: "set x=1", Client: fmt.Sprintf("c%d", c), Timestamp: k}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if p := replicaProgress(t, e, "n1"); p.LastExecuted*4 > clients*each {
		t.Fatalf("%d requests took %d sequence numbers: batches average under 4", clients*each, p.LastExecuted)
	}
}
