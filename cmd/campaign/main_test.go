package main

import (
	"os"
	"strings"
	"testing"

	"github.com/pbft-nats/pbft/internal/cli/clitest"
)

// TestMain runs the command itself when a test re-executes this binary with
// PBFT_TEST_RUN_MAIN=1, so that tests see real exit codes without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("PBFT_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runMain(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return clitest.Run(t, os.Args[0], []string{"PBFT_TEST_RUN_MAIN=1"}, args...)
}

// Help exits 0 (2 means "could not run"); a bad flag or argument exits 2 with the usage.
func TestHelpVersionAndBadArguments(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help", "help"} {
		code, out, errOut := runMain(t, arg)
		if code != 0 || !strings.HasPrefix(out, "usage: campaign") || !strings.Contains(out, "-duration") || !strings.Contains(out, "Exit status") {
			t.Errorf("campaign %s: exit %d, stderr %q, stdout:\n%s", arg, code, errOut, out)
		}
	}
	for _, arg := range []string{"version", "-version", "--version"} {
		code, out, errOut := runMain(t, arg)
		if code != 0 || !strings.HasPrefix(out, "campaign github.com/pbft-nats/pbft") {
			t.Errorf("campaign %s: exit %d, stdout %q, stderr %q", arg, code, out, errOut)
		}
	}
	for _, args := range [][]string{{"-bogus"}, {"-duration", "1s", "extra"}} {
		code, out, errOut := runMain(t, args...)
		if code != 2 || out != "" || !strings.Contains(errOut, "campaign: ") {
			t.Errorf("campaign %v: exit %d, stdout %q, stderr %q; want 2 and an error on stderr", args, code, out, errOut)
		}
	}
}
