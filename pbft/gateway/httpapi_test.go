package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/pbft/config"
	"github.com/pbft-nats/pbft/pbft/gateway/embedded"
)

// startHTTP serves the network API over a fresh embedded 4-replica cluster.
func startHTTP(t *testing.T) *httptest.Server {
	t.Helper()
	return startHTTPWith(t, testSettings())
}

func startHTTPWith(t *testing.T, s config.Settings) *httptest.Server {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	svc := NewService(s, logger, func(ids []string) (Backend, error) { return embedded.Start(ids, s, logger) })
	t.Cleanup(svc.Close)
	if err := InitCluster(svc, []string{"n1", "n2", "n3", "n4"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewHTTPHandler(svc, logger))
	t.Cleanup(srv.Close)
	return srv
}

func httpDo(t *testing.T, method, url, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func httpJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not a JSON object: %q: %v", s, err)
	}
	return m
}

func TestHTTPMessagesExecuteThenStatus(t *testing.T) {
	srv := startHTTP(t)
	resp, body := httpDo(t, "POST", srv.URL+"/v1/messages", `{"type":"pbft_execute","msg_id":1,"operation":"set x=1","client":"c1"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("execute: %d %s", resp.StatusCode, body)
	}
	if !strings.HasPrefix(body, `{"type": "pbft_execute_ok", "in_reply_to": 1, "sequence_number": 1, "view": 0, "result": "OK", "replies": 4, "msg_id": `) {
		t.Fatalf("execute reply: %s", body)
	}
	// A whole line is accepted too; dest picks the replica.
	resp, body = httpDo(t, "POST", srv.URL+"/v1/messages", `{"src":"c1","dest":"n2","body":{"type":"pbft_status","msg_id":2,"sequence_number":1}}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status: %d %s", resp.StatusCode, body)
	}
	m := httpJSON(t, body)
	if m["type"] != "pbft_status_ok" || m["phase"] != "committed" || m["prepares_received"] != 3.0 ||
		m["commits_received"] != 4.0 || m["executed"] != true || m["in_reply_to"] != 2.0 {
		t.Fatalf("status reply: %s", body)
	}
	// A repeat init with the same cluster is fine; a different one conflicts.
	resp, body = httpDo(t, "POST", srv.URL+"/v1/messages", `{"type":"init","msg_id":3,"node_id":"n1","node_ids":["n1","n2","n3","n4"]}`)
	if resp.StatusCode != 200 || httpJSON(t, body)["type"] != "init_ok" {
		t.Fatalf("init: %d %s", resp.StatusCode, body)
	}
	resp, body = httpDo(t, "POST", srv.URL+"/v1/messages", `{"type":"init","msg_id":4,"node_id":"n1","node_ids":["n1","n2","n3"]}`)
	if resp.StatusCode != 409 || httpJSON(t, body)["code"] != 22.0 {
		t.Fatalf("conflicting init: %d %s", resp.StatusCode, body)
	}
	resp, body = httpDo(t, "POST", srv.URL+"/v1/messages", `{"type":"pbft_cluster","msg_id":5}`)
	if resp.StatusCode != 200 || httpJSON(t, body)["primary"] != "n1" {
		t.Fatalf("cluster: %d %s", resp.StatusCode, body)
	}
	// Reaching the port is never enough to change the membership.
	resp, body = httpDo(t, "POST", srv.URL+"/v1/messages", `{"type":"pbft_reconfigure","msg_id":6,"replicas":["n1","n2","n3"]}`)
	if resp.StatusCode != 400 || httpJSON(t, body)["code"] != float64(CodeNotSupported) {
		t.Fatalf("reconfigure over HTTP: %d %s", resp.StatusCode, body)
	}
	resp, body = httpDo(t, "POST", srv.URL+"/v1/messages", `{"type":"pbft_cluster","msg_id":7}`)
	if reps, _ := httpJSON(t, body)["replicas"].([]any); resp.StatusCode != 200 || len(reps) != 4 {
		t.Fatalf("cluster after a refused reconfiguration: %d %s", resp.StatusCode, body)
	}
}

func TestHTTPKVRoundTrip(t *testing.T) {
	srv := startHTTP(t)
	resp, body := httpDo(t, "PUT", srv.URL+"/v1/kv/greeting", "hello world")
	if resp.StatusCode != 204 || resp.Header.Get("X-PBFT-Seq") == "" || resp.Header.Get("X-PBFT-Replies") != "4" {
		t.Fatalf("put: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	resp, body = httpDo(t, "GET", srv.URL+"/v1/kv/greeting", "")
	if resp.StatusCode != 200 || body != "hello world" || resp.Header.Get("X-PBFT-Seq") == "" {
		t.Fatalf("get: %d %q", resp.StatusCode, body)
	}
	resp, body = httpDo(t, "DELETE", srv.URL+"/v1/kv/greeting", "")
	if resp.StatusCode != 204 {
		t.Fatalf("delete: %d %s", resp.StatusCode, body)
	}
	resp, body = httpDo(t, "GET", srv.URL+"/v1/kv/greeting", "")
	if resp.StatusCode != 404 || httpJSON(t, body)["code"] != 20.0 {
		t.Fatalf("get after delete: %d %q", resp.StatusCode, body)
	}
	resp, body = httpDo(t, "PUT", srv.URL+"/v1/kv/a=b", "x")
	if resp.StatusCode != 400 || httpJSON(t, body)["code"] != 12.0 {
		t.Fatalf("bad key: %d %s", resp.StatusCode, body)
	}
	resp, body = httpDo(t, "GET", srv.URL+"/v1/kv/a%20b", "")
	if resp.StatusCode != 400 || httpJSON(t, body)["type"] != "error" {
		t.Fatalf("key with a space: %d %s", resp.StatusCode, body)
	}
}

// A key never set answers 404; one set to the empty string answers 200 with an empty
// body. The client protocol's get still answers "" for both.
func TestHTTPKVAbsentIsNotEmpty(t *testing.T) {
	srv := startHTTP(t)
	resp, body := httpDo(t, "GET", srv.URL+"/v1/kv/never", "")
	if resp.StatusCode != 404 || httpJSON(t, body)["code"] != 20.0 || !strings.Contains(body, `never`) {
		t.Fatalf("get of a key never set: %d %q", resp.StatusCode, body)
	}
	if resp, body = httpDo(t, "PUT", srv.URL+"/v1/kv/empty", ""); resp.StatusCode != 204 {
		t.Fatalf("put of an empty value: %d %q", resp.StatusCode, body)
	}
	resp, body = httpDo(t, "GET", srv.URL+"/v1/kv/empty", "")
	if resp.StatusCode != 200 || body != "" || resp.Header.Get("X-PBFT-Replies") != "4" {
		t.Fatalf("get of an empty value: %d %q", resp.StatusCode, body)
	}
	resp, body = httpDo(t, "POST", srv.URL+"/v1/messages", `{"type":"pbft_execute","msg_id":1,"operation":"get never","client":"c1"}`)
	if resp.StatusCode != 200 || httpJSON(t, body)["result"] != "" {
		t.Fatalf("pbft_execute of get of a key never set: %d %s", resp.StatusCode, body)
	}
}

func TestHTTPBadRequests(t *testing.T) {
	srv := startHTTP(t)
	resp, body := httpDo(t, "POST", srv.URL+"/v1/messages", `{"type":`)
	if resp.StatusCode != 400 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("malformed: %d %s", resp.StatusCode, body)
	}
	if m := httpJSON(t, body); m["type"] != "error" || m["code"] != 12.0 {
		t.Fatalf("malformed reply: %s", body)
	}
	resp, body = httpDo(t, "POST", srv.URL+"/v1/messages", `{"type":"frobnicate","msg_id":7}`)
	if resp.StatusCode != 400 {
		t.Fatalf("unknown type: %d %s", resp.StatusCode, body)
	}
	if m := httpJSON(t, body); m["code"] != 10.0 || m["in_reply_to"] != 7.0 {
		t.Fatalf("unknown type reply: %s", body)
	}
	resp, body = httpDo(t, "POST", srv.URL+"/v1/messages", `{"type":"pbft_execute","msg_id":8,"operation":""}`)
	if resp.StatusCode != 400 || httpJSON(t, body)["code"] != 12.0 {
		t.Fatalf("empty operation: %d %s", resp.StatusCode, body)
	}
	// Over HTTP msg_id is the request's timestamp (any gateway deduplicates a client's
	// retries with it), so it must be positive.
	resp, body = httpDo(t, "POST", srv.URL+"/v1/messages", `{"type":"pbft_execute","msg_id":-3,"operation":"set a=1"}`)
	if resp.StatusCode != 400 || httpJSON(t, body)["code"] != 12.0 || httpJSON(t, body)["in_reply_to"] != -3.0 {
		t.Fatalf("negative msg_id: %d %s", resp.StatusCode, body)
	}
	resp, body = httpDo(t, "GET", srv.URL+"/v1/messages", "")
	if resp.StatusCode != 405 || resp.Header.Get("Allow") == "" || httpJSON(t, body)["type"] != "error" {
		t.Fatalf("GET /v1/messages: %d %s", resp.StatusCode, body)
	}
	resp, body = httpDo(t, "GET", srv.URL+"/nowhere", "")
	if resp.StatusCode != 404 || httpJSON(t, body)["type"] != "error" {
		t.Fatalf("GET /nowhere: %d %s", resp.StatusCode, body)
	}
}

func TestHTTPHealthReadyMetrics(t *testing.T) {
	srv := startHTTP(t)
	if resp, body := httpDo(t, "GET", srv.URL+"/healthz", ""); resp.StatusCode != 200 {
		t.Fatalf("healthz: %d %s", resp.StatusCode, body)
	}
	if resp, body := httpDo(t, "GET", srv.URL+"/readyz", ""); resp.StatusCode != 200 {
		t.Fatalf("readyz: %d %s", resp.StatusCode, body)
	}
	if resp, body := httpDo(t, "PUT", srv.URL+"/v1/kv/k", "v"); resp.StatusCode != 204 {
		t.Fatalf("put: %d %s", resp.StatusCode, body)
	}
	resp, body := httpDo(t, "GET", srv.URL+"/metrics", "")
	if resp.StatusCode != 200 {
		t.Fatalf("metrics: %d", resp.StatusCode)
	}
	for _, want := range []string{"pbft_messages_in_total{kind=", "pbft_messages_out_total{",
		`pbft_http_requests_total{code="204",path="/v1/kv"} 1`, `pbft_http_requests_total{code="200",path="/healthz"} 1`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}

func TestHTTPTimeoutIs504(t *testing.T) {
	s := testSettings()
	s.RequestTimeout = 500 * time.Millisecond
	srv := startHTTPWith(t, s)
	for i, n := range []string{"n2", "n3"} {
		body := fmt.Sprintf(`{"type":"pbft_fault","msg_id":%d,"node":"%s","fault":"crash"}`, i+1, n)
		if resp, b := httpDo(t, "POST", srv.URL+"/v1/messages", body); resp.StatusCode != 200 {
			t.Fatalf("fault %s: %d %s", n, resp.StatusCode, b)
		}
	}
	start := time.Now()
	resp, body := httpDo(t, "PUT", srv.URL+"/v1/kv/k", "v")
	if resp.StatusCode != 504 && resp.StatusCode != 503 {
		t.Fatalf("put without a quorum: %d %s", resp.StatusCode, body)
	}
	if m := httpJSON(t, body); m["code"] != 0.0 {
		t.Fatalf("put without a quorum: %s", body)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("put without a quorum took %v", d)
	}
	resp, body = httpDo(t, "POST", srv.URL+"/v1/messages", `{"type":"pbft_execute","msg_id":9,"operation":"get k"}`)
	if resp.StatusCode != 504 || httpJSON(t, body)["in_reply_to"] != 9.0 {
		t.Fatalf("execute without a quorum: %d %s", resp.StatusCode, body)
	}
}

// A request id used again with another operation is refused with 409 and error 22 (by
// f+1 replicas' conflict replies), as pbft_execute and as pbft_request, and the write is
// not executed.
func TestHTTPConflictingRetransmissionIsRefused(t *testing.T) {
	srv := startHTTP(t)
	resp, body := httpDo(t, "POST", srv.URL+"/v1/messages", `{"type":"pbft_execute","msg_id":1,"operation":"get x","client":"c1"}`)
	if resp.StatusCode != 200 || httpJSON(t, body)["type"] != "pbft_execute_ok" {
		t.Fatalf("first: %d %s", resp.StatusCode, body)
	}
	for _, typ := range []string{"pbft_execute", "pbft_request"} {
		resp, body = httpDo(t, "POST", srv.URL+"/v1/messages", `{"type":"`+typ+`","msg_id":1,"operation":"set x=7","client":"c1"}`)
		m := httpJSON(t, body)
		if resp.StatusCode != 409 || m["code"] != 22.0 || !strings.Contains(m["text"].(string), "another operation") {
			t.Fatalf("%s with a used msg_id and another operation: %d %s", typ, resp.StatusCode, body)
		}
	}
	// The retransmission of the first request is still answered as before.
	resp, body = httpDo(t, "POST", srv.URL+"/v1/messages", `{"type":"pbft_execute","msg_id":1,"operation":"get x","client":"c1"}`)
	if m := httpJSON(t, body); resp.StatusCode != 200 || m["sequence_number"] != 1.0 {
		t.Fatalf("retransmission: %d %s", resp.StatusCode, body)
	}
	if resp, body = httpDo(t, "GET", srv.URL+"/v1/kv/x", ""); resp.StatusCode != 404 {
		t.Fatalf("the refused write was executed: GET x = %d %q", resp.StatusCode, body)
	}
}
