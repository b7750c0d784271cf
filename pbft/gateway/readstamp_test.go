package gateway

import (
	"context"
	"errors"
	"testing"
)

// A read's ordered request must not carry a timestamp that newer requests of the same
// client overtook while it waited: the replicas refuse it as older than their reply
// cache (the campaign saw HTTP reads answered 409 when the read-only path fell back
// during a NATS fault). Restamp gives the fallback a fresh one.
func TestReadFallbackTakesAFreshTimestamp(t *testing.T) {
	svc, _ := startService(t)
	ctx := context.Background()
	last := uint64(140)
	for ts := uint64(2); ts <= last; ts++ { // past the replicas' 128 cached replies
		execute(t, svc, "", "set k=v", ts)
	}
	stale := RequestArgs{Operation: "get k", Client: "c1", Timestamp: 1}
	if _, err := svc.Read(ctx, "", stale, true); err == nil {
		t.Fatal("an ordered read under an overtaken timestamp was answered; the test shows nothing")
	} else if pe := (*ProtoError)(nil); !errors.As(err, &pe) || pe.Code != CodePreconditionFail {
		t.Fatalf("ordered read under an overtaken timestamp: %v, want error 22", err)
	}
	fresh := stale
	fresh.Restamp = func() uint64 { last++; return last }
	res, err := svc.Read(ctx, "", fresh, true)
	if err != nil || !res.Ordered || res.Result != "v" {
		t.Fatalf("read with Restamp: %+v, %v; want v through an ordered request", res, err)
	}
}
