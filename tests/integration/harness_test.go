package integration

import (
	"github.com/pbft-nats/pbft/internal/topology"
	"github.com/pbft-nats/pbft/tests/golden"

	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// binaries are the commands under test, built once per test run (internal/topology).
type binaries struct {
	replica, gateway, natsServer string
}

func TestMain(m *testing.M) {
	code := m.Run()
	_ = topology.RemoveBuilds()
	os.Exit(code)
}

func buildBinaries(t *testing.T) binaries {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := topology.Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return binaries{replica: b.Replica, gateway: b.Gateway, natsServer: b.NATSServer}
}

// baseEnv is this process's environment without PBFT_ variables, so a developer's
// settings never leak into the processes under test.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PBFT_") {
			env = append(env, kv)
		}
	}
	return env
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

// proc is one process started by a test; t.Cleanup kills it by PID.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error // set before done is closed
}

// startProc starts bin with args and env (on top of baseEnv), stderr to a file in dir.
// setup may set stdin and stdout. On failure, the stderr file is printed if dump is set.
func startProc(t *testing.T, dir, name, bin string, args, env []string, dump bool, setup func(*exec.Cmd)) *proc {
	t.Helper()
	logPath := filepath.Join(dir, name+".stderr")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Env = append(baseEnv(), env...)
	cmd.Stderr = logFile
	cmd.WaitDelay = 5 * time.Second
	if setup != nil {
		setup(cmd)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s (pid %d) did not end after kill", name, cmd.Process.Pid)
		}
		if dump && t.Failed() {
			t.Logf("stderr of %s:\n%s", name, p.stderr())
		}
	})
	return p
}

// kill sends SIGKILL to the process (by its PID) unless it has already ended.
func (p *proc) kill() {
	if !p.exited() {
		_ = p.cmd.Process.Kill()
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stderr returns the tail of what the process wrote on stderr.
func (p *proc) stderr() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	const keep = 32 << 10
	if len(b) > keep {
		b = append([]byte("...\n"), b[len(b)-keep:]...)
	}
	return string(b)
}

// waitExit waits up to d for the process to end.
func (p *proc) waitExit(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// poll calls cond every interval until it reports done, returns an error, or the deadline
// passes.
func poll(timeout, interval time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %v", timeout)
		}
		time.Sleep(interval)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startNATS starts a nats-server on a free 127.0.0.1 port and returns its URL once it
// accepts connections and greets with INFO.
func startNATS(t *testing.T, b binaries) string {
	t.Helper()
	dir := t.TempDir()
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ { // a free port can be taken before the server binds it
		port := freePort(t)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		p := startProc(t, dir, fmt.Sprintf("nats-server-%d", attempt), b.natsServer,
			[]string{"-a", "127.0.0.1", "-p", strconv.Itoa(port)}, nil, true, nil)
		lastErr = poll(10*time.Second, 20*time.Millisecond, func() (bool, error) {
			if p.exited() {
				return false, fmt.Errorf("nats-server exited: %v\n%s", p.waitErr, p.stderr())
			}
			return natsGreets(addr), nil
		})
		if lastErr == nil && !p.exited() {
			return "nats://" + addr
		}
		if !p.exited() {
			break // up but not answering: retrying would not help
		}
		t.Logf("nats-server attempt %d on port %d failed: %v", attempt, port, lastErr)
	}
	t.Fatalf("nats-server did not start: %v", lastErr)
	return ""
}

// natsGreets reports whether a NATS server answers on addr (it sends INFO on connect).
func natsGreets(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "INFO ")
}

// cluster is N replica processes on one NATS server, under a cluster name of their own.
type cluster struct {
	t        *testing.T
	b        binaries
	dir      string
	natsURL  string
	name     string // PBFT_CLUSTER
	ids      []string
	env      []string // extra PBFT_ settings for replicas and gateways
	replicas map[string]*proc
	starts   int // replica processes started
	gateways atomic.Int64
}

// startCluster starts one replica process per id and waits until all of them answer.
func startCluster(t *testing.T, b binaries, natsURL string, ids []string, env ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, b: b, dir: t.TempDir(), natsURL: natsURL, name: uniqueName("it", t), ids: ids,
		env: env, replicas: map[string]*proc{}}
	// Keys for every replica and for the gateways this cluster will run: replicas accept
	// requests only from clients whose public keys they loaded at start.
	keysDir := filepath.Join(c.dir, "keys")
	principals := append([]string(nil), ids...)
	for n := 1; n <= maxGateways; n++ {
		principals = append(principals, c.gatewayID(n))
	}
	if out, err := exec.Command(b.replica, append([]string{"keygen", "-dir", keysDir}, principals...)...).CombinedOutput(); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	c.env = append([]string{"PBFT_KEYS_DIR=" + keysDir}, c.env...)
	for _, id := range ids {
		c.startReplica(id)
	}
	c.waitReady()
	return c
}

// startReplica starts (or starts again) replica id's process. "{id}" in a setting of the
// cluster's environment stands for the replica's id (PBFT_DATA_DIR=.../{id}).
func (c *cluster) startReplica(id string) *proc {
	c.t.Helper()
	renv := []string{
		"PBFT_NODE_ID=" + id,
		"PBFT_NODE_IDS=" + strings.Join(c.ids, ","),
		"PBFT_NATS_URL=" + c.natsURL,
		"PBFT_CLUSTER=" + c.name,
	}
	for _, kv := range c.env {
		renv = append(renv, strings.ReplaceAll(kv, "{id}", id))
	}
	c.starts++
	p := startProc(c.t, c.dir, fmt.Sprintf("replica-%s-%d", id, c.starts), c.b.replica, nil, renv, true, nil)
	c.replicas[id] = p
	return p
}

// maxGateways is how many gateway runs one cluster has keys for.
const maxGateways = 32

func (c *cluster) gatewayID(n int) string { return fmt.Sprintf("gw-%s-%d", c.name, n) }

// gatewayEnv is the environment of a new gateway process: a client id of its own, so
// that no two gateways ever share one on the bus.
func (c *cluster) gatewayEnv(extra []string) (name string, env []string) {
	n := c.gateways.Add(1)
	if n > maxGateways {
		c.t.Fatalf("more than %d gateway runs on one cluster: raise maxGateways", maxGateways)
	}
	name = fmt.Sprintf("gateway-%d", n)
	env = append([]string{
		"PBFT_NATS_URL=" + c.natsURL,
		"PBFT_CLUSTER=" + c.name,
		"PBFT_CLIENT_ID=" + c.gatewayID(int(n)),
	}, c.env...)
	return name, append(env, extra...)
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
	name, env := c.gatewayEnv(extraEnv)
	var stdout bytes.Buffer
	start := time.Now()
	p := startProc(c.t, c.dir, name, c.b.gateway, nil, env, dump, func(cmd *exec.Cmd) {
		cmd.Stdin = bytes.NewReader(input)
		cmd.Stdout = &stdout
	})
	if !p.waitExit(timeout) {
		p.kill()
		<-p.done
		c.t.Fatalf("%s did not exit within %v of the end of its input; stdout so far:\n%s", name, timeout, stdout.String())
	}
	return gatewayRun{stdout: stdout.Bytes(), exitErr: p.waitErr, elapsed: time.Since(start), stderr: p.stderr()}
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
	err := poll(10*time.Second, 50*time.Millisecond, func() (bool, error) {
		for id, p := range c.replicas {
			if p.exited() {
				return false, fmt.Errorf("replica %s exited: %v\n%s", id, p.waitErr, p.stderr())
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
	p     *proc
	stdin io.WriteCloser
	lines chan string // stdout lines; closed at EOF
}

// startSession starts a gateway whose stdin the test writes and whose stdout a goroutine
// reads concurrently.
func (c *cluster) startSession(extraEnv ...string) *session {
	c.t.Helper()
	name, env := c.gatewayEnv(extraEnv)
	r, w, err := os.Pipe()
	if err != nil {
		c.t.Fatal(err)
	}
	var stdin io.WriteCloser
	p := startProc(c.t, c.dir, name, c.b.gateway, nil, env, true, func(cmd *exec.Cmd) {
		cmd.Stdout = w // the child's own descriptor: Wait does not wait for our reads
		stdin, err = cmd.StdinPipe()
		if err != nil {
			c.t.Fatal(err)
		}
	})
	_ = w.Close()
	s := &session{t: c.t, p: p, stdin: stdin, lines: make(chan string, 1024)}
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer close(s.lines)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			select {
			case s.lines <- sc.Text():
			case <-stop:
				return
			}
		}
	}()
	c.t.Cleanup(func() { // runs before the process's own cleanup (LIFO)
		_ = stdin.Close()
		p.kill()
		close(stop)
		<-readerDone
		_ = r.Close()
	})
	return s
}

// send writes one input line.
func (s *session) send(line string) {
	s.t.Helper()
	if _, err := io.WriteString(s.stdin, line+"\n"); err != nil {
		s.t.Fatalf("write to gateway: %v (gateway exited: %v)", err, s.p.exited())
	}
}

// next reads the next output line, waiting at most timeout.
func (s *session) next(timeout time.Duration) *reply {
	s.t.Helper()
	select {
	case line, ok := <-s.lines:
		if !ok {
			s.t.Fatalf("gateway stdout closed (exited: %v, %v)", s.p.exited(), s.p.waitErr)
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
	if !s.p.waitExit(timeout) {
		s.t.Fatalf("gateway did not exit within %v of stdin closing", timeout)
	}
	if s.p.waitErr != nil {
		s.t.Errorf("gateway exit: %v", s.p.waitErr)
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
