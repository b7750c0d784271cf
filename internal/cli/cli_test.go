package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/pbft-nats/pbft/pbft/config"
)

func TestHelpAndVersionArguments(t *testing.T) {
	for _, a := range []string{"-h", "-help", "--help", "help"} {
		if !IsHelp(a) || IsVersion(a) {
			t.Errorf("%q: help %v, version %v", a, IsHelp(a), IsVersion(a))
		}
	}
	for _, a := range []string{"version", "-version", "--version"} {
		if !IsVersion(a) || IsHelp(a) {
			t.Errorf("%q: help %v, version %v", a, IsHelp(a), IsVersion(a))
		}
	}
	for _, a := range []string{"", "-x", "helps", "bench", "-v"} {
		if IsHelp(a) || IsVersion(a) {
			t.Errorf("%q taken for help or version", a)
		}
	}
}

func TestVersionNamesTheModule(t *testing.T) {
	var b bytes.Buffer
	WriteVersion(&b, "gateway")
	first, _, _ := strings.Cut(b.String(), "\n")
	// A test binary's main module is this one; its version is "(devel)" or empty here.
	if !strings.HasPrefix(first, "gateway github.com/pbft-nats/pbft") || !strings.Contains(b.String(), "go       go1.") {
		t.Fatalf("version:\n%s", b.String())
	}
}

func TestEnvironmentListsEverySetting(t *testing.T) {
	var b bytes.Buffer
	WriteEnvironment(&b)
	for _, v := range config.Variables() {
		if !strings.Contains(b.String(), "  "+v.Name+" ") {
			t.Errorf("%s missing from:\n%s", v.Name, b.String())
		}
	}
}
