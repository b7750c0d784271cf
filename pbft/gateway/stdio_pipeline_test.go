package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/config"
	"github.com/pbft-nats/pbft/pbft/gateway/embedded"
)

// pipelineRun is what runStdioWindow saw.
type pipelineRun struct {
	out     string
	peak    int               // most requests in flight at once
	largest int               // most requests sent in one run
	primary map[string]uint64 // what the primary (n1) stepped, by kind (node.Stats.In)
}

// runStdioWindow runs input through a stdio engine with PBFT_STDIO_WINDOW = window over
// a fresh embedded cluster.
func runStdioWindow(t *testing.T, input io.Reader, window int) pipelineRun {
	t.Helper()
	s := testSettings().ForStdio()
	s.StdioWindow = window
	return runStdioPipelined(t, input, s)
}

// runStdioPipelined runs input through a stdio engine with settings s over a fresh
// embedded cluster, with no view change.
func runStdioPipelined(t *testing.T, input io.Reader, s config.Settings) pipelineRun {
	t.Helper()
	// No view change on a loaded machine: after one, requests the old primary had not
	// prepared are ordered again, and numbers along the input may go down.
	s.ViewChangeTimeout = 4 * time.Second
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	svc := NewService(s, logger, func(ids []string) (Backend, error) { return embedded.Start(ids, s, logger) })
	defer svc.Close()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st := NewStdio(svc, logger)
	if err := st.Run(ctx, input, &out); err != nil {
		t.Fatalf("Run: %v", err)
	}
	r := pipelineRun{out: out.String(), peak: st.pipe.peak, largest: st.pipe.largest}
	if e, ok := svc.Backend().(*embedded.Cluster); ok {
		r.primary = e.Node("n1").Stats().In
	}
	return r
}

type pipelineReply struct {
	Src, Dest string
	Body      struct {
		Type      string
		InReplyTo int64  `json:"in_reply_to"`
		MsgID     int64  `json:"msg_id"`
		Seq       uint64 `json:"sequence_number"`
		View      uint64
		Phase     string
		Prepares  int `json:"prepares_received"`
		Commits   int `json:"commits_received"`
		Executed  bool
		Code      int
		Replicas  []struct {
			Node         string
			LastExecuted uint64 `json:"last_executed"`
		}
	}
}

// TestStdioPipelineKeepsInputOrder sends bursts of requests from four interleaved
// clients with many in flight, with retransmissions, a conflicting reuse of a msg_id,
// a bad line and a pbft_status in the middle, and checks every answer: one per good line,
// in input order, numbered from 0; sequence numbers that never go down (requests reach
// the primary in input order); a retransmission answered with its original's number;
// error 22 for the conflict; and the status, which waits for the burst before it, seeing
// the first request committed, and a pbft_cluster after it, every replica at the number
// of the latest request before it.
func TestStdioPipelineKeepsInputOrder(t *testing.T) {
	const burst = 300
	var in bytes.Buffer
	type want struct {
		dest      string
		inReplyTo int64
		typ       string
		sameAs    int // index of the answer whose sequence number this one repeats, or -1
	}
	var wants []want
	add := func(line string, w want) {
		in.WriteString(line + "\n")
		wants = append(wants, w)
	}
	add(`{"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","n2","n3","n4"]}}`,
		want{"c0", 1, "init_ok", -1})
	request := func(i int) (string, want) {
		c := i%4 + 1
		return fmt.Sprintf(`{"src":"c%d","dest":"n1","body":{"type":"pbft_request","msg_id":%d,"operation":"set k%d=%d"}}`, c, 100+i/4, i, i),
			want{fmt.Sprintf("c%d", c), int64(100 + i/4), "pbft_request_ok", -1}
	}
	firstOf := map[int]int{} // request i -> index of its answer
	for i := range 2 * burst {
		line, w := request(i)
		firstOf[i] = len(wants)
		add(line, w)
		switch {
		case i%50 == 49: // a retransmission of a request a few lines back, still in flight
			line, w := request(i - 5)
			w.sameAs = firstOf[i-5]
			add(line, w)
		case i == 120: // request 0's msg_id (c1, 100) with another operation
			in.WriteString("not json\n")
			add(`{"src":"c1","dest":"n1","body":{"type":"pbft_request","msg_id":100,"operation":"set other=1"}}`,
				want{"c1", 100, "error", -1})
		case i == burst-1:
			add(`{"src":"c9","dest":"n2","body":{"type":"pbft_status","msg_id":7,"sequence_number":1}}`,
				want{"c9", 7, "pbft_status_ok", -1})
			add(`{"src":"c9","dest":"n3","body":{"type":"pbft_cluster","msg_id":8}}`,
				want{"c9", 8, "pbft_cluster_ok", -1})
		}
	}
	// The input ends right after the second burst, without a final newline: what is
	// in flight then is still answered, in order.
	run := runStdioWindow(t, bytes.NewReader(bytes.TrimSuffix(in.Bytes(), []byte("\n"))), 64)
	out := run.out
	if run.peak < 2 || run.largest < 2 {
		t.Errorf("at most %d requests in flight, %d in one run: the pipeline did not pipeline", run.peak, run.largest)
	}
	// Runs reach the primary as request batches, not one submit query per request.
	if batches := run.primary[pbft.KindRequests]; batches == 0 || batches > burst {
		t.Errorf("the primary stepped %d request batches for %d pipelined requests; want runs of 2 and more", batches, 2*burst)
	}
	t.Logf("peak %d in flight, largest run %d, %d request batches at the primary", run.peak, run.largest, run.primary[pbft.KindRequests])
	var got []pipelineReply
	sc := bufio.NewScanner(bytes.NewReader([]byte(out)))
	for sc.Scan() {
		var r pipelineReply
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %d: %v: %s", len(got)+1, err, sc.Bytes())
		}
		got = append(got, r)
	}
	if len(got) != len(wants) {
		t.Fatalf("%d answers, want %d", len(got), len(wants))
	}
	var lastSeq uint64
	for i, w := range wants {
		r := got[i]
		if r.Dest != w.dest || r.Body.InReplyTo != w.inReplyTo || r.Body.Type != w.typ || r.Body.MsgID != int64(i) {
			t.Fatalf("answer %d: %+v, want dest %s, in_reply_to %d, type %s, msg_id %d", i, r, w.dest, w.inReplyTo, w.typ, i)
		}
		switch {
		case w.typ == "error" && r.Body.Code != CodePreconditionFail:
			t.Errorf("answer %d: code %d, want %d", i, r.Body.Code, CodePreconditionFail)
		case w.typ == "pbft_request_ok" && w.sameAs >= 0 && r.Body.Seq != got[w.sameAs].Body.Seq:
			t.Errorf("answer %d: retransmission ordered at %d, its original at %d", i, r.Body.Seq, got[w.sameAs].Body.Seq)
		case w.typ == "pbft_request_ok" && w.sameAs < 0:
			if r.Body.Seq < max(lastSeq, 1) {
				t.Errorf("answer %d: sequence number %d (view %d) after %d: requests reached the primary out of input order", i, r.Body.Seq, r.Body.View, lastSeq)
			}
			lastSeq = r.Body.Seq
		case w.typ == "pbft_status_ok":
			if b := r.Body; b.Phase != "committed" || !b.Executed || b.Prepares != 3 || b.Commits != 4 {
				t.Errorf("status after the first burst: %+v; want committed, executed, 3 prepares, 4 commits", b)
			}
		case w.typ == "pbft_cluster_ok":
			// It waits for the burst before it, and nothing after it is sent before it
			// is answered: every replica has executed exactly the burst.
			if len(r.Body.Replicas) != 4 {
				t.Fatalf("cluster: %+v", r.Body)
			}
			for _, rep := range r.Body.Replicas {
				if rep.LastExecuted != lastSeq {
					t.Errorf("cluster after the first burst: %s executed up to %d, want %d (the last request's number)", rep.Node, rep.LastExecuted, lastSeq)
				}
			}
		}
	}
}

// With stdin held open, requests gathered while the input had more are sent as soon as
// it has none: each burst written is answered in full, in order, before the next is
// written, and the last after the input closes.
func TestStdioPipelineAnswersWhileStdinStaysOpen(t *testing.T) {
	s := testSettings().ForStdio()
	s.StdioWindow = 64
	s.ViewChangeTimeout = 4 * time.Second
	logger := slog.New(slog.DiscardHandler)
	svc := NewService(s, logger, func(ids []string) (Backend, error) { return embedded.Start(ids, s, logger) })
	defer svc.Close()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- NewStdio(svc, logger).Run(ctx, inR, outW); outW.Close() }()
	answers := make(chan pipelineReply, 1024)
	go func() {
		defer close(answers)
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			var r pipelineReply
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				answers <- r
			}
		}
	}()
	write := func(lines string) {
		if _, err := io.WriteString(inW, lines); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(n int, what string) []pipelineReply {
		var got []pipelineReply
		timeout := time.After(20 * time.Second)
		for len(got) < n {
			select {
			case r, ok := <-answers:
				if !ok {
					t.Fatalf("%s: output ended after %d answers, want %d", what, len(got), n)
				}
				got = append(got, r)
			case <-timeout:
				t.Fatalf("%s: %d answers within 20s, want %d: requests held back while stdin stays open", what, len(got), n)
			}
		}
		return got
	}
	write(`{"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","n2","n3","n4"]}}` + "\n")
	expect(1, "init")
	next := 0
	for burst := range 3 {
		var b bytes.Buffer
		for range 40 {
			fmt.Fprintf(&b, `{"src":"c%d","dest":"n1","body":{"type":"pbft_request","msg_id":%d,"operation":"set k%d=1"}}`+"\n", next%2, next, next)
			next++
		}
		write(b.String())
		got := expect(40, fmt.Sprintf("burst %d", burst))
		for i, r := range got {
			k := burst*40 + i
			if r.Body.Type != "pbft_request_ok" || r.Body.InReplyTo != int64(k) || r.Dest != fmt.Sprintf("c%d", k%2) {
				t.Fatalf("burst %d, answer %d: %+v; want pbft_request_ok to c%d for %d", burst, i, r, k%2, k)
			}
		}
	}
	inW.Close()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if r, ok := <-answers; ok {
		t.Fatalf("an answer after the input closed: %+v", r)
	}
}

// Requests are gathered only while every replica is live: after a pbft_fault in the
// middle of the stream (a backup crashed), the requests that follow take the ordinary
// path (a submit each) and never reach the primary as a batch; all are answered, in
// input order, and the pbft_cluster after them sees the crashed replica.
func TestStdioPipelineStopsGatheringAfterAFault(t *testing.T) {
	var in bytes.Buffer
	in.WriteString(`{"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","n2","n3","n4"]}}` + "\n")
	// One request before the fault: a run of one travels alone, not as a batch.
	in.WriteString(`{"src":"c1","dest":"n1","body":{"type":"pbft_request","msg_id":2,"operation":"set a=1"}}` + "\n")
	in.WriteString(`{"src":"c0","dest":"n2","body":{"type":"pbft_fault","msg_id":3,"node":"n2","fault":"crash"}}` + "\n")
	const after = 120
	for i := range after {
		fmt.Fprintf(&in, `{"src":"c%d","dest":"n1","body":{"type":"pbft_request","msg_id":%d,"operation":"set k%d=1"}}`+"\n", i%3+1, 10+i, i)
	}
	in.WriteString(`{"src":"c0","dest":"n3","body":{"type":"pbft_cluster","msg_id":4}}` + "\n")
	run := runStdioWindow(t, bytes.NewReader(in.Bytes()), 64)
	if b := run.primary[pbft.KindRequests]; b != 0 {
		t.Errorf("the primary stepped %d request batches; want none: nothing may be gathered with a replica crashed", b)
	}
	var got []pipelineReply
	sc := bufio.NewScanner(bytes.NewReader([]byte(run.out)))
	for sc.Scan() {
		var r pipelineReply
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %d: %v: %s", len(got)+1, err, sc.Bytes())
		}
		got = append(got, r)
	}
	if len(got) != after+4 {
		t.Fatalf("%d answers, want %d:\n%s", len(got), after+4, run.out)
	}
	types := []string{"init_ok", "pbft_request_ok", "pbft_fault_ok"}
	var last uint64
	for i, r := range got {
		want := "pbft_request_ok"
		switch {
		case i < len(types):
			want = types[i]
		case i == len(got)-1:
			want = "pbft_cluster_ok"
		}
		if r.Body.Type != want || r.Body.MsgID != int64(i) {
			t.Fatalf("answer %d: %+v; want %s, msg_id %d", i, r, want, i)
		}
		if want == "pbft_request_ok" {
			if r.Body.Seq < max(last, 1) {
				t.Errorf("answer %d: sequence number %d after %d", i, r.Body.Seq, last)
			}
			last = r.Body.Seq
		}
		if i >= len(types) && i < len(got)-1 && r.Body.InReplyTo != int64(10+i-len(types)) {
			t.Fatalf("answer %d answers %d, want %d", i, r.Body.InReplyTo, 10+i-len(types))
		}
	}
	for _, rep := range got[len(got)-1].Body.Replicas {
		if rep.Node != "n2" && rep.LastExecuted != last {
			t.Errorf("cluster: %s executed up to %d, want %d", rep.Node, rep.LastExecuted, last)
		}
	}
}

// The window grows by one for each request answered within hold and halves once for a
// run answered too late, however many requests that run holds.
func TestPipelineWindowAdapts(t *testing.T) {
	p := newPipeline(256, 40*time.Second) // hold: 5s, far beyond any stall of the test
	send := func(n int, age time.Duration) *run {
		r := &run{sent: time.Now().Add(-age), left: n}
		p.runs = append(p.runs, r)
		p.inflight += n
		return r
	}
	quick := send(10, 0)
	for range 10 {
		p.done(quick)
	}
	if p.allowed != 11 || p.inflight != 0 || len(p.runs) != 0 {
		t.Fatalf("after 10 quick answers: allowed %v, in flight %d, runs %d; want 11, 0, 0", p.allowed, p.inflight, len(p.runs))
	}
	slow := send(8, 2*p.hold)
	for range 8 {
		p.done(slow)
	}
	if p.allowed != 5.5 {
		t.Fatalf("after a slow run of 8: allowed %v, want 5.5 (halved once)", p.allowed)
	}
	if !p.roomFor(5) || p.roomFor(6) {
		t.Fatalf("room: want 5 requests allowed, not 6")
	}
	old := send(1, 2*p.hold)
	if p.roomFor(1) {
		t.Fatal("room with the oldest request in flight past hold")
	}
	p.done(old)
}

// TestStdioDefaultsNumberEachRequest: with stdio's defaults, a stream of requests from
// four clients is pipelined (many in flight at once) and still every request gets a
// sequence number of its own, the next one along the input, as the protocol's answers
// promise: the embedded primary orders each alone (config.ForStdio).
func TestStdioDefaultsNumberEachRequest(t *testing.T) {
	const n = 2000
	window := config.Default().StdioWindow
	if window <= 1 {
		t.Fatalf("the default stdio window is %d: lines go one at a time", window)
	}
	run := runStdioWindow(t, bytes.NewReader(fourClientInput(n)), window)
	checkFourClientOutput(t, []byte(run.out), n)
	sc := bufio.NewScanner(strings.NewReader(run.out))
	for line := 0; sc.Scan(); line++ {
		var r pipelineReply
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		if line > 0 && r.Body.Seq != uint64(line) {
			t.Fatalf("answer %d: sequence_number %d, want %d: %s", line, r.Body.Seq, line, sc.Bytes())
		}
	}
	if run.peak < 2 {
		t.Errorf("at most %d request in flight: not pipelined", run.peak)
	}
}

// TestStdioSmallMaxPayload: PBFT_EMBEDDED_MAX_PAYLOAD may be as small as 64 KiB
// (config.Validate); the gateway's runs of requests, the primary's pre-prepares and the
// replicas' bundles must then still fit it, or what does not is lost and the requests
// time out. With each request ordered alone, and with batches of up to 64 requests of
// 3,000 bytes (192 KB of operations).
func TestStdioSmallMaxPayload(t *testing.T) {
	for _, c := range []struct {
		batchMax, value int
	}{{0, 900}, {64, 3000}} {
		t.Run(fmt.Sprintf("batch=%d/value=%d", c.batchMax, c.value), func(t *testing.T) {
			const n = 300
			var in bytes.Buffer
			in.WriteString(`{"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","n2","n3","n4"]}}` + "\n")
			val := strings.Repeat("v", c.value)
			for i := range n {
				c := i%4 + 1
				fmt.Fprintf(&in, `{"src":"c%d","dest":"n1","body":{"type":"pbft_request","msg_id":%d,"operation":"set k%d=%s","client":"c%d"}}`+"\n", c, i/4+2, i, val, c)
			}
			s := testSettings()
			s.BatchMax = c.batchMax
			s = s.ForStdio()
			s.EmbeddedMaxPayload = 64 << 10
			checkFourClientOutput(t, []byte(runStdioPipelined(t, &in, s).out), n)
		})
	}
}
