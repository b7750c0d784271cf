package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/pbft-nats/pbft/examples/bank/ledger"
	"github.com/pbft-nats/pbft/pbft/config"
)

// demo runs four ledger replicas in this process, sends a few operations through the
// PBFT client (crashing the primary halfway), prints the balances and checks that they
// sum to the deposits.
func demo(w io.Writer) error {
	dir, err := os.MkdirTemp("", "pbft-bank-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ids := []string{"bank-1", "bank-2", "bank-3", "bank-4"}
	l, err := startLocal(ids, []string{"teller"}, dir, config.Default(), slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer l.close()
	c, err := l.client("teller")
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t := &teller{c: c, name: "demo"}
	fmt.Fprintf(w, "%d replicas of the ledger (%s) on an in-process NATS server; f = 1\n", len(ids), strings.Join(ids, ", "))
	var deposits uint64
	send := func(op []byte, deposit uint64) error {
		res, err := t.do(ctx, op)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		fmt.Fprintf(w, "  %-26s -> %s\n", op, res)
		if res == "ok" {
			deposits += deposit
		}
		return nil
	}
	steps := []struct {
		op      []byte
		deposit uint64
	}{
		{ledger.Open("alice"), 0}, {ledger.Open("bob"), 0}, {ledger.Open("carol"), 0},
		{ledger.Deposit("alice", 100), 100}, {ledger.Deposit("bob", 50), 50},
		{ledger.Transfer("alice", "bob", 30), 0}, {ledger.Transfer("bob", "carol", 100), 0},
	}
	for i, s := range steps {
		if i == 5 {
			l.crash(ids[0])
			fmt.Fprintf(w, "%s, the primary, crashes: the other three change view and carry on\n", ids[0])
		}
		if err := send(s.op, s.deposit); err != nil {
			return err
		}
	}
	if err := send(ledger.Transfer("bob", "carol", 60), 0); err != nil {
		return err
	}
	var sum uint64
	for _, acct := range []string{"alice", "bob", "carol"} {
		res, err := t.do(ctx, ledger.Balance(acct))
		if err != nil {
			return err
		}
		b, err := ledger.ParseBalance([]byte(res))
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "balance of %-5s = %d\n", acct, b)
		sum += b
	}
	if sum != deposits {
		return fmt.Errorf("the balances sum to %d, the deposits to %d: money was created or lost", sum, deposits)
	}
	fmt.Fprintf(w, "invariant holds: the balances sum to %d, the deposits to %d\n", sum, deposits)
	return nil
}
