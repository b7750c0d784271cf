package golden

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCase writes dir/name.in and dir/name.out.
func writeCase(t *testing.T, dir, name, in, out string) string {
	t.Helper()
	p := filepath.Join(dir, name+".in")
	if err := os.WriteFile(p, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".out"), []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// The runner itself, with cat standing in for a gateway that echoes its input: a
// matching case passes, a differing one fails with the difference, a process that
// does not exit after stdin closes fails, and with stdin held open what was printed
// is compared.
func TestRunnerAgainstStandIns(t *testing.T) {
	cat := "/bin/cat"
	if _, err := os.Stat(cat); err != nil {
		t.Fatalf("the stand-in gateway: %v", err)
	}
	dir := t.TempDir()
	const line = `{"src": "n1", "dest": "c1", "body": {"type": "error", "text": "x", "msg_id": 0}}` + "\n"
	same := writeCase(t, dir, "a-same", line, strings.Replace(line, `"x"`, `"…"`, 1))
	other := writeCase(t, dir, "b-other", line, "something else\n")

	ins, err := Cases(dir)
	if err != nil || len(ins) != 2 || ins[0] != same || ins[1] != other {
		t.Fatalf("Cases(%s) = %v, %v", dir, ins, err)
	}
	var report bytes.Buffer
	failed, err := Run(&report, cat, ins, RunOptions{Repeat: 3, Timeout: 5 * time.Second})
	if err != nil || failed != 3 {
		t.Fatalf("Run: %d failed (want the 3 runs of b-other), %v\n%s", failed, err, report.String())
	}
	if got := report.String(); !strings.Contains(got, "FAIL b-other.in (run 3): first difference at line 1") ||
		strings.Contains(got, "a-same") || !strings.HasSuffix(got, "3 passed, 3 failed\n") {
		t.Fatalf("report:\n%s", got)
	}

	held := RunOptions{Hold: 200 * time.Millisecond}
	if diff, _, err := RunCase(cat, same, held); diff != "" || err != nil {
		t.Errorf("stdin held open: %q %v", diff, err)
	}
	if diff, _, err := RunCase("/bin/true", same, held); !strings.Contains(diff, "while stdin was still open") || err != nil {
		t.Errorf("a process that exits with stdin open: %q %v", diff, err)
	}

	hang := filepath.Join(dir, "hang")
	if err := os.WriteFile(hang, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	diff, _, err := RunCase(hang, same, RunOptions{Timeout: 300 * time.Millisecond})
	if !strings.Contains(diff, "did not exit within 300ms") || err != nil || time.Since(start) > 10*time.Second {
		t.Errorf("a process that never exits: %q %v after %v", diff, err, time.Since(start))
	}
	if _, err := Cases(filepath.Join(dir, "none")); err == nil {
		t.Error("Cases of a missing path: no error")
	}
}
