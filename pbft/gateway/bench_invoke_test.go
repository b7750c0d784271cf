package gateway

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkEmbeddedInvoke is BenchmarkEmbeddedCluster on the PBFT client's path: the
// request to the primary, done at f+1 matching replies (Service.Invoke).
func BenchmarkEmbeddedInvoke(b *testing.B) {
	for _, clients := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			benchClosedLoop(b, clients, func(svc *Service, a RequestArgs) error {
				_, err := svc.Invoke(context.Background(), a)
				return err
			})
		})
	}
}
