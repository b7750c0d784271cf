package ledger

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/pbft-nats/pbft/pbft"
)

func run(t *testing.T, l *Ledger, op []byte, want string) {
	t.Helper()
	if got := string(l.Execute(op)); got != want {
		t.Fatalf("%q: got %q, want %q", op, got, want)
	}
}

func TestOperations(t *testing.T) {
	l := New()
	run(t, l, Open("alice"), "ok")
	run(t, l, Open("bob"), "ok")
	run(t, l, Open("alice"), "error: account exists")
	run(t, l, Deposit("alice", 100), "ok")
	run(t, l, Transfer("alice", "bob", 30), "ok")
	run(t, l, Transfer("alice", "bob", 71), "error: insufficient funds")
	run(t, l, Transfer("alice", "alice", 1), "error: transfer to the same account")
	run(t, l, Transfer("alice", "carol", 1), "error: no account carol")
	run(t, l, Deposit("carol", 1), "error: no account carol")
	run(t, l, Balance("alice"), "70")
	run(t, l, Balance("bob"), "30")
	for _, op := range []string{"", "open", "open a b", "deposit bob 0", "deposit bob -1", "deposit bob 01",
		"deposit bob 18446744073709551616", "transfer alice bob", "open  x", "open x\n", "open \xff", "withdraw bob 1"} {
		if got := l.Execute([]byte(op)); !bytes.HasPrefix(got, []byte("error: ")) {
			t.Errorf("%q: got %q, want an error", op, got)
		}
	}
	run(t, l, Deposit("bob", 18446744073709551615-100), "ok")
	run(t, l, Deposit("bob", 1), "error: amount too large")
	if b, d := l.Totals(); b != d || d != 18446744073709551615 {
		t.Fatalf("totals: balances %d, deposits %d", b, d)
	}
	if n, err := ParseBalance(l.Execute(Balance("alice"))); err != nil || n != 70 {
		t.Fatalf("ParseBalance: %d %v", n, err)
	}
	if _, err := ParseBalance(l.Execute(Balance("nobody"))); err == nil {
		t.Fatal("ParseBalance of an error result succeeded")
	}
	var _ pbft.ReadOnlyClassifier = l
	if !l.IsReadOnly(Balance("alice")) || l.IsReadOnly(Deposit("alice", 1)) || l.IsReadOnly(Open("balance")) {
		t.Fatal("IsReadOnly misclassifies")
	}
	before := string(l.Snapshot())
	for _, op := range []string{"balance alice", "balance nobody", "balance ", "balance a b"} {
		l.Execute([]byte(op))
		if !l.IsReadOnly([]byte(op)) || string(l.Snapshot()) != before {
			t.Fatalf("%q: classed read-only %v, changed the state %v", op, l.IsReadOnly([]byte(op)), string(l.Snapshot()) != before)
		}
	}
}

func TestSnapshotIsCanonicalAndRestores(t *testing.T) {
	a, b := New(), New()
	for _, op := range [][]byte{Open("x"), Open("deposits"), Deposit("x", 5), Transfer("x", "deposits", 2)} {
		a.Execute(op)
	}
	for _, op := range [][]byte{Open("deposits"), Open("x"), Deposit("x", 4), Deposit("x", 1), Transfer("x", "deposits", 2)} {
		b.Execute(op)
	}
	if !bytes.Equal(a.Snapshot(), b.Snapshot()) {
		t.Fatalf("equal states, different snapshots:\n%s\n%s", a.Snapshot(), b.Snapshot())
	}
	c := New()
	if err := c.Restore(a.Snapshot()); err != nil || !bytes.Equal(c.Snapshot(), a.Snapshot()) {
		t.Fatalf("restore: %v\n%s", err, c.Snapshot())
	}
	if got := string(c.Execute(Balance("deposits"))); got != "2" {
		t.Fatalf("restored balance %q", got)
	}
}

func TestRestoreRefusesWhatSnapshotDoesNotMake(t *testing.T) {
	good := "pbft-bank/1\ndeposits 5\na 2\nb 3\n"
	if err := New().Restore([]byte(good)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "junk", "pbft-bank/1\n", "pbft-bank/1\ndeposits 5\nb 3\na 2\n",
		"pbft-bank/1\ndeposits 6\na 2\nb 3\n", "pbft-bank/1\ndeposits 5\na 2\na 3\n", "pbft-bank/1\nx 5\na 5\n",
		"pbft-bank/1\ndeposits 0\na 18446744073709551615\nb 1\n", "pbft-bank/1\ndeposits 5\na 02\nb 3\n",
		"pbft-bank/1\ndeposits 5\n" + strings.Repeat("a", 200) + " 5\n"} {
		l := New()
		l.Execute(Open("keep"))
		err := l.Restore([]byte(bad))
		if !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("%q: err %v, want ErrBadSnapshot", bad, err)
		}
		if got := string(l.Snapshot()); got != "pbft-bank/1\ndeposits 0\nkeep 0\n" {
			t.Errorf("%q: a refused snapshot changed the ledger to %q", bad, got)
		}
	}
}
