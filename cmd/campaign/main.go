// Command campaign runs a Jepsen-style fault campaign against a real multi-process
// deployment (NATS servers, one cmd/replica process per replica, cmd/gateway in network
// mode, all on 127.0.0.1): concurrent clients on a few keys, a seeded nemesis, then
// convergence, final reads and a linearizability check (package campaign).
//
//	campaign -duration 60s -clients 8 -keys 5 -nodes 4 -seed 1 -out runs/1
//	campaign -byzantine -duration 20s   # f+1 colluding replicas: the checks must notice
//
// It exits 0 when the verdict is pass, 1 when it is fail, 2 when the run could not be
// carried out, 3 when it was interrupted (Ctrl-C, SIGTERM, SIGHUP, its output closed)
// and the history gathered until then showed nothing wrong. The report (report.txt, report.json, history.json, and on failure
// porcupine's linearizability.html and the processes' logs) goes to -out.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pbft-nats/pbft/campaign"
	"github.com/pbft-nats/pbft/internal/cli"
	"github.com/pbft-nats/pbft/internal/topology"
)

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("campaign", flag.ContinueOnError)
	duration := fs.Duration("duration", 60*time.Second, "how long clients run (faults, then a healed tail)")
	clients := fs.Int("clients", 8, "concurrent clients")
	keys := fs.Int("keys", 5, "keys the clients share")
	think := fs.Duration("think", 0, "each client's pause between operations (long runs: e.g. 20ms keeps the history small)")
	seed := fs.Uint64("seed", 0, "seed of the workload and the fault schedule (0: from the clock; printed)")
	nodes := fs.Int("nodes", 4, "replicas (n = 3f+1)")
	natsServers := fs.Int("nats", 3, "NATS servers: 1 or 3")
	out := fs.String("out", "", "report directory (default campaign-<seed> in the working directory)")
	byzantine := fs.Bool("byzantine", false, "f+1 Byzantine replicas: pass means the checks noticed (or liveness was lost)")
	byzFault := fs.String("byzantine-fault", "forge", "what the f+1 replicas do: forge (colluding forged replies), equivocate or silent")
	faults := fs.String("faults", "", "comma-separated faults to draw from (default all: "+faultNames(campaign.AllFaults)+")")
	keep := fs.Bool("keep", false, "keep the topology's directory (keys, data, logs) under -out/topology")
	args := os.Args[1:]
	if len(args) > 0 && cli.IsVersion(args[0]) {
		cli.WriteVersion(os.Stdout, "campaign")
		return 0
	}
	if len(args) > 0 && args[0] == "help" {
		args = []string{"-h"}
	}
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(os.Stdout, fs)
			return 0
		}
		fmt.Fprintf(os.Stderr, "campaign: %v\n", err)
		usage(os.Stderr, fs)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "campaign: unexpected argument %q (see campaign -h)\n", fs.Arg(0))
		return 2
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	if *out == "" {
		*out = fmt.Sprintf("campaign-%d", *seed)
	}
	kinds := campaign.AllFaults
	if *faults != "" {
		kinds = nil
		for _, k := range strings.Split(*faults, ",") {
			kinds = append(kinds, campaign.FaultKind(strings.TrimSpace(k)))
		}
	}
	logger := log.New(os.Stderr, "", log.Ltime|log.Lmicroseconds)
	logger.Printf("campaign: seed %d (rerun with -seed %d), report in %s", *seed, *seed, *out)
	defer func() { _ = topology.RemoveBuilds() }()
	ctx, stop := interruptContext(logger)
	defer stop()
	o := campaign.TopologyOptions{Nodes: *nodes, NATSServers: *natsServers, Logf: logger.Printf}
	if *keep {
		o.Dir = filepath.Join(*out, "topology")
	}
	rep, err := campaign.RunTopology(ctx, campaign.Config{Duration: *duration, Seed: *seed, Byzantine: *byzantine, ByzantineFault: campaign.FaultKind(*byzFault),
		Workload: campaign.Workload{Clients: *clients, Keys: *keys, Think: *think}, Faults: kinds, Out: *out, Logf: logger.Printf}, o)
	if rep != nil {
		fmt.Print(rep.Text())
	}
	if err != nil {
		logger.Printf("campaign: %v", err)
		if rep == nil && ctx.Err() != nil {
			logger.Printf("campaign: interrupted (%v) before the clients ran: nothing to check", context.Cause(ctx))
			return exitInterrupted
		}
		if errors.Is(err, campaign.ErrSetup) || rep == nil {
			return 2
		}
	}
	switch rep.Verdict {
	case "pass":
		return 0
	case campaign.VerdictInterrupted:
		return exitInterrupted
	}
	return 1
}

func faultNames(ks []campaign.FaultKind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ",")
}

// usage is `campaign -h`: the flags, the exit codes and what the environment does.
func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `usage: campaign [flags]
       campaign version

A fault campaign against a real multi-process deployment on 127.0.0.1: concurrent
clients, a seeded nemesis, convergence, final reads and a linearizability check.
Exit status: 0 the verdict is pass, 1 it is fail, 2 the run could not be carried out.

Flags:
`)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	fmt.Fprint(w, `
Environment: the campaign reads no PBFT_ variable and passes none of those in its
environment to the processes it starts; it configures them itself (campaign/README.md).
`)
}
