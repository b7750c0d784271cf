package gateway

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/pbft/config"
	"github.com/pbft-nats/pbft/pbft/gateway/embedded"
	"github.com/pbft-nats/pbft/tests/golden"
)

func testSettings() config.Settings {
	s := config.Default()
	s.ViewChangeTimeout = 300 * time.Millisecond
	return s
}

// runStdio runs one input through the stdio engine over a fresh embedded cluster.
func runStdio(t *testing.T, input []byte) string {
	t.Helper()
	s := testSettings().ForStdio()
	logger := slog.New(slog.DiscardHandler)
	svc := NewService(s, logger, func(ids []string) (Backend, error) { return embedded.Start(ids, s, logger) })
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
			if diff := golden.Diff(string(want), []byte(got)); diff != "" {
				t.Fatalf("%s\nwhole output:\n%s", diff, got)
			}
		})
	}
}
