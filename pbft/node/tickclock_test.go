package node

import (
	"testing"
	"time"
)

// The clock makes up the ticks a starved loop missed, one per period on time, and never
// more than maxTicksAtOnce after a long stop.
func TestTickClockFollowsTheWallClock(t *testing.T) {
	start := time.Unix(1000, 0)
	c := newTickClock(10*time.Millisecond, start)
	steps := []struct {
		at   time.Duration
		want int
	}{
		{10 * time.Millisecond, 1},
		{20 * time.Millisecond, 1},
		{25 * time.Millisecond, 1}, // early: the ticker fired, one tick, counted ahead
		{95 * time.Millisecond, 6}, // 30..90 ms: six periods passed since the last counted
		{100 * time.Millisecond, 1},
		{10 * time.Second, maxTicksAtOnce},
		{10*time.Second + 10*time.Millisecond, 1},
	}
	total := 0
	for _, s := range steps {
		got := c.due(start.Add(s.at))
		if got != s.want {
			t.Fatalf("at %v: %d ticks due, want %d", s.at, got, s.want)
		}
		total += got
	}
	if total != 11+maxTicksAtOnce {
		t.Fatalf("%d ticks in all, want %d", total, 11+maxTicksAtOnce)
	}
}
