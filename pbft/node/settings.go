package node

import (
	"log/slog"

	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft/config"
)

// FromSettings returns the configuration of the replica id among ids from the PBFT_
// settings, authenticated by keys. It lives here, not in config, so that what reads the
// settings without running a replica (a gateway) does not depend on the driver.
func FromSettings(s config.Settings, id string, ids []string, keys *auth.Keyring, logger *slog.Logger) (Config, error) {
	f, err := ParseFault(s.Fault)
	if err != nil {
		return Config{}, err
	}
	c := Config{ID: id, NodeIDs: ids, Protocol: s.Protocol(), Tick: s.Tick, Fault: f, Keys: keys, Logger: logger,
		Trace: bool(s.Trace), DataDir: s.DataDir, BatchTimeout: s.BatchTimeout, Join: bool(s.Join)}
	return c, c.Validate()
}
