// Command replica runs one PBFT replica of the key-value store (pbft/kv) through the
// replica library (pbft/replica) against a NATS server, configured by the PBFT_
// environment variables (see README): PBFT_NODE_ID, PBFT_NODE_IDS, PBFT_NATS_URL and
// PBFT_KEYS_DIR are required. With PBFT_HTTP_ADDR it serves /healthz, /readyz, /metrics
// and, with PBFT_PPROF=on, /debug/pprof/ there (package nodehttp), from before it has
// reached NATS (not ready until then). It registers with the NATS services framework as
// pbft-replica (package nodemicro). It exits cleanly on SIGINT or SIGTERM.
//
//	replica keygen [-force] -dir DIR ID...
//
// writes a key pair (<id>.key, <id>.pub) for each id: replicas and gateways alike. It
// replaces no existing key without -force.
//
//	replica reconfigure [-timeout D] ID...
//
// changes the running replicas' membership to ID..., signed as the administrator
// PBFT_ADMIN_ID. A replica started with PBFT_JOIN=on waits (not ready) until such a
// reconfiguration makes it a member of PBFT_NODE_IDS.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/pbft-nats/pbft/internal/cli"
	"github.com/pbft-nats/pbft/pbft/config"
	"github.com/pbft-nats/pbft/pbft/kv"
	"github.com/pbft-nats/pbft/pbft/replica"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "replica:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) > 1 {
		switch arg := os.Args[1]; {
		case arg == "keygen":
			return keygen(os.Args[2:], os.Stdout)
		case arg == "reconfigure":
			return reconfigure(os.Args[2:], os.Stdout)
		case cli.IsHelp(arg):
			usage(os.Stdout)
			return nil
		case cli.IsVersion(arg):
			cli.WriteVersion(os.Stdout, "replica")
			return nil
		default:
			return fmt.Errorf("unknown command %q (commands: keygen, reconfigure, version, help; none runs the replica)", arg)
		}
	}
	s, err := config.Load()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return replica.Run(ctx, s, kv.New())
}
