package gateway

import (
	"strings"
	"testing"

	"github.com/pbft-nats/pbft/pbft/obs/obstest"
)

// /metrics passes Prometheus' linter and holds the Go runtime and process metrics, the
// gateway's request latency by route and outcome and its requests in flight, and the
// embedded replicas' metrics labelled by replica.
func TestHTTPMetricsFamilies(t *testing.T) {
	srv := startHTTP(t)
	if resp, body := httpDo(t, "PUT", srv.URL+"/v1/kv/k", "v"); resp.StatusCode != 204 {
		t.Fatalf("put: %d %s", resp.StatusCode, body)
	}
	if resp, _ := httpDo(t, "GET", srv.URL+"/nowhere", ""); resp.StatusCode != 404 {
		t.Fatalf("GET /nowhere: %d", resp.StatusCode)
	}
	resp, body := httpDo(t, "GET", srv.URL+"/metrics", "")
	if resp.StatusCode != 200 {
		t.Fatalf("metrics: %d %s", resp.StatusCode, body)
	}
	obstest.Lint(t, body)
	fams := obstest.Families(t, body)
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "pbft_http_requests_in_flight",
		"pbft_http_request_duration_seconds", "pbft_http_requests_total", "pbft_replica_view", "pbft_request_latency_seconds"} {
		if fams[name] == nil {
			t.Errorf("metrics lack %s", name)
		}
	}
	if f := fams["pbft_http_requests_in_flight"]; f != nil && f.GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Errorf("in flight while /metrics answers: %v, want 1 (itself)", f.GetMetric()[0].GetGauge().GetValue())
	}
	for _, want := range []string{
		`pbft_http_request_duration_seconds_count{outcome="ok",path="/v1/kv"} 1`,
		`pbft_http_request_duration_seconds_bucket{outcome="ok",path="/v1/kv",le="+Inf"} 1`,
		`pbft_http_request_duration_seconds_count{outcome="client_error",path="unmatched"} 1`,
		`pbft_replica_last_executed{replica="n4"} `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", body)
	}
}

// PBFT_PPROF=on serves net/http/pprof on the API's address; off (the default) it is not
// there.
func TestHTTPPprof(t *testing.T) {
	off := startHTTP(t)
	if resp, _ := httpDo(t, "GET", off.URL+"/debug/pprof/", ""); resp.StatusCode != 404 {
		t.Fatalf("pprof off: %d, want 404", resp.StatusCode)
	}
	s := testSettings()
	s.Pprof = true
	on := startHTTPWith(t, s)
	if resp, body := httpDo(t, "GET", on.URL+"/debug/pprof/goroutine?debug=1", ""); resp.StatusCode != 200 || !strings.Contains(body, "goroutine profile:") {
		t.Fatalf("pprof goroutine: %d %.200s", resp.StatusCode, body)
	}
	if resp, body := httpDo(t, "GET", on.URL+"/debug/pprof/", ""); resp.StatusCode != 200 || !strings.Contains(body, "heap") {
		t.Fatalf("pprof index: %d %.200s", resp.StatusCode, body)
	}
}
