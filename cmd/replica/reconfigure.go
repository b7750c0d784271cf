package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/client"
	"github.com/pbft-nats/pbft/pbft/config"
)

const reconfigureUsage = `usage: replica reconfigure [-timeout D] ID...

Changes the membership of the running replicas to ID... (the whole new list, in rotation
order: the first is the new configuration's first primary; an argument may also be a
comma-separated list, as PBFT_NODE_IDS, so a Kubernetes Job can pass $(VARIABLE)). It signs the reconfiguration
as the administrator PBFT_ADMIN_ID (its key <id>.key in PBFT_KEYS_DIR, where the new
replicas' <id>.pub must be too), sends it to the replicas over PBFT_NATS_URL and waits
until a quorum of the membership it ends agree on the result, then until the new
members run it. Joining replicas must already run, started with PBFT_JOIN=on and
PBFT_NODE_IDS set to the new list. PBFT_NODE_IDS names replicas of the membership in
force (the command asks them which configuration that is). It prints the new
configuration; it exits 1 when the replicas refuse (PBFT_ADMIN_ID is not their
administrator, another reconfiguration is under way) or do not answer in time.
`

// reconfigure is `replica reconfigure`.
func reconfigure(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("reconfigure", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long (NATS, the replicas' answers)")
	if len(args) > 0 && args[0] == "help" {
		args = []string{"-h"}
	}
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, reconfigureUsage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return nil
	}
	if err != nil {
		return fmt.Errorf("reconfigure: %v\n%s", err, reconfigureUsage)
	}
	next := splitIDs(fs.Args())
	if err := pbft.ValidateMembers(next); err != nil {
		return fmt.Errorf("reconfigure: the new membership: %v\n%s", err, reconfigureUsage)
	}
	for _, id := range next { // before anything connects: ids travel in NATS subjects
		if err := bus.CheckToken("replica id", id); err != nil {
			return fmt.Errorf("reconfigure: the new membership: %v: a replica id must be one NATS subject token (no '.', '*', '>', whitespace or control characters)", err)
		}
	}
	s, err := config.Load()
	if err != nil {
		return fmt.Errorf("reconfigure: %w", err)
	}
	switch {
	case s.AdminID == "":
		return errors.New("reconfigure: PBFT_ADMIN_ID is not set: the reconfiguration is signed as the administrator")
	case s.NATSURL == "" || len(s.NodeIDs) == 0 || s.KeysDir == "":
		return errors.New("reconfigure: PBFT_NATS_URL, PBFT_NODE_IDS and PBFT_KEYS_DIR are required")
	}
	natsOpts, err := s.NATSOptions()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	c, err := client.Connect(ctx, client.Options{NATSURL: s.NATSURL, Cluster: s.Cluster, ID: s.AdminID, KeysDir: s.KeysDir,
		Replicas: s.NodeIDs, Timeout: min(s.RequestTimeout, *timeout), ViewChangeTimeout: s.ViewChangeTimeout, NATSOptions: natsOpts})
	if err != nil {
		return fmt.Errorf("reconfigure: %w", err)
	}
	defer c.Close()
	// A fresh timestamp: a repeated command is a new request (a stale one is refused).
	req := client.Request{Client: s.AdminID, Timestamp: uint64(time.Now().UnixNano())}
	res, err := c.Reconfigure(ctx, req, next)
	if err != nil {
		return fmt.Errorf("reconfigure: %w", err)
	}
	m := res.Membership
	fmt.Fprintf(stdout, "configuration %d: %s (primary %s), ordered at %d, agreed by %d replicas; running it: %s\n",
		m.Conf, strings.Join(m.Members, ","), m.Members[0], res.Seq, res.Replies, strings.Join(res.Installed, ","))
	if len(res.Installed) < len(m.Members) {
		return fmt.Errorf("reconfigure: executed, but only %d of the %d members reported running configuration %d in time", len(res.Installed), len(m.Members), m.Conf)
	}
	return nil
}

// splitIDs splits each argument at its commas: "a,b c" is a, b, c. An empty id stays,
// for ValidateMembers to refuse.
func splitIDs(args []string) []string {
	var ids []string
	for _, a := range args {
		ids = append(ids, strings.Split(a, ",")...)
	}
	return ids
}
