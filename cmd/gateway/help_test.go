package main

import (
	"strings"
	"testing"

	"github.com/pbft-nats/pbft/internal/cli/clitest"
	"github.com/pbft-nats/pbft/pbft/config"
)

// runCommand runs the built gateway with args (stdin empty) and returns its exit code,
// stdout and stderr.
func runCommand(t *testing.T, bin string, env []string, args ...string) (int, string, string) {
	t.Helper()
	return clitest.Run(t, bin, env, args...)
}

// Help, on the command and on its subcommands, exits 0 with the usage on stdout and
// every PBFT_ variable with its default, even when the environment holds a bad value.
func TestHelpExitsZeroAndListsEveryVariable(t *testing.T) {
	bin := gatewayBinary(t)
	badEnv := []string{"PBFT_TICK=not-a-duration"}
	for _, args := range [][]string{
		{"-h"}, {"-help"}, {"--help"}, {"help"},
		{"bench", "-h"}, {"bench", "--help"}, {"bench", "help"},
		{"trace", "-h"}, {"trace", "--help"}, {"trace", "help"},
	} {
		code, out, errOut := runCommand(t, bin, badEnv, args...)
		if code != 0 {
			t.Errorf("gateway %v: exit %d, want 0; stderr: %s", args, code, errOut)
			continue
		}
		want := "usage: gateway"
		if len(args) == 2 {
			want += " " + args[0]
		}
		if !strings.HasPrefix(out, want) {
			t.Errorf("gateway %v: stdout does not start with %q:\n%s", args, want, out)
		}
		for _, v := range config.Variables() {
			if !strings.Contains(out, "  "+v.Name+" ") || v.Default != "" && !strings.Contains(out, " "+v.Default+" ") {
				t.Errorf("gateway %v: no line for %s (default %q)", args, v.Name, v.Default)
			}
		}
	}
	_, out, _ := runCommand(t, bin, nil, "-h")
	for _, sub := range []string{"bench", "trace", "version", "help"} {
		if !strings.Contains(out, "\n  "+sub+" ") {
			t.Errorf("gateway -h does not list the subcommand %s", sub)
		}
	}
}

func TestVersionAndUnknownCommands(t *testing.T) {
	bin := gatewayBinary(t)
	for _, arg := range []string{"version", "-version", "--version"} {
		code, out, errOut := runCommand(t, bin, nil, arg)
		if code != 0 || !strings.HasPrefix(out, "gateway github.com/pbft-nats/pbft ") || !strings.Contains(out, "go1.") {
			t.Errorf("gateway %s: exit %d, stdout %q, stderr %q", arg, code, out, errOut)
		}
	}
	for _, args := range [][]string{{"bogus"}, {"bench", "-bogus"}, {"trace", "-bogus"}} {
		code, _, errOut := runCommand(t, bin, nil, args...)
		if code != 1 || !strings.Contains(errOut, "bogus") {
			t.Errorf("gateway %v: exit %d, stderr %q; want 1 and an error naming the argument", args, code, errOut)
		}
	}
}
