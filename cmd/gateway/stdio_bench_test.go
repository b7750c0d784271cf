package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The gateway binary, built once per test binary run (go build caches the compile, so
// this mostly costs a link).
var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// gatewayBinary builds this command (with -race when the test binary has it).
func gatewayBinary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "gateway-bench-")
		if buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "gateway")
		args := []string{"build", "-o", buildBin}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, ".")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return buildBin
}

// longInput is init, n pbft_request lines from client c1 (msg_id 2..n+1, "set kI=I"),
// then a pbft_status line for each of statusSeqs.
func longInput(n int, statusSeqs ...int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","n2","n3","n4"]}}` + "\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, `{"src":"c1","dest":"n1","body":{"type":"pbft_request","msg_id":%d,"operation":"set k%d=%d","client":"c1"}}`+"\n", i+1, i, i)
	}
	for j, seq := range statusSeqs {
		fmt.Fprintf(&b, `{"src":"c1","dest":"n1","body":{"type":"pbft_status","msg_id":%d,"sequence_number":%d}}`+"\n", n+2+j, seq)
	}
	return b.Bytes()
}

// runGateway runs the binary on input and returns its stdout lines; it fails unless the
// process exits 0 within limit.
func runGateway(tb testing.TB, bin string, input []byte, limit time.Duration) []string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Stdin = bytes.NewReader(input)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// The embedded cluster, whatever PBFT_ variables the caller's environment has.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PBFT_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if err := cmd.Run(); err != nil {
		tb.Fatalf("gateway: %v (ctx: %v)\nstderr (tail):\n%s", err, ctx.Err(), tail(stderr.String(), 4000))
	}
	var lines []string
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

type replyLine struct {
	Src  string `json:"src"`
	Dest string `json:"dest"`
	Body struct {
		Type      string `json:"type"`
		InReplyTo int64  `json:"in_reply_to"`
		MsgID     int64  `json:"msg_id"`
		Seq       uint64 `json:"sequence_number"`
		View      uint64 `json:"view"`
		Phase     string `json:"phase"`
		Prepares  int    `json:"prepares_received"`
		Commits   int    `json:"commits_received"`
		Executed  bool   `json:"executed"`
		Code      int    `json:"code"`
		Text      string `json:"text"`
	} `json:"body"`
}

// checkLongOutput checks the answer to longInput(n, statuses...): init_ok, n
// pbft_request_ok with sequence numbers 1..n, then the status lines (checked by the caller).
func checkLongOutput(tb testing.TB, lines []string, n, statuses int) []replyLine {
	tb.Helper()
	if want := 1 + n + statuses; len(lines) != want {
		tb.Fatalf("got %d lines, want %d; last: %q", len(lines), want, lines[len(lines)-min(len(lines), 3):])
	}
	out := make([]replyLine, len(lines))
	for i, raw := range lines {
		r := &out[i]
		if err := json.Unmarshal([]byte(raw), r); err != nil {
			tb.Fatalf("line %d: %v: %q", i+1, err, raw)
		}
		if r.Body.MsgID != int64(i) || r.Body.InReplyTo != int64(i+1) {
			tb.Fatalf("line %d: msg_id %d, in_reply_to %d, want %d, %d: %s", i+1, r.Body.MsgID, r.Body.InReplyTo, i, i+1, raw)
		}
		switch {
		case i == 0:
			if r.Body.Type != "init_ok" {
				tb.Fatalf("line 1: %s", raw)
			}
		case i <= n:
			if r.Body.Type != "pbft_request_ok" || r.Body.Seq != uint64(i) || r.Body.Phase != "pre-prepare" {
				tb.Fatalf("line %d: want pbft_request_ok for sequence_number %d: %s", i+1, i, raw)
			}
		default:
			if r.Body.Type != "pbft_status_ok" {
				tb.Fatalf("line %d: want pbft_status_ok: %s", i+1, raw)
			}
		}
	}
	return out[1+n:]
}

// checkStatus checks a status answer of a healthy 4-replica cluster for an executed request.
func checkStatus(tb testing.TB, seq int, r replyLine) {
	tb.Helper()
	b := r.Body
	if b.Phase != "committed" || !b.Executed || b.Prepares != 3 || b.Commits != 4 {
		tb.Errorf("status of %d: phase %q, prepares_received %d, commits_received %d, executed %v; want committed, 3, 4, true",
			seq, b.Phase, b.Prepares, b.Commits, b.Executed)
	}
}

// TestStdioLongInput runs the binary on 1,000 requests (past several stable
// checkpoints, so the log is truncated and early sequence numbers are answered from the
// history) and checks every answer.
func TestStdioLongInput(t *testing.T) {
	const n = 1000
	bin := gatewayBinary(t)
	start := time.Now()
	st := checkLongOutput(t, runGateway(t, bin, longInput(n, n, 1), 60*time.Second), n, 2)
	t.Logf("%d requests in %v", n, time.Since(start))
	checkStatus(t, n, st[0])
	checkStatus(t, 1, st[1])
}

// BenchmarkStdio10k runs the binary on init, 10,000 pbft_request lines and a final
// pbft_status, and reports the wall time of one run.
func BenchmarkStdio10k(b *testing.B) {
	const n = 10000
	bin := gatewayBinary(b)
	input := longInput(n, n)
	b.ResetTimer()
	var total time.Duration
	for range b.N {
		start := time.Now()
		lines := runGateway(b, bin, input, 5*time.Minute)
		total += time.Since(start)
		b.StopTimer()
		st := checkLongOutput(b, lines, n, 1)
		if s := st[0].Body; s.Phase != "committed" || !s.Executed {
			b.Fatalf("status of %d: %s", n, lines[len(lines)-1])
		}
		b.StartTimer()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "wall-s")
}
