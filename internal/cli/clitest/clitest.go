// Package clitest runs a command in tests of the commands (cmd/...): its exit code,
// standard output and standard error, for checks of help, version and bad arguments.
package clitest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"testing"
)

// Run runs bin with args and the test's environment plus env, and returns its exit code,
// standard output and standard error. A command that cannot be started fails the test.
func Run(t testing.TB, bin string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.ExitCode(), out.String(), errOut.String()
	case err != nil:
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return 0, out.String(), errOut.String()
}
