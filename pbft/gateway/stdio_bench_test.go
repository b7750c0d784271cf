package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/pbft/gateway/embedded"
)

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

// checkFourClientOutput checks the answer to fourClientInput(n): init_ok, then one
// pbft_request_ok per line, in input order (in_reply_to and dest follow the input,
// msg_id counts from 0) with sequence numbers that never go down: requests reach the
// primary in input order.
func checkFourClientOutput(tb testing.TB, out []byte, n int) {
	tb.Helper()
	sc := bufio.NewScanner(bytes.NewReader(out))
	var i int
	var lastSeq uint64
	for ; sc.Scan(); i++ {
		var r struct {
			Dest string `json:"dest"`
			Body struct {
				Type      string `json:"type"`
				InReplyTo int64  `json:"in_reply_to"`
				MsgID     int64  `json:"msg_id"`
				Seq       uint64 `json:"sequence_number"`
			} `json:"body"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			tb.Fatalf("line %d: %v: %s", i+1, err, sc.Bytes())
		}
		if r.Body.MsgID != int64(i) {
			tb.Fatalf("line %d: msg_id %d: %s", i+1, r.Body.MsgID, sc.Bytes())
		}
		if i == 0 {
			if r.Body.Type != "init_ok" {
				tb.Fatalf("line 1: %s", sc.Bytes())
			}
			continue
		}
		k := i - 1
		wantDest, wantReply := fmt.Sprintf("c%d", k%4+1), int64(k/4+2)
		if r.Body.Type != "pbft_request_ok" || r.Dest != wantDest || r.Body.InReplyTo != wantReply || r.Body.Seq < max(lastSeq, 1) {
			tb.Fatalf("line %d: want pbft_request_ok to %s for %d, sequence_number >= %d: %s", i+1, wantDest, wantReply, lastSeq, sc.Bytes())
		}
		lastSeq = r.Body.Seq
	}
	if i != n+1 {
		tb.Fatalf("%d lines, want %d", i, n+1)
	}
}

// BenchmarkStdioFourClients runs the stdio engine in-process on init and 20,000
// pbft_request lines from four clients (a fresh embedded cluster each time), one line at
// a time and pipelined, and reports input lines per second, from the first line read to
// the last answer written.
func BenchmarkStdioFourClients(b *testing.B) {
	for _, window := range []int{1, 256} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) { benchStdio(b, 20000, window) })
	}
}

func benchStdio(b *testing.B, n, window int) {
	input := fourClientInput(n)
	var total time.Duration
	for range b.N {
		s := testSettings().ForStdio()
		s.StdioWindow = window
		logger := slog.New(slog.DiscardHandler)
		svc := NewService(s, logger, func(ids []string) (Backend, error) { return embedded.Start(ids, s, logger) })
		var out bytes.Buffer
		start := time.Now()
		if err := NewStdio(svc, logger).Run(context.Background(), bytes.NewReader(input), &out); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		svc.Close()
		b.StopTimer()
		checkFourClientOutput(b, out.Bytes(), n)
		b.StartTimer()
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "lines/s")
}
