package poll

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestUntilReturnsWhenDone(t *testing.T) {
	calls := 0
	err := Until(context.Background(), time.Millisecond, func() (bool, error) { calls++; return calls == 3, nil })
	if err != nil || calls != 3 {
		t.Fatalf("err %v after %d calls, want nil after 3", err, calls)
	}
}

func TestUntilStopsOnConditionError(t *testing.T) {
	boom := errors.New("boom")
	calls := 0
	err := Until(context.Background(), time.Millisecond, func() (bool, error) { calls++; return false, boom })
	if !errors.Is(err, boom) || calls != 1 {
		t.Fatalf("err %v after %d calls, want boom after 1", err, calls)
	}
}

func TestUntilEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := Until(ctx, time.Millisecond, func() (bool, error) {
		calls++
		if calls == 2 {
			cancel()
		}
		return false, nil
	})
	if !errors.Is(err, context.Canceled) || calls != 2 {
		t.Fatalf("err %v after %d calls, want context.Canceled after 2", err, calls)
	}
}

func TestWithinSaysHowLongItWaited(t *testing.T) {
	err := Within(30*time.Millisecond, time.Millisecond, func() (bool, error) { return false, nil })
	if err == nil || err.Error() != "not done after 30ms" {
		t.Fatalf("err %v, want not done after 30ms", err)
	}
}

// fakeT records Fatalf instead of stopping the test.
type fakeT struct{ failed string }

func (f *fakeT) Helper()                           {}
func (f *fakeT) Fatalf(format string, args ...any) { f.failed = fmt.Sprintf(format, args...) }

func TestEventually(t *testing.T) {
	var ok fakeT
	n := 0
	Eventually(&ok, time.Second, "third check", func() bool { n++; return n == 3 })
	if ok.failed != "" || n != 3 {
		t.Fatalf("failed %q after %d checks", ok.failed, n)
	}
	var never fakeT
	Eventually(&never, 30*time.Millisecond, "never", func() bool { return false })
	if !strings.HasPrefix(never.failed, "never: not within 30ms") {
		t.Fatalf("failure %q", never.failed)
	}
}
