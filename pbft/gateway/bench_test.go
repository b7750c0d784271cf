package gateway

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkEmbeddedCluster measures committed requests per second through an embedded
// 4-replica cluster with C closed-loop clients, each waiting for the f+1 matching replies
// (Execute waits for all four), and reports latency percentiles (see benchClosedLoop).
func BenchmarkEmbeddedCluster(b *testing.B) {
	for _, clients := range []int{1, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			benchClosedLoop(b, clients, func(svc *Service, a RequestArgs) error {
				_, err := svc.Execute(context.Background(), "n1", a)
				return err
			})
		})
	}
}
