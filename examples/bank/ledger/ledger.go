// Package ledger is the bank of examples/bank: a deterministic state machine of accounts
// (a pbft.Application) and the encoding of its operations. Operations are one line of
// text, words separated by one space, amounts in whole units as decimal integers:
//
//	open ACCOUNT           -> "ok"
//	deposit ACCOUNT N      -> "ok"   (N > 0; money enters the bank)
//	transfer FROM TO N     -> "ok"   (N > 0, FROM != TO; refused if FROM has less than N)
//	balance ACCOUNT        -> the balance, e.g. "150" (reads only)
//
// Anything else, or an operation the state refuses, gives a result starting with
// "error: " and changes nothing, the same on every replica. Money only enters by deposit
// and only moves by transfer, so the sum of the balances always equals the sum of the
// deposits (Ledger.Totals).
package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// A Ledger is not safe for concurrent use: the replica calls it from one goroutine.
type Ledger struct {
	balances map[string]uint64
	deposits uint64 // the sum of all deposits ever made
}

// New returns an empty ledger.
func New() *Ledger { return &Ledger{balances: map[string]uint64{}} }

// maxName bounds an account name, so that no operation makes the state grow by more.
const maxName = 64

// Open, Deposit, Transfer and Balance encode the operations.
func Open(account string) []byte { return []byte("open " + account) }

// Deposit encodes a deposit of amount into account.
func Deposit(account string, amount uint64) []byte {
	return fmt.Appendf(nil, "deposit %s %d", account, amount)
}

// Transfer encodes a transfer of amount from one account to another.
func Transfer(from, to string, amount uint64) []byte {
	return fmt.Appendf(nil, "transfer %s %s %d", from, to, amount)
}

// Balance encodes the read of account's balance.
func Balance(account string) []byte { return []byte("balance " + account) }

// ParseBalance reads the result of a balance operation.
func ParseBalance(result []byte) (uint64, error) {
	if bytes.HasPrefix(result, []byte("error: ")) {
		return 0, errors.New(string(result))
	}
	return strconv.ParseUint(string(result), 10, 64)
}

// IsReadOnly says whether op only reads the state (balance), which Execute then leaves as
// it was: the replica may answer it on the read-only path (pbft.ReadOnlyClassifier).
func (l *Ledger) IsReadOnly(op []byte) bool { return bytes.HasPrefix(op, []byte("balance ")) }

// Execute applies one operation; see the package documentation.
func (l *Ledger) Execute(op []byte) []byte {
	words := strings.Split(string(op), " ")
	for _, w := range words[1:] {
		if !validWord(w) {
			return []byte("error: malformed operation")
		}
	}
	switch {
	case words[0] == "open" && len(words) == 2:
		if _, ok := l.balances[words[1]]; ok {
			return []byte("error: account exists")
		}
		l.balances[words[1]] = 0
		return []byte("ok")
	case words[0] == "deposit" && len(words) == 3:
		n, err := amount(words[2])
		if err != nil {
			return []byte("error: " + err.Error())
		}
		b, ok := l.balances[words[1]]
		switch {
		case !ok:
			return []byte("error: no account " + words[1])
		case b > math.MaxUint64-n || l.deposits > math.MaxUint64-n:
			return []byte("error: amount too large")
		}
		l.balances[words[1]] = b + n
		l.deposits += n
		return []byte("ok")
	case words[0] == "transfer" && len(words) == 4:
		return l.transfer(words[1], words[2], words[3])
	case words[0] == "balance" && len(words) == 2:
		b, ok := l.balances[words[1]]
		if !ok {
			return []byte("error: no account " + words[1])
		}
		return strconv.AppendUint(nil, b, 10)
	}
	return []byte("error: unknown operation (open, deposit, transfer, balance)")
}

func (l *Ledger) transfer(from, to, amt string) []byte {
	n, err := amount(amt)
	if err != nil {
		return []byte("error: " + err.Error())
	}
	fb, okFrom := l.balances[from]
	_, okTo := l.balances[to]
	switch {
	case !okFrom:
		return []byte("error: no account " + from)
	case !okTo:
		return []byte("error: no account " + to)
	case from == to:
		return []byte("error: transfer to the same account")
	case fb < n:
		return []byte("error: insufficient funds")
	}
	// No overflow: the receiver's balance plus n is at most the sum of all balances,
	// which equals the deposits, a uint64.
	l.balances[from] -= n
	l.balances[to] += n
	return []byte("ok")
}

// Totals returns the sum of the balances and the sum of the deposits: the invariant is
// that they are equal.
func (l *Ledger) Totals() (balances, deposits uint64) {
	for _, b := range l.balances {
		balances += b
	}
	return balances, l.deposits
}

// amount parses a positive amount, in the one canonical spelling (no sign, no leading
// zero), so that equal operations are equal bytes.
func amount(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 || strconv.FormatUint(n, 10) != s {
		return 0, errors.New("amount must be a positive integer")
	}
	return n, nil
}

// validWord is an account name or amount: 1 to maxName letters, digits, '-' or '_'.
func validWord(w string) bool {
	if len(w) == 0 || len(w) > maxName {
		return false
	}
	for _, c := range []byte(w) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
		if !ok {
			return false
		}
	}
	return true
}
