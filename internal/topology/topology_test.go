package topology

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	_ = RemoveBuilds()
	os.Exit(code)
}

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

// waitFor polls cond every 20ms until it holds, failing after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, with a deadline
	}
}

// One NATS server, four replicas behind proxies: every fault switch does what it says.
func TestTopologyFaultSwitches(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bins, err := Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	top, err := Start(ctx, bins, Options{Replicas: []string{"n1", "n2", "n3", "n4"}, ProxyNATS: true, DataDirs: true,
		Env: []string{"PBFT_VIEW_CHANGE_TIMEOUT=300ms"}, Logf: t.Logf})
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
	waitFor(t, 10*time.Second, "n4 unready after Cut", func() bool {
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
	waitFor(t, 10*time.Second, "n2 answers after SIGCONT", func() bool {
		code, body, err := get(top.ReplicaHTTP("n2")+"/healthz", 2*time.Second)
		return err == nil && code == 200 && body == "ok\n"
	})

	// Kill and restart the NATS server: every replica reconnects.
	if err := top.KillNATS(0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "n1 unready without NATS", func() bool { code, _ := readyz("n1"); return code == 503 })
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
			bins, err := Build(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if top, err := Start(ctx, bins, o); err == nil {
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
