package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/client"
	"github.com/pbft-nats/pbft/pbft/config"
	"github.com/pbft-nats/pbft/pbft/gateway"
	"github.com/pbft-nats/pbft/pbft/gateway/embedded"
	"github.com/pbft-nats/pbft/pbft/gateway/jsonl"
)

// Options configure a run.
type Options struct {
	Clients  int           // concurrent closed-loop clients
	Duration time.Duration // how long the clients run against the cluster
	Size     int           // bytes of each operation's value: "set k<i>=<Size bytes>"
	Nodes    int           // embedded cluster size (ids n1..nN)
	NATSURL  string        // if set, drive external replicas instead (ids from Settings.NodeIDs, else n1..nN)
	JSON     bool          // the caller wants the result as JSON (Result.WriteJSON)
	// Execute drives pbft_execute's path (ask the replica where the request was ordered,
	// wait for every replica's reply) instead of the PBFT client's (a quorum of matching replies).
	Execute bool
	// ReadRatio is the fraction of operations that are reads ("get k<i>" of the client's
	// own key), sent on the PBFT client's read-only path (which falls back to ordering).
	ReadRatio float64
	// CPUProfile names a file for a CPU profile of the replicated run (not the baseline).
	CPUProfile string
	// MemProfile names a file for an allocation profile written when the replicated run
	// ends (allocations since the process started, most of them the run's).
	MemProfile string
	// Trace names a file for an execution trace of the replicated run (go tool trace).
	Trace    string
	Progress io.Writer // a progress line every second (e.g. os.Stderr), nil for none
	// BeforeBaseline, if set, is called when the replicated run has ended and before the
	// baseline starts: a benchmark reads its other processes' CPU there (the bus's, say),
	// to tell what each run cost them.
	BeforeBaseline func()
}

// Default values of the flags.
const (
	DefaultClients  = 16
	DefaultDuration = 10 * time.Second
	DefaultSize     = 0
	DefaultNodes    = 4
	// MaxSize bounds Size well below NATS's default 1 MiB payload limit, which a
	// request must fit in with its envelope and signatures.
	MaxSize = 512 << 10
	// MaxBaseline bounds the duration of the baseline run.
	MaxBaseline = 5 * time.Second
)

// Latencies are latency percentiles in milliseconds.
type Latencies struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Result is what a run measured.
type Result struct {
	ThroughputRPS float64   `json:"throughput_rps"`
	LatencyMS     Latencies `json:"latency_ms"`
	ViewChanges   uint64    `json:"view_changes"`
	BaselineRPS   float64   `json:"baseline_rps"`
	Requests      int       `json:"requests"`
	Errors        int       `json:"errors"`
	Nodes         int       `json:"nodes"`
	Clients       int       `json:"clients"`
	Size          int       `json:"size"`
	External      bool      `json:"external"`
	Seconds       float64   `json:"seconds"` // how long the cluster run took
	// BaselineLatencyMS are the latencies of the echo baseline.
	BaselineLatencyMS Latencies `json:"baseline_latency_ms"`
	// ReadRatio, Reads, ReadFallbacks and the read and write latencies split the
	// requests (LatencyMS covers both) by kind; ReadFallbacks counts the reads that
	// did not get q matching read-only replies and were ordered instead.
	ReadRatio      float64   `json:"read_ratio"`
	Reads          int       `json:"reads"`
	ReadFallbacks  int       `json:"read_fallbacks"`
	ReadLatencyMS  Latencies `json:"read_latency_ms"`
	WriteLatencyMS Latencies `json:"write_latency_ms"`
	// CPUSeconds is the process's CPU time (user and system, every goroutine: clients,
	// replicas and, when embedded, the NATS server) during the cluster run; 0 if unknown.
	CPUSeconds float64 `json:"cpu_seconds"`
	// BaselineCPUSeconds is the same for the echo baseline's run: CPU per request of the
	// two runs, side by side, is what the PBFT client costs beyond a request and its answer.
	BaselineCPUSeconds float64 `json:"baseline_cpu_seconds"`
	BaselineRequests   int     `json:"baseline_requests"`
	// Sends and SentRequests are the sends of the client's send queue during the cluster
	// run and the requests they carried (a send to every replica counts once, as it does
	// in client.SendStats): SentRequests/Sends is the mean batch.
	Sends        uint64 `json:"sends"`
	SentRequests uint64 `json:"sent_requests"`
}

// Cost is how many times the baseline's throughput exceeds the cluster's (0 if unknown).
func (r Result) Cost() float64 {
	if r.ThroughputRPS <= 0 || r.BaselineRPS <= 0 {
		return 0
	}
	return r.BaselineRPS / r.ThroughputRPS
}

// WriteText writes a human summary.
func (r Result) WriteText(w io.Writer) {
	mode := "embedded"
	if r.External {
		mode = "external"
	}
	fmt.Fprintf(w, "cluster:     %d replicas (%s), %d clients, %d-byte values, %.1fs\n", r.Nodes, mode, r.Clients, r.Size, r.Seconds)
	fmt.Fprintf(w, "requests:    %d executed, %d errors\n", r.Requests, r.Errors)
	fmt.Fprintf(w, "throughput:  %.0f req/s\n", r.ThroughputRPS)
	fmt.Fprintf(w, "latency:     p50 %s  p90 %s  p99 %s  max %s\n", ms(r.LatencyMS.P50), ms(r.LatencyMS.P90), ms(r.LatencyMS.P99), ms(r.LatencyMS.Max))
	if r.ReadRatio > 0 {
		fmt.Fprintf(w, "reads:       %d (%.0f%%), %d fell back to ordering; p50 %s  p90 %s  p99 %s\n", r.Reads, 100*r.ReadRatio, r.ReadFallbacks, ms(r.ReadLatencyMS.P50), ms(r.ReadLatencyMS.P90), ms(r.ReadLatencyMS.P99))
		fmt.Fprintf(w, "writes:      %d; p50 %s  p90 %s  p99 %s\n", r.Requests-r.Reads, ms(r.WriteLatencyMS.P50), ms(r.WriteLatencyMS.P90), ms(r.WriteLatencyMS.P99))
	}
	fmt.Fprintf(w, "view changes: %d\n", r.ViewChanges)
	fmt.Fprintf(w, "baseline:    %.0f req/s (NATS request/reply echo, unreplicated), p50 %s  p99 %s\n", r.BaselineRPS, ms(r.BaselineLatencyMS.P50), ms(r.BaselineLatencyMS.P99))
	if c := r.Cost(); c > 0 {
		fmt.Fprintf(w, "ratio:       throughput/baseline = %.3f: replication costs %.1fx\n", r.ThroughputRPS/r.BaselineRPS, c)
	}
}

// WriteJSON writes the result as one JSON line.
func (r Result) WriteJSON(w io.Writer) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func ms(v float64) string { return fmt.Sprintf("%.2fms", v) }

// ParseFlags reads the flags of `gateway bench`: -clients -duration -size -nodes -json
// -execute -read-ratio -cpuprofile -memprofile -trace.
// -h and -help return flag.ErrHelp; Usage prints the flags.
func ParseFlags(args []string) (Options, error) {
	o := Options{}
	fs := newFlagSet(&o)
	if err := fs.Parse(args); err != nil {
		return Options{}, err
	}
	if fs.NArg() > 0 {
		return Options{}, fmt.Errorf("loadgen: unexpected argument %q", fs.Arg(0))
	}
	if err := o.validate(); err != nil {
		return Options{}, err
	}
	return o, nil
}

// Usage writes the flags and their defaults to w.
func Usage(w io.Writer) {
	var o Options
	fs := newFlagSet(&o)
	fs.SetOutput(w)
	fmt.Fprintln(w, "usage: gateway bench [-clients N] [-duration D] [-size B] [-nodes N] [-read-ratio R] [-cpuprofile FILE] [-memprofile FILE] [-trace FILE] [-json]")
	fs.PrintDefaults()
}

func newFlagSet(o *Options) *flag.FlagSet {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.IntVar(&o.Clients, "clients", DefaultClients, "concurrent closed-loop clients")
	fs.DurationVar(&o.Duration, "duration", DefaultDuration, "how long to run the load")
	fs.IntVar(&o.Size, "size", DefaultSize, "bytes of each operation's value")
	fs.IntVar(&o.Nodes, "nodes", DefaultNodes, "replicas in the embedded cluster")
	fs.BoolVar(&o.JSON, "json", false, "print the result as JSON")
	fs.BoolVar(&o.Execute, "execute", false, "use pbft_execute's path (ordering query, every replica's reply) instead of the PBFT client's (a quorum of matching replies)")
	fs.Float64Var(&o.ReadRatio, "read-ratio", 0, "fraction of operations that are reads (get of the client's key) on the read-only path, 0 to 1")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the replicated run to this file")
	fs.StringVar(&o.MemProfile, "memprofile", "", "write an allocation profile to this file when the replicated run ends")
	fs.StringVar(&o.Trace, "trace", "", "write an execution trace of the replicated run to this file (go tool trace)")
	return fs
}

func (o Options) validate() error {
	switch {
	case o.Clients < 1:
		return fmt.Errorf("loadgen: -clients must be at least 1, not %d", o.Clients)
	case o.Duration <= 0:
		return fmt.Errorf("loadgen: -duration must be positive, not %v", o.Duration)
	case o.Size < 0 || o.Size > MaxSize:
		return fmt.Errorf("loadgen: -size must be between 0 and %d, not %d", MaxSize, o.Size)
	case o.Nodes < 1:
		return fmt.Errorf("loadgen: -nodes must be at least 1, not %d", o.Nodes)
	case !(o.ReadRatio >= 0 && o.ReadRatio <= 1): // also NaN
		return fmt.Errorf("loadgen: -read-ratio must be between 0 and 1, not %v", o.ReadRatio)
	}
	return nil
}

// Run drives the cluster with o.Clients closed-loop clients for o.Duration, then the
// baseline for min(o.Duration, MaxBaseline), and reports both. A cancelled ctx ends the
// run early; Run then returns what it measured with ctx's error.
func Run(ctx context.Context, s config.Settings, o Options) (Result, error) {
	if err := o.validate(); err != nil {
		return Result{}, err
	}
	ids := make([]string, o.Nodes)
	for i := range ids {
		ids[i] = fmt.Sprintf("n%d", i+1)
	}
	if o.NATSURL != "" && len(s.NodeIDs) > 0 {
		ids = slices.Clone(s.NodeIDs)
	}
	res := Result{Nodes: len(ids), Clients: o.Clients, Size: o.Size, External: o.NATSURL != "", ReadRatio: o.ReadRatio}
	value := strings.Repeat("x", o.Size)
	ops := make([][]byte, o.Clients)
	reads := make([][]byte, o.Clients)
	for i := range ops {
		ops[i] = []byte(fmt.Sprintf("set k%d=%s", i, value))
		reads[i] = []byte(fmt.Sprintf("get k%d", i))
	}

	// The replicated run.
	logger := slog.New(slog.DiscardHandler)
	svc := gateway.NewService(s, logger, func(ids []string) (gateway.Backend, error) {
		if o.NATSURL != "" {
			return gateway.ConnectExternal(o.NATSURL, ids, s)
		}
		return embedded.Start(ids, s, logger)
	})
	defer svc.Close()
	initLine, err := json.Marshal(map[string]any{
		"src": "loadgen", "dest": ids[0],
		"body": map[string]any{"type": "init", "msg_id": 1, "node_id": ids[0], "node_ids": ids},
	})
	if err != nil {
		return res, err
	}
	l, err := jsonl.Parse(initLine)
	if err != nil {
		return res, fmt.Errorf("loadgen: init line: %w", err)
	}
	if err := svc.Init(l); err != nil {
		return res, fmt.Errorf("loadgen: init: %w", err)
	}
	// Timestamps start at the clock, so that repeated runs against the same external
	// replicas are not mistaken for retransmissions of old requests.
	base := uint64(time.Now().UnixNano())
	dest := ids[0]
	clients := make([]string, o.Clients)
	for c := range clients {
		clients[c] = fmt.Sprintf("load%d", c)
	}
	pc := svc.Backend().Client()
	if o.ReadRatio > 0 {
		// Every key a client reads is written first, so that reads return a value.
		if err := writeKeys(ctx, pc, clients, base, ops); err != nil {
			return res, err
		}
		base++
	}
	stopProfile, err := startProfile(o.CPUProfile)
	if err != nil {
		return res, err
	}
	stopTrace, err := startTrace(o.Trace)
	if err != nil {
		_ = stopProfile()
		return res, err
	}
	var fallbacks atomic.Int64
	cpu0, sent0 := cpuTime(), pc.SendStats()
	m := drive(ctx, o.Clients, o.Duration, o.Progress, "", func(ctx context.Context, c int, k uint64) (bool, error) {
		if isRead(k, o.ReadRatio) {
			r, ordered, err := pc.Read(ctx, client.Request{Client: clients[c], Timestamp: base + k, Op: reads[c]})
			if ordered {
				fallbacks.Add(1)
			}
			if err == nil && string(r.Value) != value {
				err = fmt.Errorf("loadgen: get k%d returned %d bytes, not the %d written", c, len(r.Value), len(value))
			}
			return true, err
		}
		if o.Execute {
			args := gateway.RequestArgs{Operation: string(ops[c]), Client: clients[c], Timestamp: base + k}
			_, err := svc.Execute(ctx, dest, args)
			return false, err
		}
		_, err := pc.Invoke(ctx, client.Request{Client: clients[c], Timestamp: base + k, Op: ops[c]})
		return false, err
	})
	if cpu := cpuTime(); cpu > 0 {
		res.CPUSeconds = (cpu - cpu0).Seconds()
	}
	sent := pc.SendStats()
	res.Sends, res.SentRequests = sent.Sends-sent0.Sends, sent.Requests-sent0.Requests
	if err := stopTrace(); err != nil {
		_ = stopProfile()
		return res, err
	}
	if err := stopProfile(); err != nil {
		return res, err
	}
	if err := writeMemProfile(o.MemProfile); err != nil {
		return res, err
	}
	res.Requests, res.Errors, res.Seconds = len(m.lat), m.errors, m.elapsed.Seconds()
	res.ThroughputRPS = m.rps()
	res.Reads, res.ReadFallbacks = len(m.readLat), int(fallbacks.Load())
	res.ReadLatencyMS = percentiles(m.readLat)
	res.WriteLatencyMS = percentiles(m.writeLat)
	res.LatencyMS = percentiles(m.lat)
	if e, ok := svc.Backend().(*embedded.Cluster); ok {
		vc, err := viewChanges(ctx, e, ids)
		if err != nil {
			return res, err
		}
		res.ViewChanges = vc
	}
	svc.Close()
	if err := ctx.Err(); err != nil {
		return res, err
	}

	// The baseline: the same clients and operations against an echo service.
	if o.BeforeBaseline != nil {
		o.BeforeBaseline()
	}
	cpu0 = cpuTime()
	bm, err := baseline(ctx, o, ops)
	if err != nil {
		return res, err
	}
	if cpu := cpuTime(); cpu > 0 {
		res.BaselineCPUSeconds = (cpu - cpu0).Seconds()
	}
	res.BaselineRPS, res.BaselineRequests = bm.rps(), len(bm.lat)
	res.BaselineLatencyMS = percentiles(bm.lat)
	return res, ctx.Err()
}

// isRead reports whether a client's k-th operation (k >= 1) is a read: exactly
// floor(k*ratio) of its first k operations are, spread evenly.
func isRead(k uint64, ratio float64) bool {
	return math.Floor(float64(k)*ratio) > math.Floor(float64(k-1)*ratio)
}

// writeKeys has each client write its key once (timestamp base), all at once.
func writeKeys(ctx context.Context, pc *client.Client, clients []string, base uint64, ops [][]byte) error {
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[c] = pc.Invoke(ctx, client.Request{Client: clients[c], Timestamp: base, Op: ops[c]})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("loadgen: writing the keys to read: %w", err)
	}
	return nil
}

func viewChanges(ctx context.Context, e *embedded.Cluster, ids []string) (uint64, error) {
	var max uint64
	for _, id := range ids {
		n := e.Node(id)
		if n == nil {
			continue
		}
		var v uint64
		if err := n.Do(ctx, func(r *pbft.Replica) { v = r.ViewChanges() }); err != nil {
			return 0, fmt.Errorf("loadgen: view changes of %s: %w", id, err)
		}
		max = maxU(max, v)
	}
	return max, nil
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// baseline runs the echo service on an embedded NATS server (or on o.NATSURL) and
// drives it with o.Clients closed-loop requesters sharing one connection, as the
// gateway's clients share its one.
func baseline(ctx context.Context, o Options, ops [][]byte) (measured, error) {
	var srv *server.Server
	connect := func(name string) (*nats.Conn, error) {
		if srv != nil {
			return bus.ConnectInProcess(srv, name)
		}
		return bus.Connect(o.NATSURL, name)
	}
	if o.NATSURL == "" {
		var err error
		if srv, err = bus.StartEmbedded(bus.EmbeddedOptions{}); err != nil {
			return measured{}, err
		}
		defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	}
	responder, err := connect("loadgen-echo")
	if err != nil {
		return measured{}, err
	}
	defer responder.Close()
	subject := "loadgen.echo." + nats.NewInbox()[len(nats.InboxPrefix):]
	if _, err := responder.Subscribe(subject, func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		return measured{}, fmt.Errorf("loadgen: echo service: %w", err)
	}
	if err := responder.Flush(); err != nil {
		return measured{}, fmt.Errorf("loadgen: echo service: %w", err)
	}
	requester, err := connect("loadgen-requester")
	if err != nil {
		return measured{}, err
	}
	defer requester.Close()
	d := min(o.Duration, MaxBaseline)
	m := drive(ctx, o.Clients, d, o.Progress, "baseline  ", func(ctx context.Context, c int, _ uint64) (bool, error) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		r, err := requester.RequestWithContext(ctx, subject, ops[c])
		if err != nil {
			return false, err
		}
		if len(r.Data) != len(ops[c]) {
			return false, errors.New("loadgen: echo answered a different payload")
		}
		return false, nil
	})
	if m.errors > 0 && len(m.lat) == 0 {
		return m, fmt.Errorf("loadgen: baseline: every request failed (%d)", m.errors)
	}
	return m, nil
}
