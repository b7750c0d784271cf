package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pbft-nats/pbft/internal/cli/clitest"
	"github.com/pbft-nats/pbft/pbft/config"
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

func runMain(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	return clitest.Run(t, os.Args[0], append(env, "PBFT_TEST_RUN_MAIN=1"), args...)
}

func TestHelpVersionAndUnknownCommands(t *testing.T) {
	badEnv := []string{"PBFT_TICK=not-a-duration"}
	for _, arg := range []string{"-h", "-help", "--help", "help"} {
		code, out, errOut := runMain(t, badEnv, arg)
		if code != 0 || !strings.HasPrefix(out, "usage: replica") || !strings.Contains(out, "\n  keygen ") {
			t.Errorf("replica %s: exit %d, stderr %q, stdout:\n%s", arg, code, errOut, out)
		}
		for _, v := range config.Variables() {
			if !strings.Contains(out, "  "+v.Name+" ") {
				t.Errorf("replica %s: no line for %s", arg, v.Name)
			}
		}
	}
	for _, args := range [][]string{{"keygen", "-h"}, {"keygen", "--help"}, {"keygen", "help"}} {
		code, out, errOut := runMain(t, nil, args...)
		if code != 0 || !strings.HasPrefix(out, "usage: replica keygen") || !strings.Contains(out, "-force") {
			t.Errorf("replica %v: exit %d, stderr %q, stdout:\n%s", args, code, errOut, out)
		}
	}
	for _, arg := range []string{"version", "-version", "--version"} {
		code, out, errOut := runMain(t, nil, arg)
		if code != 0 || !strings.HasPrefix(out, "replica github.com/pbft-nats/pbft") {
			t.Errorf("replica %s: exit %d, stdout %q, stderr %q", arg, code, out, errOut)
		}
	}
	for _, args := range [][]string{{"bogus"}, {"keygen", "-bogus", "n1"}, {"keygen"}} {
		if code, _, errOut := runMain(t, nil, args...); code != 1 || !strings.Contains(errOut, "replica: ") {
			t.Errorf("replica %v: exit %d, stderr %q; want 1 and an error", args, code, errOut)
		}
	}
}

func readAll(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	return files
}

// keygen says what it wrote, refuses to replace any existing key (writing nothing at
// all then), and replaces keys with -force.
func TestKeygenReportsAndNeverReplacesWithoutForce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	var out bytes.Buffer
	if err := keygen([]string{"-dir", dir, "n1", "n2"}, &out); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"n1", "n2"} {
		key, pub := filepath.Join(dir, id+".key"), filepath.Join(dir, id+".pub")
		if !strings.Contains(out.String(), "wrote "+key+" (private, mode 0600) and "+pub+"\n") {
			t.Errorf("output does not name %s and %s:\n%s", key, pub, out.String())
		}
		if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v", key, st, err)
		}
	}
	before := readAll(t, dir)

	out.Reset()
	err := keygen([]string{"-dir", dir, "n3", "n2"}, &out)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "n2.key")) || !strings.Contains(err.Error(), "-force") {
		t.Fatalf("keygen over an existing key: err = %v, want a refusal naming n2.key and -force", err)
	}
	if after := readAll(t, dir); len(after) != len(before) || after["n2.key"] != before["n2.key"] || out.Len() != 0 {
		t.Fatalf("a refused keygen changed the directory (%d files, was %d) or printed %q", len(after), len(before), out.String())
	}

	out.Reset()
	if err := keygen([]string{"-force", "-dir", dir, "n2"}, &out); err != nil {
		t.Fatal(err)
	}
	after := readAll(t, dir)
	if after["n2.key"] == before["n2.key"] || after["n2.pub"] == before["n2.pub"] || after["n1.key"] != before["n1.key"] {
		t.Fatal("-force did not replace n2's keys, or touched n1's")
	}
	if !strings.Contains(out.String(), "replaced "+filepath.Join(dir, "n2.key")) {
		t.Errorf("-force output does not say what it replaced:\n%s", out.String())
	}
	if err := keygen([]string{"-dir", dir, "../escape"}, &out); err == nil {
		t.Error("an id with a path separator was accepted")
	}
}
