package obs_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/pbft/obs"
)

// Serve answers on a real listener and returns once its context ends.
func TestServe(t *testing.T) {
	ln, err := obs.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	go func() { done <- obs.Serve(ctx, ln, h, nil, time.Second) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok\n" {
		t.Fatalf("GET: %d %q", resp.StatusCode, b)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if _, err := obs.Listen("256.0.0.1:1"); err == nil {
		t.Fatal("Listen on a bad address succeeded")
	}
}

// Each registry is its own: two in one process both hold the Go and process metrics.
func TestNewRegistry(t *testing.T) {
	for range 2 {
		fams, err := obs.NewRegistry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, f := range fams {
			names[f.GetName()] = true
		}
		if !names["go_goroutines"] || !names["process_resident_memory_bytes"] {
			t.Fatalf("registry lacks the Go or process collector: %v", names)
		}
	}
}
