package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/pbft/client"
	"github.com/pbft-nats/pbft/pbft/gateway/embedded"
	"github.com/pbft-nats/pbft/pbft/trace"
)

// startExternalTraced runs replicas that publish trace events (their PBFT_TRACE=on) and
// returns a gateway, with its own PBFT_TRACE off, that reaches them as external
// replicas over its own NATS connection.
func startExternalTraced(t *testing.T) *httptest.Server {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	ids := []string{"n1", "n2", "n3", "n4"}
	rs := testSettings()
	rs.Trace = true
	e, err := embedded.Start(ids, rs, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	gs := testSettings()
	gs.Trace = false
	svc := NewService(gs, logger, func([]string) (Backend, error) {
		nc, err := e.Connect("external-gateway")
		if err != nil {
			return nil, err
		}
		c, err := client.New(client.Config{Keys: e.Keyring(gs.ClientID), Replicas: ids, Timeout: gs.RequestTimeout,
			Retransmit: client.RetransmitAfter(gs.ViewChangeTimeout),
			Connect: func(h bus.Handler) (bus.Transport, error) {
				return bus.NewNATS(nc, gs.Cluster, gs.ClientID, bus.RoleClient, h)
			}})
		if err != nil {
			return nil, err
		}
		return &External{nc: nc, client: c, wait: gs.RequestTimeout}, nil
	})
	t.Cleanup(svc.Close)
	if err := InitCluster(svc, ids); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewHTTPHandler(svc, logger))
	t.Cleanup(srv.Close)
	return srv
}

// Against external replicas the page shows whatever the replicas publish: the gateway's
// own PBFT_TRACE only decides for replicas it runs itself, so the hello must not say
// tracing is off, and the replicas' events of a request must reach the stream.
func TestTraceStreamExternalReplicas(t *testing.T) {
	srv := startExternalTraced(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/trace", nil)
	stream, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	lines := bufio.NewScanner(stream.Body)
	next := func() string {
		if !lines.Scan() {
			t.Fatalf("stream ended: %v", lines.Err())
		}
		return lines.Text()
	}
	for l := next(); l != "event: hello"; l = next() {
	}
	var hello traceHello
	if err := json.Unmarshal([]byte(strings.TrimPrefix(next(), "data: ")), &hello); err != nil {
		t.Fatal(err)
	}
	if hello.Embedded || hello.Trace != traceByReplicas {
		t.Fatalf("hello against external replicas: embedded %v, trace %q; want trace %q", hello.Embedded, hello.Trace, traceByReplicas)
	}
	go func() {
		_, _ = httpDoCtx(ctx, "POST", srv.URL+"/v1/messages", `{"type":"pbft_execute","msg_id":1,"operation":"set a=1","client":"t"}`)
	}()
	executed := map[string]bool{}
	for len(executed) < 4 {
		l := next()
		if !strings.HasPrefix(l, "data: ") {
			continue
		}
		var e trace.Event
		if err := json.Unmarshal([]byte(l[len("data: "):]), &e); err != nil {
			t.Fatalf("bad event line %q: %v", l, err)
		}
		if e.Type == trace.Executed && e.Seq == 1 {
			executed[e.Node] = true
		}
	}
}
