//go:build pbft_timeline

package bus

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// stamp is one timeline record.
type stamp struct {
	t     int64
	stage byte
	kind  string
	peer  string
}

var timeline struct {
	mu    sync.Mutex
	on    bool
	recs  []stamp
	spare []stamp

	writeMu sync.Mutex // held while a batch of stamps is written
	w       *bufio.Writer
}

func init() {
	if dir := os.Getenv("PBFT_TIMELINE_DIR"); dir != "" {
		if err := StartTimeline(dir); err != nil {
			fmt.Fprintln(os.Stderr, "bus: timeline:", err)
		}
	}
}

// StartTimeline starts recording stamps and writing them to dir/<pid>.tl every 50 ms,
// one line per stamp: unix nanoseconds, stage, kind, peer ("-" when empty).
// A second call (the tag's init and a test both starting it) keeps the first recording.
func StartTimeline(dir string) error {
	timeline.mu.Lock()
	started := timeline.on
	timeline.mu.Unlock()
	if started {
		return nil
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%d.tl", os.Getpid())))
	if err != nil {
		return err
	}
	timeline.writeMu.Lock()
	timeline.w = bufio.NewWriter(f)
	timeline.writeMu.Unlock()
	timeline.mu.Lock()
	timeline.on = true
	timeline.recs = make([]stamp, 0, 1<<16)
	timeline.mu.Unlock()
	go func() {
		for range time.Tick(50 * time.Millisecond) {
			FlushTimeline()
		}
	}()
	return nil
}

// FlushTimeline writes the stamps recorded so far.
func FlushTimeline() {
	timeline.writeMu.Lock()
	defer timeline.writeMu.Unlock()
	timeline.mu.Lock()
	recs := timeline.recs
	timeline.recs, timeline.spare = timeline.spare[:0], recs
	timeline.mu.Unlock()
	for _, r := range recs {
		fmt.Fprintf(timeline.w, "%d %c %s %s\n", r.t, r.stage, dash(r.kind), dash(r.peer))
	}
	_ = timeline.w.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Stamp records that a message of kind, to or from peer, reached stage now.
func Stamp(stage byte, kind, peer string) {
	t := time.Now().UnixNano()
	timeline.mu.Lock()
	if timeline.on {
		timeline.recs = append(timeline.recs, stamp{t, stage, kind, peer})
	}
	timeline.mu.Unlock()
}

// timelineOptions dial the server through a connection that stamps its reads and writes.
func timelineOptions() []nats.Option {
	return []nats.Option{nats.SetCustomDialer(stampingDialer{})}
}

type stampingDialer struct{}

func (stampingDialer) Dial(network, address string) (net.Conn, error) {
	c, err := (&net.Dialer{Timeout: 2 * time.Second}).Dial(network, address)
	if err != nil {
		return nil, err
	}
	return stampingConn{c}, nil
}

// stampingConn stamps when a read returns bytes and when a write begins.
type stampingConn struct{ net.Conn }

func (c stampingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		Stamp(StageRead, "", "")
	}
	return n, err
}

func (c stampingConn) Write(p []byte) (int, error) {
	Stamp(StageWrite, "", "")
	return c.Conn.Write(p)
}
