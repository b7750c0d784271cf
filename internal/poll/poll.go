// Package poll waits for a condition by checking it at an interval until a deadline:
// the one polling loop of the process harness (internal/topology) and of the tests that
// watch real processes, where no event says when the condition starts to hold.
package poll

import (
	"context"
	"fmt"
	"time"
)

// Interval is how often Eventually checks its condition.
const Interval = 20 * time.Millisecond

// Until calls cond every interval until it reports done or an error, or ctx ends; it
// returns cond's error or ctx's.
func Until(ctx context.Context, interval time.Duration, cond func() (bool, error)) error {
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		timer.Reset(interval)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
	}
}

// Within is Until bounded by timeout instead of a context; the error after the timeout
// says how long it waited.
func Within(timeout, interval time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := Until(ctx, interval, cond)
	if err != nil && err == ctx.Err() {
		return fmt.Errorf("not done after %v", timeout)
	}
	return err
}

// TB is the part of testing.TB that Eventually needs (this package does not import
// testing, so the harness built on it can run outside tests).
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Eventually checks cond every Interval until it holds, and fails t with what after
// timeout.
func Eventually(t TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := Within(timeout, Interval, func() (bool, error) { return cond(), nil }); err != nil {
		t.Fatalf("%s: not within %v", what, timeout)
	}
}
