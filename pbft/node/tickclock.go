package node

import "time"

// maxTicksAtOnce bounds the ticks made up after one wake-up, so a process stopped for
// long (SIGSTOP, a suspended VM) does not burst through a whole view change's worth of
// timers in one loop turn.
const maxTicksAtOnce = 50

// tickClock turns the ticker's wake-ups into protocol ticks that follow the wall clock.
// A time.Ticker drops ticks for a slow receiver: on a machine loaded by other work the
// replica's loop was woken every 60-70 ms instead of every 10 ms, so a 500 ms view-change
// timeout took over 3 s and a gateway's 4 s request timeout ran out first. Each wake-up
// therefore counts the tick periods that have passed since the last tick it counted.
type tickClock struct {
	tick time.Duration
	last time.Time
}

func newTickClock(tick time.Duration, now time.Time) tickClock {
	return tickClock{tick: tick, last: now}
}

// due returns how many ticks have passed by now (at least one: the ticker fired) and
// counts them as done.
func (c *tickClock) due(now time.Time) int {
	k := int(now.Sub(c.last) / c.tick)
	switch {
	case k < 1:
		k = 1
		c.last = c.last.Add(c.tick)
	case k > maxTicksAtOnce:
		k = maxTicksAtOnce
		c.last = now
	default:
		c.last = c.last.Add(time.Duration(k) * c.tick)
	}
	return k
}
