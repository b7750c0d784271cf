package gateway

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/pbft-nats/pbft/pbft/gateway/embedded"
)

// startNATSAPI serves the NATS API over a fresh embedded 4-replica cluster, and returns
// a client connection to the same NATS server.
func startNATSAPI(t *testing.T) (client *nats.Conn, api *NATSAPI) {
	t.Helper()
	s := testSettings()
	logger := slog.New(slog.DiscardHandler)
	svc := NewService(s, logger, func(ids []string) (Backend, error) { return embedded.Start(ids, s, logger) })
	t.Cleanup(svc.Close)
	if err := InitCluster(svc, []string{"n1", "n2", "n3", "n4"}); err != nil {
		t.Fatal(err)
	}
	e := svc.Backend().(*embedded.Cluster)
	conn := func(name string) *nats.Conn {
		nc, err := e.Connect(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	api, err := ServeNATS(conn("gateway-api"), svc, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Stop)
	return conn("test-client"), api
}

// natsRequest asks subject and decodes the JSON answer.
func natsRequest(t *testing.T, nc *nats.Conn, subject, body string) (map[string]any, *nats.Msg) {
	t.Helper()
	msg, err := nc.Request(subject, []byte(body), 10*time.Second)
	if err != nil {
		t.Fatalf("request %s %s: %v", subject, body, err)
	}
	var m map[string]any
	if err := json.Unmarshal(msg.Data, &m); err != nil {
		t.Fatalf("answer %q is not a JSON object: %v", msg.Data, err)
	}
	return m, msg
}

func TestNATSAPIAnswersLikeHTTP(t *testing.T) {
	nc, _ := startNATSAPI(t)
	const api = "pbft.pbft.api"
	m, msg := natsRequest(t, nc, api, `{"type":"pbft_execute","msg_id":1,"operation":"set x=1","client":"c1"}`)
	if m["type"] != "pbft_execute_ok" || m["in_reply_to"] != 1.0 || m["result"] != "OK" || m["sequence_number"] != 1.0 || msg.Header.Get(micro.ErrorCodeHeader) != "" {
		t.Fatalf("pbft_execute: %s %v", msg.Data, msg.Header)
	}
	// A whole line is accepted too, as by POST /v1/messages.
	m, msg = natsRequest(t, nc, api, `{"src":"c1","dest":"n2","body":{"type":"pbft_execute","msg_id":2,"operation":"get x","client":"c1"}}`)
	if m["type"] != "pbft_execute_ok" || m["result"] != "1" {
		t.Fatalf("pbft_execute as a line: %s", msg.Data)
	}
	// A conflicting retransmission (the request id of msg_id 1 with another operation) is
	// refused with 22, as over HTTP, and nothing is executed.
	m, msg = natsRequest(t, nc, api, `{"type":"pbft_execute","msg_id":1,"operation":"set x=7","client":"c1"}`)
	if m["type"] != "error" || m["code"] != 22.0 || !strings.Contains(m["text"].(string), "another operation") ||
		msg.Header.Get(micro.ErrorCodeHeader) != "22" || msg.Header.Get(micro.ErrorHeader) != m["text"] {
		t.Fatalf("conflicting retransmission: %s %v", msg.Data, msg.Header)
	}
	m, msg = natsRequest(t, nc, api, `{"type":"pbft_execute","msg_id":3,"operation":"get x","client":"c1"}`)
	if m["result"] != "1" {
		t.Fatalf("the refused write was executed: %s", msg.Data)
	}
	m, msg = natsRequest(t, nc, api, `{"type":`)
	if m["type"] != "error" || m["code"] != 12.0 || m["in_reply_to"] != nil || msg.Header.Get(micro.ErrorCodeHeader) != "12" {
		t.Fatalf("malformed: %s", msg.Data)
	}
	m, msg = natsRequest(t, nc, api, `{"type":"pbft_cluster","msg_id":9}`)
	if m["type"] != "pbft_cluster_ok" || len(m["replicas"].([]any)) != 4 {
		t.Fatalf("pbft_cluster: %s", msg.Data)
	}
}

// The gateway is found through the services framework, with its endpoint and the
// endpoint's counts.
func TestNATSAPIRegistersWithTheServicesFramework(t *testing.T) {
	nc, _ := startNATSAPI(t)
	info, err := nc.Request("$SRV.INFO."+NATSServiceName, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var i micro.Info
	if err := json.Unmarshal(info.Data, &i); err != nil {
		t.Fatal(err)
	}
	if i.Name != NATSServiceName || len(i.Endpoints) != 1 || i.Endpoints[0].Subject != "pbft.pbft.api" || i.Endpoints[0].Name != "api" {
		t.Fatalf("info: %s", info.Data)
	}
	natsRequest(t, nc, "pbft.pbft.api", `{"type":"pbft_execute","msg_id":1,"operation":"set y=2","client":"c2"}`)
	natsRequest(t, nc, "pbft.pbft.api", `{"type":"nonsense","msg_id":2}`)
	stats, err := nc.Request("$SRV.STATS."+NATSServiceName, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// in_flight may still count the last answer, counted down after it was sent.
	var st struct {
		Endpoints []struct {
			Name        string       `json:"name"`
			NumRequests int          `json:"num_requests"`
			Data        natsAPIStats `json:"data"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal(stats.Data, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Endpoints) != 1 || st.Endpoints[0].NumRequests != 2 || st.Endpoints[0].Data.Errors != 1 {
		t.Fatalf("stats: %s", stats.Data)
	}
}
