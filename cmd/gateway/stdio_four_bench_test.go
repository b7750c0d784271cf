package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// baselineBin is another gateway binary (say, built from main) that BenchmarkStdioFourClients
// also runs, in the same run, for a ratio: go test -bench StdioFourClients ./cmd/gateway -args -stdio.baseline=/tmp/gw-main
var baselineBin = flag.String("stdio.baseline", "", "a gateway binary to measure beside this one")

// fourClientInput is init, then n pbft_request lines from clients c1..c4 in turn (each
// client's msg_ids 2, 3, ...), all to the primary n1.
func fourClientInput(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","n2","n3","n4"]}}` + "\n")
	for i := range n {
		c := i%4 + 1
		fmt.Fprintf(&b, `{"src":"c%d","dest":"n1","body":{"type":"pbft_request","msg_id":%d,"operation":"set k%d=%d","client":"c%d"}}`+"\n", c, i/4+2, i, i, c)
	}
	return b.Bytes()
}

// BenchmarkStdioFourClients runs the gateway process on init and 20,000 pbft_request
// lines from four clients, and reports input lines per second from start to exit and per
// CPU-second of the process (user and system time, which a loaded machine changes far
// less than the wall time): one line at a time (PBFT_STDIO_WINDOW=1) and pipelined
// (256), for this command and for the -stdio.baseline binary if given. Every answer is
// checked: one per line, in input order, sequence numbers that never go down. With
// -count N the four runs alternate N times.
func BenchmarkStdioFourClients(b *testing.B) {
	const n = 20000
	input := fourClientInput(n)
	bin := *branchBin
	if bin == "" {
		bin = gatewayBinary(b)
	}
	type run struct{ name, bin, window string }
	var runs []run
	for _, w := range []string{"1", "256"} {
		if *baselineBin != "" {
			runs = append(runs, run{"baseline_window=" + w, *baselineBin, w})
		}
		runs = append(runs, run{"window=" + w, bin, w})
	}
	for _, r := range runs {
		b.Run(r.name, func(b *testing.B) {
			var total, cpu time.Duration
			for range b.N {
				start := time.Now()
				out, used := runGatewayEnv(b, r.bin, input, r.window)
				total += time.Since(start)
				cpu += used
				b.StopTimer()
				checkFourClients(b, out, n)
				b.StartTimer()
			}
			b.ReportMetric(float64(n*b.N)/total.Seconds(), "lines/s")
			b.ReportMetric(float64(n*b.N)/cpu.Seconds(), "lines/cpu-s")
		})
	}
}

// branchBin measures a prebuilt binary instead of building this command.
var branchBin = flag.String("stdio.bin", "", "the gateway binary to measure (default: build this command)")

// runGatewayEnv runs bin on input with the embedded cluster (no PBFT_ variable of the
// caller's environment) and PBFT_STDIO_WINDOW=window if set, and returns its stdout and
// the CPU time it used.
func runGatewayEnv(tb testing.TB, bin string, input []byte, window string) ([]byte, time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Stdin = bytes.NewReader(input)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PBFT_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if window != "" {
		cmd.Env = append(cmd.Env, "PBFT_STDIO_WINDOW="+window)
	}
	if err := cmd.Run(); err != nil {
		tb.Fatalf("gateway: %v\nstderr (tail):\n%s", err, tail(stderr.String(), 4000))
	}
	return stdout.Bytes(), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

func checkFourClients(tb testing.TB, out []byte, n int) {
	tb.Helper()
	lines := bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n"))
	if len(lines) != n+1 {
		tb.Fatalf("%d lines, want %d", len(lines), n+1)
	}
	var lastSeq uint64
	for i, raw := range lines[1:] {
		var r replyLine
		if err := json.Unmarshal(raw, &r); err != nil {
			tb.Fatalf("line %d: %v: %s", i+2, err, raw)
		}
		dest, inReplyTo := fmt.Sprintf("c%d", i%4+1), int64(i/4+2)
		if r.Body.Type != "pbft_request_ok" || r.Dest != dest || r.Body.InReplyTo != inReplyTo || r.Body.MsgID != int64(i+1) || r.Body.Seq < max(lastSeq, 1) {
			tb.Fatalf("line %d: want pbft_request_ok to %s for %d, msg_id %d, sequence_number >= %d: %s", i+2, dest, inReplyTo, i+1, lastSeq, raw)
		}
		lastSeq = r.Body.Seq
	}
}
