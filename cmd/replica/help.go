package main

import (
	"fmt"
	"io"

	"github.com/pbft-nats/pbft/internal/cli"
)

// usage is `replica -h`: the subcommands and every PBFT_ variable.
func usage(w io.Writer) {
	fmt.Fprint(w, `usage: replica [command]

One PBFT replica. Without a command it runs against the NATS server PBFT_NATS_URL as
PBFT_NODE_ID among PBFT_NODE_IDS, with its key from PBFT_KEYS_DIR (all four required),
until SIGINT or SIGTERM. With PBFT_HTTP_ADDR it serves /healthz, /readyz and /metrics.

  keygen       write key pairs: replica keygen [-force] -dir DIR ID... (replica keygen -h)
  reconfigure  change the membership, as PBFT_ADMIN_ID: replica reconfigure ID... (replica reconfigure -h)
  version      the module version and build information (also -version, --version)
  help         this text (also -h, -help, --help)
`)
	cli.WriteEnvironment(w)
}
