// Command replica runs one PBFT replica of the key-value store (pbft/kv) through the
// replica library (pbft/replica) against a NATS server, configured by the PBFT_
// environment variables (see README): PBFT_NODE_ID, PBFT_NODE_IDS, PBFT_NATS_URL and
// PBFT_KEYS_DIR are required. With PBFT_HTTP_ADDR it serves /healthz, /readyz, /metrics
// and, with PBFT_PPROF=on, /debug/pprof/ there (package nodehttp). It exits cleanly on
// SIGINT or SIGTERM.
//
//	replica keygen -dir DIR ID...
//
// writes a key pair (<id>.key, <id>.pub) for each id: replicas and gateways alike.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/pbft-nats/pbft/bus/auth"
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
	if len(os.Args) > 1 && os.Args[1] == "keygen" {
		return keygen(os.Args[2:])
	}
	if len(os.Args) > 1 {
		return fmt.Errorf("unknown command %q (commands: keygen; none runs the replica)", os.Args[1])
	}
	s, err := config.Load()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return replica.Run(ctx, s, kv.New())
}

func keygen(args []string) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	dir := fs.String("dir", ".", "directory to write <id>.key and <id>.pub into")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("usage: replica keygen -dir DIR ID...")
	}
	for _, id := range fs.Args() {
		if err := auth.WriteKeyPair(*dir, id); err != nil {
			return err
		}
	}
	return nil
}
