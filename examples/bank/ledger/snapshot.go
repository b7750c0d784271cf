package ledger

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ErrBadSnapshot is wrapped by every error Restore returns.
var ErrBadSnapshot = errors.New("ledger: bad snapshot")

// snapshotHeader starts every snapshot, so that Restore rejects unrelated bytes early.
const snapshotHeader = "pbft-bank/1"

// Snapshot encodes the ledger canonically: the header, the deposits, then one line per
// account in name order, so equal ledgers give equal bytes on every replica.
func (l *Ledger) Snapshot() []byte {
	names := make([]string, 0, len(l.balances))
	for name := range l.balances {
		names = append(names, name)
	}
	slices.Sort(names)
	b := fmt.Appendf(nil, "%s\ndeposits %d\n", snapshotHeader, l.deposits)
	for _, name := range names {
		b = fmt.Appendf(b, "%s %d\n", name, l.balances[name])
	}
	return b
}

// Restore replaces the ledger with a snapshot. It accepts only what Snapshot produces (a
// snapshot comes from another replica) and leaves the ledger as it was on error.
func (l *Ledger) Restore(snapshot []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(snapshot))
	sc.Buffer(nil, 2*maxName+64)
	var deposits, sum uint64
	balances := map[string]uint64{}
	for line := 0; sc.Scan(); line++ {
		text := sc.Text()
		if line == 0 {
			if text != snapshotHeader {
				return fmt.Errorf("%w: header %q", ErrBadSnapshot, text)
			}
			continue
		}
		name, value, ok := strings.Cut(text, " ")
		n, err := strconv.ParseUint(value, 10, 64)
		if !ok || err != nil || !validWord(name) {
			return fmt.Errorf("%w: line %d: %q", ErrBadSnapshot, line+1, text)
		}
		if line == 1 {
			if name != "deposits" {
				return fmt.Errorf("%w: line 2 is not the deposits", ErrBadSnapshot)
			}
			deposits = n
			continue
		}
		if sum+n < sum {
			return fmt.Errorf("%w: balances overflow", ErrBadSnapshot)
		}
		sum += n
		balances[name] = n
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	restored := &Ledger{balances: balances, deposits: deposits}
	if !bytes.Equal(restored.Snapshot(), snapshot) {
		return fmt.Errorf("%w: not in canonical form", ErrBadSnapshot)
	}
	if sum != deposits {
		return fmt.Errorf("%w: balances sum to %d, deposits to %d", ErrBadSnapshot, sum, deposits)
	}
	*l = *restored
	return nil
}
