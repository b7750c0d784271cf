// Package cli is what the commands (cmd/gateway, cmd/replica, cmd/campaign) share on
// their command line: which arguments ask for help or the version, the version text
// from the build information, and the environment section of their help, generated
// from config.Settings so that it cannot drift from what the commands read.
package cli

import (
	"fmt"
	"io"
	"runtime/debug"

	"github.com/pbft-nats/pbft/pbft/config"
)

// IsHelp reports whether arg asks for help: -h, -help, --help or help.
func IsHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// IsVersion reports whether arg asks for the version: version, -version or --version.
func IsVersion(arg string) bool {
	switch arg {
	case "version", "-version", "--version":
		return true
	}
	return false
}

// WriteVersion writes the command's module, version and build information.
func WriteVersion(w io.Writer, command string) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintf(w, "%s: no build information (built without module support)\n", command)
		return
	}
	fmt.Fprintf(w, "%s %s %s\n", command, bi.Main.Path, bi.Main.Version)
	fmt.Fprintf(w, "  go       %s\n", bi.GoVersion)
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision", "vcs.time", "vcs.modified", "GOOS", "GOARCH", "-race":
			fmt.Fprintf(w, "  %-8s %s\n", s.Key, s.Value)
		}
	}
}

// WriteEnvironment writes the help's section on the PBFT_ variables.
func WriteEnvironment(w io.Writer) {
	fmt.Fprintln(w, "\nEnvironment (only PBFT_ variables are read; a bare name such as TICK is not):")
	_ = config.WriteVariables(w)
}
