package integration

import (
	"github.com/pbft-nats/pbft/internal/poll"
	"github.com/pbft-nats/pbft/internal/topology"
	"github.com/pbft-nats/pbft/tests/golden"

	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestMain(m *testing.M) { os.Exit(topology.RunAndRemoveBuilds(m.Run)) }

// buildBinaries builds the commands under test, once per test run (internal/topology).
func buildBinaries(t *testing.T) topology.Binaries {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := topology.Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var uniq atomic.Int64

// uniqueName returns a NATS-token-safe name, unique in this run and across runs.
func uniqueName(prefix string, t *testing.T) string {
	var sb strings.Builder
	for _, r := range t.Name() {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			sb.WriteRune(r)
		} else {
			sb.WriteByte('-')
		}
	}
	name := sb.String()
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	return fmt.Sprintf("%s-%d-%d-%s", prefix, os.Getpid(), uniq.Add(1), name)
}

// cluster is N replica processes on a NATS server of their own (internal/topology),
// under a cluster name of their own, driven through gateways in stdio mode.
type cluster struct {
	t        *testing.T
	top      *topology.Topology
	name     string // PBFT_CLUSTER
	ids      []string
	gateways atomic.Int64

	mu     sync.Mutex
	dumped []*topology.Process // gateways whose log is printed if the test fails
}

// startCluster starts a topology of o.Replicas (its cluster name, directory, gateway
// keys and logger are set here) and waits until every replica answers a gateway.
func startCluster(t *testing.T, b topology.Binaries, o topology.Options) *cluster {
	t.Helper()
	c := &cluster{t: t, name: uniqueName("it", t), ids: o.Replicas}
	o.Dir, o.Cluster, o.Logf = t.TempDir(), c.name, t.Logf
	// Keys for the gateways this cluster will run: replicas accept requests only from
	// clients whose public keys they loaded at start.
	for n := 1; n <= maxGateways; n++ {
		o.Clients = append(o.Clients, c.gatewayID(n))
	}
	top, err := topology.Start(t.Context(), b, o)
	if err != nil {
		t.Fatal(err)
	}
	c.top = top
	t.Cleanup(func() {
		if t.Failed() {
			for _, id := range c.ids {
				t.Logf("log of replica %s (tail):\n%s", id, tailString(top.ReplicaLog(id), 32<<10))
			}
			c.mu.Lock()
			for _, p := range c.dumped {
				t.Logf("stderr of gateway pid %d (tail):\n%s", p.Pid(), tailString(p.Log(), 32<<10))
			}
			c.mu.Unlock()
		}
		if err := top.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	c.waitReady()
	return c
}

func tailString(s string, n int) string {
	if len(s) > n {
		return "...\n" + s[len(s)-n:]
	}
	return s
}

// startReplica starts replica id's process again and returns it.
func (c *cluster) startReplica(id string) *topology.Process {
	c.t.Helper()
	if err := c.top.StartReplica(id); err != nil {
		c.t.Fatal(err)
	}
	return c.process(id)
}

// process is replica id's latest process.
func (c *cluster) process(id string) *topology.Process {
	c.t.Helper()
	p, err := c.top.ReplicaProcess(id)
	if err != nil {
		c.t.Fatal(err)
	}
	return p
}

// kill sends SIGKILL to the replicas (by PID) at once and waits until they are dead.
func (c *cluster) kill(ids ...string) {
	c.t.Helper()
	if err := c.top.KillReplicas(ids...); err != nil {
		c.t.Fatal(err)
	}
}

// maxGateways is how many gateway runs one cluster has keys for.
const maxGateways = 32

func (c *cluster) gatewayID(n int) string { return fmt.Sprintf("gw-%s-%d", c.name, n) }

// nextGatewayID is the client id of a new gateway: one of its own, so that no two
// gateways ever share one on the bus.
func (c *cluster) nextGatewayID() string {
	n := c.gateways.Add(1)
	if n > maxGateways {
		c.t.Fatalf("more than %d gateway runs on one cluster: raise maxGateways", maxGateways)
	}
	return c.gatewayID(int(n))
}

// startGateway starts a gateway in stdio mode.
func (c *cluster) startGateway(dump bool, stdin io.Reader, stdout io.Writer, extraEnv []string) *topology.Process {
	c.t.Helper()
	p, err := c.top.StartStdioGateway(topology.StdioGateway{ClientID: c.nextGatewayID(), Stdin: stdin, Stdout: stdout, Env: extraEnv})
	if err != nil {
		c.t.Fatal(err)
	}
	if dump {
		c.mu.Lock()
		c.dumped = append(c.dumped, p)
		c.mu.Unlock()
	}
	return p
}

// gatewayRun is one finished stdio run of the gateway.
type gatewayRun struct {
	stdout  []byte
	exitErr error
	elapsed time.Duration
	stderr  string
}

// runGateway runs the gateway in stdio mode with input on stdin (closed at its end) and
// waits up to timeout for it to exit; it fails the test if it does not.
func (c *cluster) runGateway(input []byte, timeout time.Duration, extraEnv ...string) gatewayRun {
	c.t.Helper()
	return c.runGatewayDump(true, input, timeout, extraEnv...)
}

// runGatewayDump is runGateway; dump says whether the stderr is printed if the test fails.
func (c *cluster) runGatewayDump(dump bool, input []byte, timeout time.Duration, extraEnv ...string) gatewayRun {
	c.t.Helper()
	var stdout bytes.Buffer
	start := time.Now()
	p := c.startGateway(dump, bytes.NewReader(input), &stdout, extraEnv)
	if !p.WaitExit(timeout) {
		_ = p.Kill()
		c.t.Fatalf("gateway pid %d did not exit within %v of the end of its input; stdout so far:\n%s", p.Pid(), timeout, stdout.String())
	}
	return gatewayRun{stdout: stdout.Bytes(), exitErr: p.Err(), elapsed: time.Since(start), stderr: p.Log()}
}

// waitReady polls until every replica answers a pbft_cluster query through a gateway.
// The probe orders no request, so a fresh cluster still starts at sequence number 1.
func (c *cluster) waitReady() {
	c.t.Helper()
	ids, _ := json.Marshal(c.ids)
	probe := []byte(fmt.Sprintf(
		`{"src":"probe","dest":%q,"body":{"type":"init","msg_id":1,"node_id":%q,"node_ids":%s}}`+"\n"+
			`{"src":"probe","dest":%q,"body":{"type":"pbft_cluster","msg_id":2}}`+"\n",
		c.ids[0], c.ids[0], ids, c.ids[0]))
	last := "no probe ran"
	err := poll.Within(10*time.Second, 50*time.Millisecond, func() (bool, error) {
		for _, id := range c.ids {
			if p := c.process(id); p.Exited() {
				return false, fmt.Errorf("replica %s exited: %v\n%s", id, p.Err(), p.Log())
			}
		}
		// A short request timeout: a replica not up yet costs the probe little.
		run := c.runGatewayDump(false, probe, 10*time.Second, "PBFT_REQUEST_TIMEOUT=1s")
		last = fmt.Sprintf("exit %v, stdout:\n%s\nstderr:\n%s", run.exitErr, run.stdout, run.stderr)
		lines := golden.SplitLines(string(run.stdout))
		if len(lines) != 2 {
			return false, nil
		}
		r, err := parseReply(lines[1])
		if err != nil || r.Body.Type != "pbft_cluster_ok" || len(r.Body.Replicas) != len(c.ids) {
			return false, nil
		}
		for _, rep := range r.Body.Replicas {
			if rep.Fault != "none" {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		c.t.Fatalf("cluster %s not ready: %v; last probe: %s", c.name, err, last)
	}
}

// reply is a gateway output line.
type reply struct {
	Src  string    `json:"src"`
	Dest string    `json:"dest"`
	Body replyBody `json:"body"`
}

type replyBody struct {
	Type           string         `json:"type"`
	InReplyTo      *int64         `json:"in_reply_to"`
	MsgID          *int64         `json:"msg_id"`
	Code           *int           `json:"code"`
	Text           string         `json:"text"`
	SequenceNumber uint64         `json:"sequence_number"`
	View           uint64         `json:"view"`
	Result         *string        `json:"result"`
	Replies        int            `json:"replies"`
	Primary        string         `json:"primary"`
	Replicas       []replicaState `json:"replicas"`
}

type replicaState struct {
	Node             string `json:"node"`
	View             uint64 `json:"view"`
	LastExecuted     uint64 `json:"last_executed"`
	StableCheckpoint uint64 `json:"stable_checkpoint"`
	Fault            string `json:"fault"`
}

func parseReply(line string) (*reply, error) {
	var r reply
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		return nil, fmt.Errorf("bad reply line %q: %w", line, err)
	}
	return &r, nil
}

// session is a gateway in stdio mode driven line by line.
type session struct {
	t     *testing.T
	p     *topology.Process
	stdin io.WriteCloser
	lines chan string // stdout lines; closed at EOF
}

// startSession starts a gateway whose stdin the test writes and whose stdout a goroutine
// reads concurrently.
func (c *cluster) startSession(extraEnv ...string) *session {
	c.t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		c.t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		c.t.Fatal(err)
	}
	// The child gets its own descriptors: Wait does not wait for our reads.
	p := c.startGateway(true, inR, outW, extraEnv)
	_, _ = inR.Close(), outW.Close()
	s := &session{t: c.t, p: p, stdin: inW, lines: make(chan string, 1024)}
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer close(s.lines)
		sc := bufio.NewScanner(outR)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			select {
			case s.lines <- sc.Text():
			case <-stop:
				return
			}
		}
	}()
	c.t.Cleanup(func() { // runs before the topology's Close (LIFO)
		_ = inW.Close()
		_ = p.Kill()
		close(stop)
		<-readerDone
		_ = outR.Close()
	})
	return s
}

// send writes one input line.
func (s *session) send(line string) {
	s.t.Helper()
	if _, err := io.WriteString(s.stdin, line+"\n"); err != nil {
		s.t.Fatalf("write to gateway: %v (gateway exited: %v)", err, s.p.Exited())
	}
}

// next reads the next output line, waiting at most timeout.
func (s *session) next(timeout time.Duration) *reply {
	s.t.Helper()
	select {
	case line, ok := <-s.lines:
		if !ok {
			s.t.Fatalf("gateway stdout closed (exited: %v, %v)", s.p.Exited(), s.p.Err())
		}
		r, err := parseReply(line)
		if err != nil {
			s.t.Fatal(err)
		}
		return r
	case <-time.After(timeout):
		s.t.Fatalf("no reply from the gateway within %v", timeout)
	}
	return nil
}

// roundTrip sends a line with msg_id id and reads its reply, which must answer it.
func (s *session) roundTrip(line string, id int64, timeout time.Duration) *reply {
	s.t.Helper()
	s.send(line)
	r := s.next(timeout)
	if r.Body.InReplyTo == nil || *r.Body.InReplyTo != id {
		s.t.Fatalf("reply %+v does not answer msg_id %d", r, id)
	}
	return r
}

// close closes stdin and requires the gateway to exit 0 within timeout.
func (s *session) close(timeout time.Duration) {
	s.t.Helper()
	_ = s.stdin.Close()
	if !s.p.WaitExit(timeout) {
		s.t.Fatalf("gateway did not exit within %v of stdin closing", timeout)
	}
	if err := s.p.Err(); err != nil {
		s.t.Errorf("gateway exit: %v", err)
	}
	for line := range s.lines {
		s.t.Errorf("unexpected extra output: %s", line)
	}
}

// moduleRoot is the directory of this module's go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := topology.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}
