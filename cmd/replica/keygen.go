package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pbft-nats/pbft/bus/auth"
)

const keygenUsage = `usage: replica keygen [-force] [-dir DIR] ID...

Writes an Ed25519 key pair for each id, replicas and gateways alike: DIR/<id>.key (the
private key, mode 0600) and DIR/<id>.pub. An existing key is never replaced without
-force: replacing a replica's key locks it out until every peer has the new .pub.
`

// keygen is `replica keygen`: it checks every id and existing file before it writes
// anything, so a refused run leaves the directory as it was.
func keygen(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dir := fs.String("dir", ".", "directory to write <id>.key and <id>.pub into")
	force := fs.Bool("force", false, "replace existing keys")
	if len(args) > 0 && args[0] == "help" {
		args = []string{"-h"}
	}
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, keygenUsage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return nil
	}
	if err != nil {
		return fmt.Errorf("keygen: %v\n%s", err, keygenUsage)
	}
	if fs.NArg() == 0 {
		return errors.New("keygen: no id given\n" + keygenUsage)
	}
	var existing []string
	for _, id := range fs.Args() {
		key, pub, err := auth.KeyPairFiles(*dir, id)
		if err != nil {
			return err
		}
		for _, p := range []string{key, pub} {
			if _, err := os.Lstat(p); err == nil {
				existing = append(existing, p)
			}
		}
	}
	if len(existing) > 0 && !*force {
		return fmt.Errorf("keygen: refusing to replace %s (-force replaces existing keys); nothing written", strings.Join(existing, ", "))
	}
	for _, id := range fs.Args() {
		if err := auth.WriteKeyPair(*dir, id); err != nil {
			return err
		}
		key, pub, _ := auth.KeyPairFiles(*dir, id)
		fmt.Fprintf(stdout, "wrote %s (private, mode 0600) and %s\n", key, pub)
	}
	if len(existing) > 0 {
		fmt.Fprintf(stdout, "replaced %s\n", strings.Join(existing, ", "))
	}
	return nil
}
