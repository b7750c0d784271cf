// Command bank is a replicated bank ledger built on the replica library (pbft/replica):
// the second service of this repository, beside the key-value store of cmd/replica. Its
// state machine is package ledger.
//
//	bank           a demo: four ledger replicas on an in-process NATS server, a few
//	               operations through the PBFT client, a crashed replica, the balances
//	               and the invariant (the balances sum to the deposits)
//	bank replica   one ledger replica, configured like cmd/replica by the PBFT_
//	               variables, until SIGINT or SIGTERM
//	bank send OP   one operation (e.g. deposit alice 100) to running replicas, as the
//	               client PBFT_CLIENT_ID; prints the result f+1 of them agree on
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/pbft-nats/pbft/examples/bank/ledger"
	"github.com/pbft-nats/pbft/internal/cli"
	"github.com/pbft-nats/pbft/pbft/config"
	"github.com/pbft-nats/pbft/pbft/replica"
)

const usage = `usage: bank [replica | send OPERATION]
  (none)     the demo: four ledger replicas in this process, operations, a crash, the invariant
  replica    one ledger replica, configured by the PBFT_ variables like cmd/replica
  send OP    one operation (open A, deposit A N, transfer A B N, balance A) to running replicas`

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
	case len(args) == 1 && cli.IsHelp(args[0]):
		_, err := fmt.Println(usage)
		return err
	case args[0] != "replica" && args[0] != "send" || args[0] == "replica" && len(args) > 1:
		return fmt.Errorf("unknown arguments %q\n%s", args, usage)
	}
	s, err := config.Load()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if args[0] == "send" {
		return send(ctx, s, args[1:], os.Stdout)
	}
	return replica.Run(ctx, s, ledger.New())
}
