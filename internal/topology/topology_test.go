package topology

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/internal/poll"
)

func TestMain(m *testing.M) { os.Exit(RunAndRemoveBuilds(m.Run)) }

func get(url string, timeout time.Duration) (int, string, error) {
	c := &http.Client{Timeout: timeout}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// mustBuild builds the binaries (once per test binary run).
func mustBuild(t *testing.T) Binaries {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bins, err := Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return bins
}

// One NATS server, four replicas behind proxies: every fault switch does what it says.
func TestTopologyFaultSwitches(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	top, err := Start(ctx, mustBuild(t), Options{Replicas: []string{"n1", "n2", "n3", "n4"}, ProxyNATS: true, DataDirs: true,
		Clients: []string{"probe"}, Env: []string{"PBFT_VIEW_CHANGE_TIMEOUT=300ms"}, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	dir := top.Dir()
	defer func() {
		if t.Failed() {
			for _, id := range top.Replicas() {
				t.Logf("log of %s:\n%s", id, top.ReplicaLog(id))
			}
		}
		if err := top.Close(); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("Close left %s: %v", dir, err)
		}
	}()
	if _, err := os.Stat(dir + "/data/n2"); err != nil {
		t.Errorf("data dir: %v", err)
	}
	if top.GatewayURL() != "" || top.ReplicaHTTP("nobody") != "" || top.NATSAddr(1) != "" {
		t.Errorf("unexpected endpoints: %q %q %q", top.GatewayURL(), top.ReplicaHTTP("nobody"), top.NATSAddr(1))
	}
	readyz := func(id string) (int, string) {
		code, body, _ := get(top.ReplicaHTTP(id)+"/readyz", 2*time.Second)
		return code, body
	}

	// Cut: the replica loses NATS and says so; Heal: it is back.
	if err := top.CutReplica("n4"); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 10*time.Second, "n4 unready after Cut", func() bool {
		code, body := readyz("n4")
		return code == 503 && strings.Contains(body, "not connected to NATS")
	})
	if err := top.HealReplica("n4"); err != nil {
		t.Fatal(err)
	}
	if err := top.WaitReplicaReady(ctx, "n4"); err != nil {
		t.Fatal(err)
	}

	// Kill and restart.
	first, err := top.ReplicaProcess("n3")
	if err != nil {
		t.Fatal(err)
	}
	if err := top.KillReplica("n3"); err != nil {
		t.Fatal(err)
	}
	if top.ReplicaRunning("n3") {
		t.Fatal("n3 running after KillReplica")
	}
	if err := top.KillReplica("n3"); err == nil {
		t.Fatal("killing a dead replica succeeded")
	}
	if err := top.StartReplica("n3", "PBFT_LOG_LEVEL=debug"); err != nil {
		t.Fatal(err)
	}
	if err := top.StartReplica("n3"); err == nil {
		t.Fatal("starting a running replica succeeded")
	}
	if err := top.WaitReplicaReady(ctx, "n3"); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(top.ReplicaLog("n3"), "=== topology: start n3"); n != 2 {
		t.Errorf("n3's log shows %d starts, want 2", n)
	}
	// Each run's own log: the restart's header and output are in neither.
	second, err := top.ReplicaProcess("n3")
	if err != nil {
		t.Fatal(err)
	}
	if first.Err() == nil || first.Log() == "" || strings.Contains(first.Log(), "=== topology") || strings.Contains(second.Log(), "=== topology") {
		t.Errorf("first run of n3 (pid %d, exit %v) logged:\n%s\nsecond run (pid %d):\n%s", first.Pid(), first.Err(), first.Log(), second.Pid(), second.Log())
	}

	// Stop freezes the process (its HTTP server does not answer); Cont resumes it.
	if err := top.StopReplica("n2"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := get(top.ReplicaHTTP("n2")+"/healthz", 500*time.Millisecond); err == nil {
		t.Error("a stopped replica answered /healthz")
	}
	if err := top.ContReplica("n2"); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 10*time.Second, "n2 answers after SIGCONT", func() bool {
		code, body, err := get(top.ReplicaHTTP("n2")+"/healthz", 2*time.Second)
		return err == nil && code == 200 && body == "ok\n"
	})

	// Kill and restart the NATS server: every replica reconnects.
	if err := top.KillNATS(0); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 10*time.Second, "n1 unready without NATS", func() bool { code, _ := readyz("n1"); return code == 503 })
	if err := top.StartNATS(0); err != nil {
		t.Fatal(err)
	}
	for _, id := range top.Replicas() {
		if err := top.WaitReplicaReady(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := top.CutReplica("nobody"); err == nil {
		t.Error("cutting an unknown replica succeeded")
	}

	// A gateway in stdio mode, as a client of its own, sees every replica.
	if _, err := top.StartStdioGateway(StdioGateway{ClientID: "stranger"}); err == nil {
		t.Error("a stdio gateway without a key pair started")
	}
	var out bytes.Buffer
	gw, err := top.StartStdioGateway(StdioGateway{ClientID: "probe", Stdout: &out, Stdin: strings.NewReader(
		`{"src":"c","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","n2","n3","n4"]}}` + "\n" +
			`{"src":"c","dest":"n1","body":{"type":"pbft_cluster","msg_id":2}}` + "\n")})
	if err != nil {
		t.Fatal(err)
	}
	if !gw.WaitExit(30*time.Second) || gw.Err() != nil {
		t.Fatalf("stdio gateway: exited %v, %v; log:\n%s", gw.Exited(), gw.Err(), gw.Log())
	}
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 2 ||
		!strings.Contains(lines[1], `"type": "pbft_cluster_ok"`) || strings.Count(lines[1], `"fault": "none"`) != 4 {
		t.Errorf("stdio gateway answered:\n%s", out.String())
	}

	// KillReplicas kills several at once.
	if err := top.KillReplicas("n1", "n2"); err != nil {
		t.Fatal(err)
	}
	if top.ReplicaRunning("n1") || top.ReplicaRunning("n2") {
		t.Error("n1 or n2 running after KillReplicas")
	}
}

func TestStartRejectsBadOptions(t *testing.T) {
	ctx := context.Background()
	for name, o := range map[string]Options{
		"two servers":    {NATSServers: 2, Replicas: []string{"a"}},
		"no replicas":    {},
		"auth, cluster":  {Replicas: []string{"replica-0"}, Cluster: "other", Auth: true},
		"auth, replicas": {Replicas: []string{"n1"}, Auth: true},
	} {
		if name == "auth, cluster" || name == "auth, replicas" {
			// These need keygen from a built replica before the check: build it.
			if top, err := Start(ctx, mustBuild(t), o); err == nil {
				top.Close()
				t.Errorf("%s: started", name)
			}
			continue
		}
		if top, err := Start(ctx, Binaries{}, o); err == nil {
			top.Close()
			t.Errorf("%s: started", name)
		}
	}
}
