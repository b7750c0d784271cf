package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft/client"
	"github.com/pbft-nats/pbft/pbft/config"
)

// send is `bank send OP...`: one operation to running replicas, as the client
// PBFT_CLIENT_ID (key in PBFT_KEYS_DIR) of the replicas PBFT_NODE_IDS on PBFT_NATS_URL;
// it prints the result f+1 replicas agree on. The operation's number is the time, so
// that each run's is above the last (replicas answer an old number from their cache).
func send(ctx context.Context, s config.Settings, words []string, w io.Writer) error {
	if len(words) == 0 {
		return errors.New("usage: bank send OPERATION (e.g. bank send deposit alice 100)")
	}
	if s.NATSURL == "" || len(s.NodeIDs) == 0 {
		return errors.New("PBFT_NATS_URL and PBFT_NODE_IDS are required")
	}
	keys, err := auth.LoadKeyring(s.KeysDir, s.ClientID, s.NodeIDs, uint64(time.Now().UnixNano()))
	if err != nil {
		return err
	}
	opts, err := s.NATSOptions()
	if err != nil {
		return err
	}
	nc, err := bus.Connect(s.NATSURL, s.ClientID, opts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	c, err := client.New(client.Config{Keys: keys, Replicas: s.NodeIDs, Timeout: s.RequestTimeout,
		Retransmit: client.RetransmitAfter(s.ViewChangeTimeout),
		Connect: func(h bus.Handler) (bus.Transport, error) {
			return bus.NewNATS(nc, s.Cluster, s.ClientID, bus.RoleClient, h)
		}})
	if err != nil {
		return err
	}
	defer c.Close()
	op := []byte(strings.Join(words, " "))
	res, err := c.Invoke(ctx, client.Request{Client: s.ClientID, Timestamp: uint64(time.Now().UnixNano()), Op: op})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(res.Value))
	return err
}
