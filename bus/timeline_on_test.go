//go:build pbft_timeline

package bus

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// With the tag, stamps reach the file: those made by Stamp and by a stamping connection's
// reads and writes.
func TestTimelineWritesStamps(t *testing.T) {
	dir := t.TempDir()
	if err := StartTimeline(dir); err != nil {
		t.Fatal(err)
	}
	Stamp(StagePublish, "commit", "")
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() {
		buf := make([]byte, 4)
		_, _ = b.Read(buf)
		_, _ = b.Write(buf)
	}()
	c := stampingConn{a}
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	FlushTimeline()
	files, err := filepath.Glob(filepath.Join(dir, "*.tl"))
	if err != nil || len(files) != 1 {
		t.Fatalf("timeline files %v (%v), want one", files, err)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var stages []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 4 {
			t.Fatalf("line %q: want 4 fields", line)
		}
		stages = append(stages, f[1]+" "+f[2]+" "+f[3])
	}
	if got, want := strings.Join(stages, ", "), "P commit -, W - -, R - -"; got != want {
		t.Errorf("stamps %q, want %q", got, want)
	}
}
