// Package config reads the PBFT_ environment variables that configure both commands
// (cmd/replica and cmd/gateway) and turns them into the settings of the packages that
// do the work. Names and defaults are the ones DESIGN.md lists; operators and the
// Kubernetes manifests rely on them.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/nats-io/nats.go"

	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/trace"
)

// ErrInvalid reports a setting that cannot work.
var ErrInvalid = errors.New("config: invalid setting")

// Settings is every PBFT_ variable.
type Settings struct {
	NodeID             string        `envconfig:"NODE_ID"`
	NodeIDs            []string      `envconfig:"NODE_IDS"`
	NATSURL            string        `envconfig:"NATS_URL"`
	NATSUser           string        `envconfig:"NATS_USER"`
	NATSPasswordFile   string        `envconfig:"NATS_PASSWORD_FILE"`
	Cluster            string        `envconfig:"CLUSTER" default:"pbft"`
	DataDir            string        `envconfig:"DATA_DIR"`
	CheckpointInterval uint64        `envconfig:"CHECKPOINT_INTERVAL" default:"128"`
	LogWindow          uint64        `envconfig:"LOG_WINDOW" default:"256"`
	BatchMax           int           `envconfig:"BATCH_MAX" default:"64"`
	BatchTimeout       time.Duration `envconfig:"BATCH_TIMEOUT" default:"500us"`
	ViewChangeTimeout  time.Duration `envconfig:"VIEW_CHANGE_TIMEOUT" default:"500ms"`
	StatusInterval     time.Duration `envconfig:"STATUS_INTERVAL" default:"100ms"`
	Tick               time.Duration `envconfig:"TICK" default:"10ms"`
	RequestTimeout     time.Duration `envconfig:"REQUEST_TIMEOUT" default:"4s"`
	EmbeddedMaxPayload int           `envconfig:"EMBEDDED_MAX_PAYLOAD" default:"8388608"`
	HTTPAddr           string        `envconfig:"HTTP_ADDR"`
	KeysDir            string        `envconfig:"KEYS_DIR"`
	ClientID           string        `envconfig:"CLIENT_ID" default:"gateway"`
	Fault              string        `envconfig:"FAULT" default:"none"`
	LogLevel           string        `envconfig:"LOG_LEVEL" default:"info"`
	Trace              trace.Switch  `envconfig:"TRACE" default:"off"`
	Pprof              trace.Switch  `envconfig:"PPROF" default:"off"`
}

// Default returns the settings with every default applied and nothing read from the
// environment.
func Default() Settings {
	var s Settings
	_ = envconfig.Process("pbft_unused_prefix_for_defaults", &s)
	return s
}

// Load reads the PBFT_ variables.
func Load() (Settings, error) {
	var s Settings
	if err := envconfig.Process("PBFT", &s); err != nil {
		return s, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return s, s.Validate()
}

// Validate checks each setting and the relations between them.
func (s Settings) Validate() error {
	switch {
	case s.Tick <= 0:
		return fmt.Errorf("%w: PBFT_TICK must be positive", ErrInvalid)
	case s.ViewChangeTimeout < s.Tick:
		return fmt.Errorf("%w: PBFT_VIEW_CHANGE_TIMEOUT %v is shorter than a tick (%v)", ErrInvalid, s.ViewChangeTimeout, s.Tick)
	case s.StatusInterval < s.Tick:
		return fmt.Errorf("%w: PBFT_STATUS_INTERVAL %v is shorter than a tick (%v)", ErrInvalid, s.StatusInterval, s.Tick)
	case s.EmbeddedMaxPayload < 64<<10 || s.EmbeddedMaxPayload > 64<<20:
		return fmt.Errorf("%w: PBFT_EMBEDDED_MAX_PAYLOAD %d: want 64 KiB to 64 MiB", ErrInvalid, s.EmbeddedMaxPayload)
	case s.BatchTimeout < 0:
		return fmt.Errorf("%w: PBFT_BATCH_TIMEOUT must not be negative", ErrInvalid)
	case s.RequestTimeout <= 0:
		return fmt.Errorf("%w: PBFT_REQUEST_TIMEOUT must be positive", ErrInvalid)
	case strings.ContainsAny(s.Cluster, ".*> ") || s.Cluster == "":
		return fmt.Errorf("%w: PBFT_CLUSTER %q must be one NATS subject token", ErrInvalid, s.Cluster)
	}
	if _, err := pbft.ParseFault(s.Fault); err != nil {
		return fmt.Errorf("%w: PBFT_FAULT: %v", ErrInvalid, err)
	}
	if _, err := ParseLevel(s.LogLevel); err != nil {
		return err
	}
	p := s.Protocol()
	p.N, p.App = 1, nopApp{}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}

// NATSOptions are the connection options the settings ask for: NATS credentials as
// PBFT_NATS_USER and a password read from PBFT_NATS_PASSWORD_FILE (a mounted Secret), so
// that the password appears in no URL, environment or log.
func (s Settings) NATSOptions() ([]nats.Option, error) {
	if s.NATSPasswordFile == "" && s.NATSUser == "" {
		return nil, nil
	}
	if s.NATSUser == "" || s.NATSPasswordFile == "" {
		return nil, fmt.Errorf("%w: PBFT_NATS_USER and PBFT_NATS_PASSWORD_FILE go together", ErrInvalid)
	}
	b, err := os.ReadFile(s.NATSPasswordFile)
	if err != nil {
		return nil, fmt.Errorf("%w: PBFT_NATS_PASSWORD_FILE: %v", ErrInvalid, err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return nil, fmt.Errorf("%w: PBFT_NATS_PASSWORD_FILE %s is empty", ErrInvalid, s.NATSPasswordFile)
	}
	return []nats.Option{nats.UserInfo(s.NATSUser, pw)}, nil
}

// Protocol returns the protocol settings (without ID, N and App).
func (s Settings) Protocol() pbft.Config {
	p := pbft.DefaultConfig()
	p.CheckpointInterval = s.CheckpointInterval
	p.LogWindow = s.LogWindow
	p.BatchMax = s.BatchMax
	p.ViewChangeTicks = ticks(s.ViewChangeTimeout, s.Tick)
	p.StatusTicks = ticks(s.StatusInterval, s.Tick)
	return p
}

func ticks(d, tick time.Duration) int {
	n := int(d / tick)
	if n < 1 {
		n = 1
	}
	return n
}

// ParseLevel turns PBFT_LOG_LEVEL into a slog level.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("%w: PBFT_LOG_LEVEL %q: %v", ErrInvalid, s, err)
	}
	return l, nil
}

type nopApp struct{}

func (nopApp) Execute([]byte) []byte { return nil }
func (nopApp) Snapshot() []byte      { return nil }
func (nopApp) Restore([]byte) error  { return nil }
