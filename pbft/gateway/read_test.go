package gateway

import "testing"

// GET /v1/kv/{key} reads on the read-only path; ?ordered=true orders the get; both see the
// write before them. POST /v1/messages takes pbft_read, and refuses a write with 12.
func TestHTTPReadPaths(t *testing.T) {
	srv := startHTTP(t)
	if resp, body := httpDo(t, "PUT", srv.URL+"/v1/kv/x", "42"); resp.StatusCode != 204 {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	for _, c := range []struct {
		query, ordered string
	}{{"", "false"}, {"?ordered=false", "false"}, {"?ordered=true", "true"}} {
		resp, body := httpDo(t, "GET", srv.URL+"/v1/kv/x"+c.query, "")
		if resp.StatusCode != 200 || body != "42" || resp.Header.Get("X-PBFT-Ordered") != c.ordered ||
			resp.Header.Get("X-PBFT-Replies") != "4" {
			t.Fatalf("GET%s: %d %q, ordered %q, replies %q", c.query, resp.StatusCode, body,
				resp.Header.Get("X-PBFT-Ordered"), resp.Header.Get("X-PBFT-Replies"))
		}
	}
	if resp, body := httpDo(t, "GET", srv.URL+"/v1/kv/never", ""); resp.StatusCode != 404 || resp.Header.Get("X-PBFT-Ordered") != "false" {
		t.Fatalf("GET of a key never set: %d %s", resp.StatusCode, body)
	}
	if resp, body := httpDo(t, "GET", srv.URL+"/v1/kv/x?ordered=maybe", ""); resp.StatusCode != 400 {
		t.Fatalf("GET ?ordered=maybe: %d %s", resp.StatusCode, body)
	}
	resp, body := httpDo(t, "POST", srv.URL+"/v1/messages", `{"type":"pbft_read","msg_id":7,"operation":"get x","client":"h"}`)
	if m := httpJSON(t, body); resp.StatusCode != 200 || m["type"] != "pbft_read_ok" || m["result"] != "42" || m["ordered"] != false {
		t.Fatalf("pbft_read: %d %s", resp.StatusCode, body)
	}
	resp, body = httpDo(t, "POST", srv.URL+"/v1/messages", `{"type":"pbft_read","msg_id":8,"operation":"set x=1","client":"h"}`)
	if m := httpJSON(t, body); resp.StatusCode != 400 || m["code"] != float64(12) {
		t.Fatalf("pbft_read of a write: %d %s", resp.StatusCode, body)
	}
	if resp, body = httpDo(t, "GET", srv.URL+"/v1/kv/x", ""); body != "42" {
		t.Fatalf("after the refused read: %d %q", resp.StatusCode, body)
	}
}
