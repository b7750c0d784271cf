package main

import (
	"fmt"
	"io"

	"github.com/pbft-nats/pbft/internal/cli"
	"github.com/pbft-nats/pbft/pbft/config"
)

// usage is `gateway -h`: the modes, the subcommands and every PBFT_ variable.
func usage(w io.Writer) {
	fmt.Fprint(w, `usage: gateway [command]

The client front end of a PBFT cluster.

  (no command)  stdio mode: JSON lines on stdin, one reply line each on stdout
                (docs/protocol.md). Without PBFT_NATS_URL it starts an embedded NATS
                server and one replica per node id of init; with it, it talks to
                replicas run by cmd/replica. With PBFT_HTTP_ADDR it serves the network
                API (and the live page) there instead of reading stdin.
  bench         closed-loop load against the cluster (gateway bench -h)
  trace         the cluster's rounds as a text sequence diagram (gateway trace -h)
  version       the module version and build information (also -version, --version)
  help          this text (also -h, -help, --help)
`)
	cli.WriteEnvironment(w)
}

// subArgs turns a subcommand's `help` argument into the -h its flags understand.
func subArgs(args []string) []string {
	if len(args) > 0 && cli.IsHelp(args[0]) {
		return []string{"-h"}
	}
	return args
}

// settingsFor loads the settings, except for a subcommand's help, which works whatever
// the environment holds and shows the defaults.
func settingsFor(sub []string) (config.Settings, error) {
	for _, a := range sub {
		if a == "-h" || a == "-help" || a == "--help" {
			return config.Default(), nil
		}
	}
	return config.Load()
}
