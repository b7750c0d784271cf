package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/examples/bank/ledger"
	"github.com/pbft-nats/pbft/internal/poll"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/config"
)

// Money is neither created nor lost while replicas fail: seven ledger replicas (f = 2),
// the first (the primary of view 0) equivocating throughout, and another crashed in the
// middle of concurrent deposits and transfers and restarted from its log. Every
// operation is retried under its own number until answered, so the deposits the tellers
// made are exactly known; the balances read through the client sum to them, and every
// correct replica ends with that same ledger.
func TestInvariantUnderCrashAndEquivocation(t *testing.T) {
	ids := []string{"b1", "b2", "b3", "b4", "b5", "b6", "b7"}
	const equivocator, crashed = "b1", "b6"
	tellers := []string{"t1", "t2", "t3"}
	s := config.Default()
	s.CheckpointInterval, s.LogWindow = 8, 16 // checkpoints, hence state transfer, within the run
	l, err := startLocal(ids, []string{"teller"}, t.TempDir(), s, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	l.crash(equivocator)
	if err := l.start(equivocator, string(pbft.FaultEquivocate)); err != nil {
		t.Fatal(err)
	}
	c, err := l.client("teller")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	accounts := []string{"a0", "a1", "a2", "a3", "a4"}
	setup := &teller{c: c, name: "setup"}
	var deposits atomic.Uint64
	for _, a := range accounts {
		if res, err := setup.do(ctx, ledger.Open(a)); err != nil || res != "ok" {
			t.Fatalf("open %s: %q %v", a, res, err)
		}
		if res, err := setup.do(ctx, ledger.Deposit(a, 20)); err != nil || res != "ok" {
			t.Fatalf("deposit %s: %q %v", a, res, err)
		}
		deposits.Add(20)
	}
	if res, err := setup.do(ctx, ledger.Transfer("a0", "a1", 21)); err != nil || res != "error: insufficient funds" {
		t.Fatalf("an overdraft: %q %v", res, err)
	}

	// The tellers run concurrently; the crash and the restart happen at fixed points of
	// their progress, so they fall in the middle of the load whatever the machine's speed.
	const opsPerTeller = 24
	var done atomic.Int64
	crashAt, restartAt := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, len(tellers))
	for k, name := range tellers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(k), 1))
			tl := &teller{c: c, name: name}
			for range opsPerTeller {
				from, to := accounts[rng.IntN(len(accounts))], accounts[rng.IntN(len(accounts))]
				amount := uint64(1 + rng.IntN(30))
				if rng.IntN(3) == 0 {
					res, err := tl.do(ctx, ledger.Deposit(to, amount))
					if err != nil || res != "ok" {
						errs <- fmt.Errorf("%s: deposit %s %d: %q %v", name, to, amount, res, err)
						return
					}
					deposits.Add(amount)
				} else {
					res, err := tl.do(ctx, ledger.Transfer(from, to, amount))
					if err != nil || (res != "ok" && !strings.HasPrefix(res, "error: ")) {
						errs <- fmt.Errorf("%s: transfer: %q %v", name, res, err)
						return
					}
				}
				switch done.Add(1) {
				case opsPerTeller * int64(len(tellers)) / 4:
					close(crashAt)
				case opsPerTeller * int64(len(tellers)) / 2:
					close(restartAt)
				}
			}
		}()
	}
	<-crashAt
	l.crash(crashed)
	<-restartAt
	if err := l.start(crashed, ""); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	var sum uint64
	for _, a := range accounts {
		res, err := setup.do(ctx, ledger.Balance(a))
		b, perr := ledger.ParseBalance([]byte(res))
		if err != nil || perr != nil {
			t.Fatalf("balance %s: %q %v %v", a, res, err, perr)
		}
		sum += b
	}
	if want := deposits.Load(); sum != want {
		t.Fatalf("the balances sum to %d, the deposits to %d", sum, want)
	}

	// Every correct replica, the restarted one too, holds that very ledger; and the
	// equivocating primary was voted out (a view change happened).
	var want []byte
	poll.Eventually(t, time.Minute, "the correct replicas hold equal, balanced ledgers", func() bool {
		want = nil
		for _, id := range ids[1:] {
			led, err := l.snapshot(ctx, id)
			if err != nil {
				return false
			}
			balances, deps := led.Totals()
			if balances != deps || deps != deposits.Load() {
				return false
			}
			if want == nil {
				want = led.Snapshot()
			} else if !bytes.Equal(led.Snapshot(), want) {
				return false
			}
		}
		return true
	})
	var view uint64
	if err := l.do(ctx, "b2", func(r *pbft.Replica, _ *ledger.Ledger) { view = r.View() }); err != nil {
		t.Fatal(err)
	}
	if view == 0 {
		t.Fatal("still in view 0: the equivocating primary was never replaced")
	}
}

// `go run ./examples/bank` runs its demo to the end, and the invariant holds.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	if err := demo(&out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"transfer bob carol 100     -> error: insufficient funds", "bank-1, the primary, crashes",
		"balance of carol = 60", "invariant holds: the balances sum to 150, the deposits to 150"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out.String())
		}
	}
}

// `bank send` reaches running replicas as a client of its own, from PBFT_ settings.
func TestSendAgainstRunningReplicas(t *testing.T) {
	ids := []string{"r1", "r2", "r3", "r4"}
	dir := t.TempDir()
	l, err := startLocal(ids, []string{"teller"}, dir, config.Default(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	s := l.settings("r1", "")
	s.NodeID, s.DataDir, s.ClientID = "", "", "teller"
	var out bytes.Buffer
	for _, op := range []string{"open alice", "deposit alice 7", "balance alice", "withdraw alice 1"} {
		if err := send(context.Background(), s, strings.Fields(op), &out); err != nil {
			t.Fatalf("%s: %v", op, err)
		}
	}
	if want := "ok\nok\n7\nerror: unknown operation (open, deposit, transfer, balance)\n"; out.String() != want {
		t.Fatalf("got %q, want %q", out.String(), want)
	}
	if err := send(context.Background(), s, nil, &out); err == nil {
		t.Error("no operation: accepted")
	}
	s.NATSURL = ""
	if err := send(context.Background(), s, []string{"balance", "alice"}, &out); err == nil {
		t.Error("no NATS URL: accepted")
	}
}

// Unknown arguments are an error with the usage, before anything starts.
func TestRunRefusesUnknownArguments(t *testing.T) {
	for _, args := range [][]string{{"foo"}, {"replica", "extra"}, {"-x"}} {
		if err := run(args); err == nil || !strings.Contains(err.Error(), "usage: bank") {
			t.Errorf("%q: %v", args, err)
		}
	}
}
