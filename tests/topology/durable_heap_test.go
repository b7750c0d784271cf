package topology_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/internal/topology"
	"github.com/pbft-nats/pbft/pbft/client"
)

// TestHeapFlatOverManyRequests checks issue 19's "heap still flat over 1M requests" as
// deployed: 3 NATS servers, n=4 replica processes with data dirs, 64 closed-loop
// clients each setting its own key (so the replicated state stays the same size). Every
// tenth of the run it reads replica n1's heap in use after a GC; the heap must not grow
// by more than a bound from the first sample to the last. It runs only when asked,
// since 1M requests take minutes:
//
//	PBFT_HEAP_REQUESTS=1000000 go test -run TestHeapFlatOverManyRequests -timeout 30m -v ./tests/topology/
func TestHeapFlatOverManyRequests(t *testing.T) {
	v := os.Getenv("PBFT_HEAP_REQUESTS")
	if v == "" {
		t.Skip("set PBFT_HEAP_REQUESTS (e.g. 1000000) to run it")
	}
	total, err := strconv.Atoi(v)
	if err != nil || total < 10 {
		t.Fatalf("PBFT_HEAP_REQUESTS=%q: want a number of requests, at least 10", v)
	}
	ctx := context.Background()
	bins, err := topology.Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"n1", "n2", "n3", "n4"}
	top, err := topology.Start(ctx, bins, topology.Options{NATSServers: 3, Replicas: ids, Cluster: "heap", DataDirs: true,
		Env: []string{"PBFT_PPROF=on"}})
	if err != nil {
		t.Fatal(err)
	}
	defer top.Close()
	c, err := client.Connect(ctx, client.Options{NATSURL: top.NATSURL(topology.GatewayID), Cluster: "heap",
		ID: topology.GatewayID, KeysDir: top.KeysDir(), Replicas: ids, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	const clients = 64
	step := total / 10
	var done atomic.Int64
	var failed atomic.Value
	base := uint64(time.Now().UnixNano())
	samples := []float64{}
	sampled := make(chan struct{})
	var wg sync.WaitGroup
	next := make(chan int64, clients) // each client takes requests until the total
	var issued atomic.Int64
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			op := []byte(fmt.Sprintf("set k%d=v", i))
			name := fmt.Sprintf("heap%d", i)
			for k := uint64(1); issued.Add(1) <= int64(total); k++ {
				if _, err := c.Invoke(ctx, client.Request{Client: name, Timestamp: base + k, Op: op}); err != nil {
					failed.Store(err)
					return
				}
				if d := done.Add(1); d%int64(step) == 0 {
					next <- d
				}
			}
		}()
	}
	go func() { wg.Wait(); close(sampled) }()
	start := time.Now()
	sample := func(d int64) {
		h := heapInUse(top.ReplicaHTTP("n1"))
		samples = append(samples, h)
		t.Logf("%8d requests, %5.0f s: n1 heap in use %.1f MB", d, time.Since(start).Seconds(), h)
	}
	for collecting := true; collecting; {
		select {
		case d := <-next:
			sample(d)
		case <-sampled:
			collecting = false
		}
	}
	for len(next) > 0 { // the last tenth, if the clients ended first
		sample(<-next)
	}
	if err, _ := failed.Load().(error); err != nil {
		t.Fatalf("after %d requests: %v", done.Load(), err)
	}
	if len(samples) < 2 || samples[0] < 0 || samples[len(samples)-1] < 0 {
		t.Fatalf("heap samples %v", samples)
	}
	// Flat: the last sample within 16 MB (and within 2x) of the first, which a leak of
	// even 16 bytes a request over 1M requests would pass.
	first, last := samples[0], samples[len(samples)-1]
	if last > first+16 && last > 2*first {
		t.Fatalf("n1's heap grew from %.1f MB to %.1f MB over %d requests: %v", first, last, total, samples)
	}
}
