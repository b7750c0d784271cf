package gateway

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/config"
	"github.com/pbft-nats/pbft/pbft/trace"
)

// TraceOptions are the flags of `gateway trace`.
type TraceOptions struct {
	Nodes    []string      // replica columns, in order
	Requests int           // demo requests (embedded cluster only)
	Crash    bool          // crash the primary half way through the demo
	Color    bool          // ANSI colours
	Duration time.Duration // how long to watch an external cluster; 0: until interrupted
}

// ParseTraceFlags parses `gateway trace` arguments; nodes defaults to PBFT_NODE_IDS, or
// n1..n4; colour defaults to whether out is a terminal.
func ParseTraceFlags(args []string, s config.Settings, out io.Writer) (TraceOptions, error) {
	o := TraceOptions{Nodes: s.NodeIDs}
	if len(o.Nodes) == 0 {
		o.Nodes = []string{"n1", "n2", "n3", "n4"}
	}
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	nodes := fs.String("nodes", strings.Join(o.Nodes, ","), "comma-separated replica ids, in order")
	fs.IntVar(&o.Requests, "requests", 4, "demo requests to send (embedded cluster only)")
	fs.BoolVar(&o.Crash, "crash", true, "crash the primary half way through the demo, to show a view change")
	color := fs.String("color", "auto", "ANSI colours: auto, always or never")
	fs.DurationVar(&o.Duration, "duration", 0, "how long to watch PBFT_NATS_URL (0: until interrupted)")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintln(out, "usage: gateway trace [-nodes n1,n2,n3,n4] [-requests N] [-crash=false] [-color auto|always|never] [-duration D]")
		fs.SetOutput(out)
		fs.PrintDefaults()
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("trace: unexpected argument %q", fs.Arg(0))
	}
	o.Nodes = strings.Split(*nodes, ",")
	switch *color {
	case "always":
		o.Color = true
	case "never":
	case "auto":
		if f, ok := out.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				o.Color = true
			}
		}
	default:
		return o, fmt.Errorf("trace: -color %q: want auto, always or never", *color)
	}
	return o, nil
}

// RunTrace is `gateway trace`: it prints the rounds of a cluster as a text sequence
// diagram, the terminal twin of the live page. With PBFT_NATS_URL it watches that
// cluster (whose replicas run with PBFT_TRACE=on) until ctx ends or o.Duration passes.
// Without it, it starts an embedded cluster with tracing on, sends o.Requests demo
// requests (crashing the primary half way if o.Crash), prints their rounds and returns;
// startEmbedded starts that cluster (embedded.Start, which the gateway does not import).
func RunTrace(ctx context.Context, s config.Settings, o TraceOptions, out io.Writer, logger *slog.Logger,
	startEmbedded func(ids []string, s config.Settings) (Backend, error)) error {
	if len(o.Nodes) == 0 {
		return errors.New("trace: no replicas named")
	}
	d := trace.NewDiagram(out, s.ClientID, o.Nodes, o.Color)
	events := make(chan trace.Event, 4096)
	var lost atomic.Uint64
	handle := func(_ string, data []byte) {
		evs, _ := trace.Decode(data)
		for _, e := range evs {
			select {
			case events <- e:
			default:
				lost.Add(1)
			}
		}
	}
	if s.NATSURL != "" {
		natsOpts, err := s.NATSOptions()
		if err != nil {
			return err
		}
		nc, err := bus.Connect(s.NATSURL, s.ClientID+"-trace", natsOpts...)
		if err != nil {
			return err
		}
		defer nc.Close()
		sub, err := bus.SubscribeTrace(nc, s.Cluster, handle)
		if err != nil {
			return err
		}
		defer func() { _ = sub.Unsubscribe() }()
		if o.Duration > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, o.Duration)
			defer cancel()
		}
		fmt.Fprintf(out, "watching %s on %s (replicas need PBFT_TRACE=on)\n", bus.TraceFilter(s.Cluster), bus.RedactURLs(s.NATSURL))
		return pump(ctx, d, events, nil, &lost, out)
	}

	s.Trace = true
	svc := NewService(s, logger, func(ids []string) (Backend, error) { return startEmbedded(ids, s) })
	defer svc.Close()
	if err := InitCluster(svc, o.Nodes); err != nil {
		return err
	}
	nc, err := traceConn(svc.Backend())
	if err != nil {
		return err
	}
	sub, err := bus.SubscribeTrace(nc, s.Cluster, handle)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	notes := make(chan traceNote, 16)
	done := make(chan error, 1)
	go func() { done <- demo(ctx, svc, o, notes) }()
	return pump(ctx, d, events, done, &lost, out, notes)
}

// pump feeds events to the diagram and prints complete blocks until ctx ends, or, once
// done has delivered, until the trace has been quiet for a while.
func pump(ctx context.Context, d *trace.Diagram, events <-chan trace.Event, done <-chan error,
	lost *atomic.Uint64, out io.Writer, notes ...<-chan traceNote) error {
	var noteCh <-chan traceNote
	if len(notes) > 0 {
		noteCh = notes[0]
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var demoErr error
	finished := false
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return d.Flush(time.Now(), true)
		case e := <-events:
			// A note sent before the event was emitted goes first: a fault switch must
			// divide the events at the point it happened.
			for drained := false; !drained && noteCh != nil; {
				select {
				case n, ok := <-noteCh:
					if !ok {
						noteCh = nil
						continue
					}
					n.addTo(d)
				default:
					drained = true
				}
			}
			now := time.Now()
			if e.Type != trace.Replica { // summaries never stop
				last = now
			}
			d.Add(e, now)
		case n, ok := <-noteCh:
			if !ok {
				noteCh = nil
				continue
			}
			n.addTo(d)
		case demoErr = <-done:
			finished, done = true, nil
		case now := <-tick.C:
			if err := d.Flush(now, false); err != nil {
				return err
			}
			if finished && now.Sub(last) > 2*d.Quiet {
				if err := d.Flush(now, true); err != nil {
					return err
				}
				if n := lost.Load(); n > 0 {
					fmt.Fprintf(out, "(%d trace events lost)\n", n)
				}
				return demoErr
			}
		}
	}
}

// traceNote is a line the demo prints among the rounds, at the time it happened; with a
// node, a fault switch of that replica.
type traceNote struct {
	text        string
	at          time.Time
	node, fault string
}

func (n traceNote) addTo(d *trace.Diagram) {
	if n.node != "" {
		d.Switch(n.node, n.fault, n.text, n.at)
		return
	}
	d.Note(n.text, n.at)
}

// demo sends the demo requests, crashing the primary (and recovering it) half way.
func demo(ctx context.Context, svc *Service, o TraceOptions, out chan<- traceNote) error {
	defer close(out)
	note := func(format string, args ...any) { out <- traceNote{text: fmt.Sprintf(format, args...), at: time.Now()} }
	b := svc.Backend()
	crashAt := -1
	if o.Crash && o.Requests > 1 {
		crashAt = o.Requests / 2
	}
	crashed := ""
	for i := range o.Requests {
		if i == crashAt {
			cl, err := svc.Cluster(ctx, "")
			if err != nil {
				return err
			}
			crashed = cl.Primary
			out <- traceNote{fmt.Sprintf("» crash %s (the primary)", crashed), time.Now(), crashed, string(pbft.FaultCrash)}
			if err := b.SetFault(crashed, pbft.FaultCrash); err != nil {
				return err
			}
		}
		op := fmt.Sprintf("set k%d=v%d", i+1, i+1)
		note("» %s", op)
		res, err := svc.Execute(ctx, "", RequestArgs{Operation: op, Client: "demo", Timestamp: uint64(i + 1)})
		if err != nil {
			return fmt.Errorf("trace demo: %s: %w", op, err)
		}
		note("» %s: %s at #%d in view %d (%d replies)", op, res.Result, res.Seq, res.View, res.Replies)
	}
	if crashed != "" {
		out <- traceNote{fmt.Sprintf("» recover %s", crashed), time.Now(), crashed, string(pbft.FaultNone)}
		return b.SetFault(crashed, pbft.FaultNone)
	}
	return nil
}
