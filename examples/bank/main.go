// Command bank is a replicated bank ledger built on the replica library (pbft/replica):
// the second service of this repository, beside the key-value store of cmd/replica. Its
// state machine is package ledger.
//
//	bank           a demo: four ledger replicas on an in-process NATS server, a few
//	               operations through the PBFT client, a crashed replica, the balances
//	               and the invariant (the balances sum to the deposits)
//	bank replica   one ledger replica, configured like cmd/replica by the PBFT_
//	               variables, until SIGINT or SIGTERM
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/pbft-nats/pbft/examples/bank/ledger"
	"github.com/pbft-nats/pbft/pbft/config"
	"github.com/pbft-nats/pbft/pbft/replica"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bank:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	switch {
	case len(args) == 0:
		return demo(os.Stdout)
	case len(args) == 1 && args[0] == "replica":
		s, err := config.Load()
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		return replica.Run(ctx, s, ledger.New())
	}
	return fmt.Errorf("unknown arguments %q (usage: bank [replica])", args)
}
