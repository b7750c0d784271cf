package topology

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pbft-nats/pbft/internal/poll"
	"github.com/pbft-nats/pbft/internal/topology"
)

func TestMain(m *testing.M) { os.Exit(topology.RunAndRemoveBuilds(m.Run)) }

var replicas = []string{"replica-0", "replica-1", "replica-2", "replica-3"}

// startTopology starts three NATS servers with auth, four replicas and the gateway.
func startTopology(t *testing.T, ctx context.Context) *topology.Topology {
	t.Helper()
	bins, err := topology.Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	top, err := topology.Start(ctx, bins, topology.Options{
		NATSServers: 3, Replicas: replicas, Cluster: "pbft", Auth: true, GatewayHTTP: true,
		Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, id := range replicas {
				t.Logf("log of %s (tail):\n%s", id, tailString(top.ReplicaLog(id), 6000))
			}
			t.Logf("log of the gateway (tail):\n%s", tailString(top.GatewayLog(), 6000))
		}
		if err := top.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return top
}

func tailString(s string, n int) string {
	if len(s) > n {
		return "...\n" + s[len(s)-n:]
	}
	return s
}

var httpClient = &http.Client{Timeout: 15 * time.Second}

func do(method, url, body string) (int, string, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// mustDo runs an HTTP request and checks its status.
func mustDo(t *testing.T, method, url, body string, want int) string {
	t.Helper()
	code, got, err := do(method, url, body)
	if err != nil || code != want {
		t.Fatalf("%s %s %s: %d %q %v, want %d", method, url, body, code, got, err, want)
	}
	return got
}

// The whole story on one topology: the HTTP API works, no acknowledged write is lost
// when a NATS server and the primary die under load, the metrics show the traffic, and
// NATS keeps each replica to its own subjects.
func TestThreeServerAuthTopology(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	start := time.Now()
	top := startTopology(t, ctx)
	t.Logf("topology up after %v", time.Since(start).Round(time.Millisecond))

	t.Run("http", func(t *testing.T) { testHTTP(t, top) })
	t.Run("faults under load", func(t *testing.T) { testFaultsUnderLoad(t, ctx, top) })
	t.Run("metrics", func(t *testing.T) { testMetrics(t, top) })
	t.Run("permissions", func(t *testing.T) { testPermissions(t, top) })
	t.Run("no password in logs", func(t *testing.T) {
		for _, id := range replicas {
			if pw := top.Password(id); pw == "" || strings.Contains(top.ReplicaLog(id), pw) {
				t.Errorf("%s's log shows its NATS password %q", id, pw)
			}
		}
		if strings.Contains(top.GatewayLog(), top.Password(topology.GatewayID)) {
			t.Error("the gateway's log shows its NATS password")
		}
	})
	t.Logf("done after %v", time.Since(start).Round(time.Millisecond))
}

// reply is a /v1/messages answer body.
type reply struct {
	Type           string  `json:"type"`
	InReplyTo      *int64  `json:"in_reply_to"`
	SequenceNumber uint64  `json:"sequence_number"`
	View           *uint64 `json:"view"`
	Phase          string  `json:"phase"`
	Result         *string `json:"result"`
	Replies        int     `json:"replies"`
	Executed       bool    `json:"executed"`
	Commits        int     `json:"commits_received"`
	Primary        string  `json:"primary"`
	Replicas       []struct {
		Node         string `json:"node"`
		LastExecuted uint64 `json:"last_executed"`
		Fault        string `json:"fault"`
	} `json:"replicas"`
}

func postMessage(t *testing.T, top *topology.Topology, body string) reply {
	t.Helper()
	raw := mustDo(t, http.MethodPost, top.GatewayURL()+"/v1/messages", body, http.StatusOK)
	var r reply
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		t.Fatalf("%s: bad answer %q: %v", body, raw, err)
	}
	return r
}

// (a) curl-style requests: the message bodies of docs/protocol.md and the key-value facade.
func testHTTP(t *testing.T, top *topology.Topology) {
	gw := top.GatewayURL()
	r := postMessage(t, top, `{"type":"pbft_execute","msg_id":1,"operation":"set greeting=hello","client":"c1"}`)
	if r.Type != "pbft_execute_ok" || r.Result == nil || *r.Result != "OK" || r.Replies < 2 || r.SequenceNumber == 0 ||
		r.InReplyTo == nil || *r.InReplyTo != 1 {
		t.Fatalf("pbft_execute: %+v", r)
	}
	r = postMessage(t, top, `{"type":"pbft_execute","msg_id":2,"operation":"get greeting","client":"c1"}`)
	if r.Type != "pbft_execute_ok" || r.Result == nil || *r.Result != "hello" {
		t.Fatalf("pbft_execute get: %+v", r)
	}
	r = postMessage(t, top, `{"type":"pbft_request","msg_id":3,"operation":"set x=1","client":"c2"}`)
	if r.Type != "pbft_request_ok" || r.Phase != "pre-prepare" || r.SequenceNumber == 0 {
		t.Fatalf("pbft_request: %+v", r)
	}
	seq := r.SequenceNumber
	r = postMessage(t, top, fmt.Sprintf(`{"src":"c2","dest":"replica-2","body":{"type":"pbft_status","msg_id":4,"sequence_number":%d}}`, seq))
	if r.Type != "pbft_status_ok" || r.Phase != "committed" || !r.Executed || r.Commits < 3 {
		t.Fatalf("pbft_status of %d at replica-2: %+v", seq, r)
	}
	r = postMessage(t, top, `{"type":"pbft_cluster","msg_id":5}`)
	if r.Type != "pbft_cluster_ok" || r.Primary != "replica-0" || len(r.Replicas) != 4 {
		t.Fatalf("pbft_cluster: %+v", r)
	}
	for _, rep := range r.Replicas {
		if rep.LastExecuted < seq || rep.Fault != "none" {
			t.Errorf("pbft_cluster: %s at %d (%s), want >= %d", rep.Node, rep.LastExecuted, rep.Fault, seq)
		}
	}

	mustDo(t, http.MethodPut, gw+"/v1/kv/color", "blue", http.StatusNoContent)
	if got := mustDo(t, http.MethodGet, gw+"/v1/kv/color", "", http.StatusOK); got != "blue" {
		t.Fatalf("GET /v1/kv/color = %q", got)
	}
	mustDo(t, http.MethodPut, gw+"/v1/kv/color", "green", http.StatusNoContent)
	if got := mustDo(t, http.MethodGet, gw+"/v1/kv/color", "", http.StatusOK); got != "green" {
		t.Fatalf("GET /v1/kv/color after overwrite = %q", got)
	}
	if got := mustDo(t, http.MethodGet, gw+"/v1/kv/x", "", http.StatusOK); got != "1" {
		t.Fatalf("GET /v1/kv/x (set by pbft_request) = %q", got)
	}
}

// write is one PUT of the load.
type write struct {
	key, value string
	acked      bool
	at         time.Time
}

// (b) Concurrent clients write unique keys; a NATS server and the primary are killed;
// every acknowledged write must read back, and writes must keep succeeding.
func testFaultsUnderLoad(t *testing.T, ctx context.Context, top *topology.Topology) {
	const clients = 6
	gw := top.GatewayURL()
	var (
		mu     sync.Mutex
		writes []write
		acks   atomic.Int64
		fails  atomic.Int64
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				w := write{key: fmt.Sprintf("load-%d-%d", c, i), value: fmt.Sprintf("v%d.%d.%d", c, i, time.Now().UnixNano())}
				code, _, err := do(http.MethodPut, gw+"/v1/kv/"+w.key, w.value)
				w.acked, w.at = err == nil && code == http.StatusNoContent, time.Now()
				if w.acked {
					acks.Add(1)
				} else {
					fails.Add(1)
				}
				mu.Lock()
				writes = append(writes, w)
				mu.Unlock()
			}
		}()
	}
	stopLoad := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}
	defer stopLoad()

	poll.Eventually(t, 30*time.Second, "30 acknowledged writes before the faults", func() bool { return acks.Load() >= 30 })
	if err := top.KillNATS(1); err != nil {
		t.Fatal(err)
	}
	if err := top.KillReplica("replica-0"); err != nil { // the primary of view 0
		t.Fatal(err)
	}
	faultAt := time.Now()
	t.Logf("faults injected after %d acks, %d failures", acks.Load(), fails.Load())

	// The load goes on: every client gets writes through after the faults.
	ackedAfter := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		n := map[string]int{}
		for _, w := range writes {
			if w.acked && w.at.After(faultAt) {
				n[strings.Split(w.key, "-")[1]]++
			}
		}
		return n
	}
	poll.Eventually(t, 60*time.Second, "every client's writes succeed after the faults", func() bool {
		n := ackedAfter()
		if len(n) < clients {
			return false
		}
		for _, v := range n {
			if v < 5 {
				return false
			}
		}
		return true
	})
	t.Logf("recovered %v after the faults: acks after the faults per client %v", time.Since(faultAt).Round(time.Millisecond), ackedAfter())
	stopLoad()

	// No acknowledged write is lost: read every one back, in parallel.
	mu.Lock()
	var acked []write
	for _, w := range writes {
		if w.acked {
			acked = append(acked, w)
		}
	}
	total := len(writes)
	mu.Unlock()
	t.Logf("%d writes, %d acknowledged; reading them back", total, len(acked))
	readBack(t, ctx, gw, acked)

	// The killed processes come back and the restarted replica catches up.
	if err := top.StartNATS(1); err != nil {
		t.Fatal(err)
	}
	if err := top.StartReplica("replica-0"); err != nil {
		t.Fatal(err)
	}
	if err := top.WaitReplicaReady(ctx, "replica-0"); err != nil {
		t.Fatal(err)
	}
	mustDo(t, http.MethodPut, gw+"/v1/kv/after-restart", "yes", http.StatusNoContent)
	if got := mustDo(t, http.MethodGet, gw+"/v1/kv/after-restart", "", http.StatusOK); got != "yes" {
		t.Fatalf("GET after the restarts = %q", got)
	}
}

// readBack GETs every write with a few workers; a failed GET is retried, a wrong value
// fails the test.
func readBack(t *testing.T, ctx context.Context, gw string, ws []write) {
	t.Helper()
	jobs := make(chan write)
	errs := make(chan error, len(ws))
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range jobs {
				errs <- readOne(ctx, gw, w)
			}
		}()
	}
	for _, w := range ws {
		jobs <- w
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func readOne(ctx context.Context, gw string, w write) error {
	var last string
	for attempt := 0; attempt < 5; attempt++ {
		code, got, err := do(http.MethodGet, gw+"/v1/kv/"+w.key, "")
		switch {
		case err == nil && code == http.StatusOK && got == w.value:
			return nil
		case err == nil && code == http.StatusOK:
			return fmt.Errorf("acknowledged write %s=%q reads back %q", w.key, w.value, got)
		}
		last = fmt.Sprintf("%d %q %v", code, got, err)
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("GET %s failed: %s", w.key, last)
}

// (c) The gateway's and the replicas' metrics show the traffic.
func testMetrics(t *testing.T, top *topology.Topology) {
	gw := mustDo(t, http.MethodGet, top.GatewayURL()+"/metrics", "", http.StatusOK)
	if v := metric(t, gw, `pbft_http_requests_total{path="/v1/kv",code="204"}`); v < 30 {
		t.Errorf("gateway counted %v successful PUTs", v)
	}
	if v := metric(t, gw, `pbft_http_requests_total{path="/v1/messages",code="200"}`); v < 5 {
		t.Errorf("gateway counted %v answered messages", v)
	}
	var latency, batches float64
	for _, id := range []string{"replica-1", "replica-2", "replica-3"} {
		m := mustDo(t, http.MethodGet, top.ReplicaHTTP(id)+"/metrics", "", http.StatusOK)
		l := fmt.Sprintf("replica=%q", id)
		for _, kind := range []string{"prepare", "commit"} {
			if v := metric(t, m, "pbft_messages_in_total{"+l+`,kind="`+kind+`"}`); v <= 0 {
				t.Errorf("%s stepped %v %s messages", id, v, kind)
			}
			if v := metric(t, m, "pbft_messages_out_total{"+l+`,kind="`+kind+`"}`); v <= 0 {
				t.Errorf("%s sent %v %s messages", id, v, kind)
			}
		}
		// Requests executed, not sequence numbers: concurrent PUTs share batches.
		if v := metric(t, m, "pbft_batch_size_sum{"+l+"}"); v < 30 {
			t.Errorf("%s executed %v requests", id, v)
		}
		if v := metric(t, m, "pbft_replica_view{"+l+"}"); v < 1 {
			t.Errorf("%s is in view %v after the primary died", id, v)
		}
		if v := metric(t, m, "pbft_replica_view_changes_total{"+l+"}"); v < 1 {
			t.Errorf("%s counted %v view changes", id, v)
		}
		if v := metric(t, m, "pbft_replica_ready{"+l+"}"); v != 1 {
			t.Errorf("%s not ready: %v", id, v)
		}
		b := metric(t, m, "pbft_batch_size_count{"+l+"}")
		if b <= 0 || metric(t, m, "pbft_batch_size_sum{"+l+"}") < b {
			t.Errorf("%s batch sizes: %v batches", id, b)
		}
		batches += b
		latency += metric(t, m, "pbft_request_latency_seconds_count{"+l+"}")
	}
	// The new primary (and any replica a request was broadcast to) timed requests.
	if latency <= 0 || batches <= 0 {
		t.Errorf("latency observations %v, batches %v", latency, batches)
	}
}

// metric returns the value of the sample series in a Prometheus text body. Its labels
// may come in any order: Prometheus' client writes them sorted by name.
func metric(t *testing.T, body, series string) float64 {
	t.Helper()
	if name, labels, ok := strings.Cut(strings.TrimSuffix(series, "}"), "{"); ok {
		pairs := strings.Split(labels, ",") // no label value here holds a comma
		slices.Sort(pairs)
		series = name + "{" + strings.Join(pairs, ",") + "}"
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		t.Errorf("no sample %s in:\n%s", series, body)
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Errorf("sample %s: %v", series, err)
	}
	return v
}

// (d) replica-0's credentials cannot publish in replica-1's name: the server refuses the
// publication and nobody receives it, while replica-0's own subjects go through.
func testPermissions(t *testing.T, top *topology.Topology) {
	addr := top.NATSAddr(0)
	asyncErrs := make(chan error, 16)
	pub, err := nats.Connect("nats://"+addr, nats.UserInfo("replica-0", top.Password("replica-0")),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { asyncErrs <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub, err := nats.Connect("nats://"+addr, nats.UserInfo("replica-2", top.Password("replica-2")))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	s, err := sub.SubscribeSync("pbft.pbft.*.*") // what a replica subscribes to
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	// A wrong password is refused at connect.
	if c, err := nats.Connect("nats://"+addr, nats.UserInfo("replica-0", "wrong")); err == nil {
		c.Close()
		t.Fatal("connected with a wrong password")
	}
	// Subscribing to another replica's inbox is refused too.
	if _, err := pub.SubscribeSync("pbft.pbft.to.replica-1.*.*"); err != nil {
		t.Fatal(err)
	}

	if err := pub.Publish("pbft.pbft.prepare.replica-1", []byte("forged")); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish("pbft.pbft.probe.replica-0", []byte("own")); err != nil {
		t.Fatal(err)
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	var violations []string
	deadline := time.After(10 * time.Second)
	for len(violations) < 2 {
		select {
		case err := <-asyncErrs:
			if !errors.Is(err, nats.ErrPermissionViolation) {
				t.Fatalf("async error %v, want a permissions violation", err)
			}
			violations = append(violations, err.Error())
		case <-deadline:
			t.Fatalf("the server reported %d permission violations, want 2 (publish and subscribe): %q", len(violations), violations)
		}
	}
	joined := strings.Join(violations, "\n")
	if !strings.Contains(joined, `Publish to "pbft.pbft.prepare.replica-1"`) || !strings.Contains(joined, `Subscription to "pbft.pbft.to.replica-1.*.*"`) {
		t.Errorf("violations %q", violations)
	}
	// The subscriber sees replica-0's own message and never the forged one (published
	// before it on the same connection, so it would have arrived first).
	for {
		m, err := s.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("replica-0's own publication never arrived: %v", err)
		}
		if m.Subject == "pbft.pbft.prepare.replica-1" || bytes.Equal(m.Data, []byte("forged")) {
			t.Fatalf("the forged message was delivered on %s", m.Subject)
		}
		if m.Subject == "pbft.pbft.probe.replica-0" && string(m.Data) == "own" {
			break
		}
	}

	// Trace events: a replica may publish its own, and the gateway (which relays them to
	// the live page) may read every replica's.
	gw, err := nats.Connect("nats://"+addr, nats.UserInfo(topology.GatewayID, top.Password(topology.GatewayID)))
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	events, err := gw.SubscribeSync("pbft.pbft.trace.*.events")
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish("pbft.pbft.trace.replica-0.events", []byte("event")); err != nil {
		t.Fatal(err)
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	if m, err := events.NextMsg(10 * time.Second); err != nil || m.Subject != "pbft.pbft.trace.replica-0.events" {
		t.Fatalf("the gateway did not receive replica-0's trace event: %v", err)
	}
	select {
	case err := <-asyncErrs:
		t.Fatalf("trace events: %v", err)
	default:
	}
}
