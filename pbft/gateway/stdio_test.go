package gateway

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/pbft/config"
)

// anyString is what a "…" in an expected line stands for: any JSON string.
const anyString = `"(?:[^"\\]|\\.)*"`

// linesMatch compares output line by line; a "…" string in want matches any string.
func linesMatch(want, got string) (bool, string, string) {
	w, g := strings.Split(strings.TrimSuffix(want, "\n"), "\n"), strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a == b {
			continue
		}
		parts := strings.Split(a, `"…"`)
		for j := range parts {
			parts[j] = regexp.QuoteMeta(parts[j])
		}
		if len(parts) == 1 || !regexp.MustCompile("^"+strings.Join(parts, anyString)+"$").MatchString(b) {
			return false, a, b
		}
	}
	return true, "", ""
}

func testSettings() config.Settings {
	s := config.Default()
	s.ViewChangeTimeout = 300 * time.Millisecond
	return s
}

// runStdio runs one input through the stdio engine over a fresh embedded cluster.
func runStdio(t *testing.T, input []byte) string {
	t.Helper()
	s := testSettings()
	logger := slog.New(slog.DiscardHandler)
	svc := NewService(s, logger, func(ids []string) (Backend, error) { return StartEmbedded(ids, s, logger) })
	defer svc.Close()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := NewStdio(svc, logger).Run(ctx, bytes.NewReader(input), &out); err != nil {
		t.Fatalf("Run: %v", err)
	}
	return out.String()
}

// TestGoldenCases runs the shared golden cases and this package's own (faults, view
// changes, other n, requests to backups, init rules) and compares stdout byte for byte.
func TestGoldenCases(t *testing.T) {
	var files []string
	for _, dir := range []string{"../../testdata/cases", "testdata/cases"} {
		m, err := filepath.Glob(filepath.Join(dir, "*.in"))
		if err != nil || len(m) == 0 {
			t.Fatalf("no cases in %s", dir)
		}
		files = append(files, m...)
	}
	for _, in := range files {
		t.Run(strings.TrimSuffix(filepath.Base(in), ".in"), func(t *testing.T) {
			t.Parallel()
			input, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(strings.TrimSuffix(in, ".in") + ".out")
			if err != nil {
				t.Fatal(err)
			}
			got := runStdio(t, input)
			if ok, w, g := linesMatch(string(want), got); !ok {
				t.Fatalf("output differs\nwant: %s\ngot:  %s\nwhole output:\n%s", w, g, got)
			}
		})
	}
}

func TestMatcherRejectsDifferences(t *testing.T) {
	if ok, _, _ := linesMatch(`{"a": "…", "b": 1}`, `{"a": "x\"y", "b": 1}`); !ok {
		t.Fatal("wildcard should match an escaped string")
	}
	if ok, _, _ := linesMatch(`{"a": "…", "b": 1}`, `{"a": "x", "b": 2}`); ok {
		t.Fatal("a different number must not match")
	}
	if ok, _, _ := linesMatch("a\nb\n", "a\n"); ok {
		t.Fatal("a missing line must not match")
	}
}
