// Package config reads the PBFT_ environment variables that configure both commands
// (cmd/replica and cmd/gateway) and turns them into the settings of the packages that
// do the work. Names and defaults are the README's configuration table; operators and
// the Kubernetes manifests rely on them.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/nats-io/nats.go"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/trace"
)

// ErrInvalid reports a setting that cannot work.
var ErrInvalid = errors.New("config: invalid setting")

// maxGCHeapMB bounds PBFT_GC_HEAP_MB (1 TiB): a value past it is a typo, not a heap.
const maxGCHeapMB = 1 << 20

// maxStdioWindow bounds PBFT_STDIO_WINDOW. More requests in flight than a primary orders
// in a client's retransmission delay (a quarter of the view-change timeout; about 10,000
// a second on a 2-core machine) would be retransmitted to every replica, and a backup
// asked then may find one already behind a later request of its client and refuse it as
// stale.
const maxStdioWindow = 256

// Settings is every PBFT_ variable: the struct is the one definition of their names
// (envconfig), defaults and meanings (desc), which Load, Default and the commands' help
// (WriteVariables) all read, so they cannot drift apart. Each envconfig tag is the full
// name and Load passes no prefix, so envconfig's key and its fallback name are the same
// PBFT_ name: a bare DATA_DIR or TICK is never read.
type Settings struct {
	NodeID             string        `envconfig:"PBFT_NODE_ID" desc:"this replica's id (required by replica)"`
	NodeIDs            []string      `envconfig:"PBFT_NODE_IDS" desc:"comma-separated replica ids; the primary of view v is entry v mod n (required by replica; stdio takes them from init)"`
	NATSURL            string        `envconfig:"PBFT_NATS_URL" desc:"NATS server to connect to; empty: the gateway starts an embedded server and cluster (required by replica)"`
	NATSUser           string        `envconfig:"PBFT_NATS_USER" desc:"NATS user name; goes with PBFT_NATS_PASSWORD_FILE"`
	NATSPasswordFile   string        `envconfig:"PBFT_NATS_PASSWORD_FILE" desc:"file holding the NATS password (a mounted Secret)"`
	Cluster            string        `envconfig:"PBFT_CLUSTER" default:"pbft" desc:"subject namespace, so that clusters can share a NATS"`
	DataDir            string        `envconfig:"PBFT_DATA_DIR" desc:"the replica's durable log; empty: memory only"`
	CheckpointInterval uint64        `envconfig:"PBFT_CHECKPOINT_INTERVAL" default:"128" desc:"K: sequence numbers between checkpoints"`
	LogWindow          uint64        `envconfig:"PBFT_LOG_WINDOW" default:"256" desc:"L: high minus low watermark"`
	BatchMax           int           `envconfig:"PBFT_BATCH_MAX" default:"0" desc:"requests per pre-prepare at most; 0: 64, except on stdio over the embedded cluster, where it is 1 so that each request gets a sequence number of its own"`
	BatchTimeout       time.Duration `envconfig:"PBFT_BATCH_TIMEOUT" default:"500us" desc:"how long a primary waits for a batch to fill while batches are in flight or clients it just answered are coming back; 0: a batch per burst of input"`
	ViewChangeTimeout  time.Duration `envconfig:"PBFT_VIEW_CHANGE_TIMEOUT" default:"500ms" desc:"a backup's timer before it suspects the primary (doubles per failed view)"`
	StatusInterval     time.Duration `envconfig:"PBFT_STATUS_INTERVAL" default:"100ms" desc:"period of the status messages that drive retransmission"`
	Tick               time.Duration `envconfig:"PBFT_TICK" default:"10ms" desc:"protocol clock tick"`
	RequestTimeout     time.Duration `envconfig:"PBFT_REQUEST_TIMEOUT" default:"4s" desc:"how long the gateway waits for an answer"`
	StdioWindow        int           `envconfig:"PBFT_STDIO_WINDOW" default:"256" desc:"stdio over the embedded cluster: pbft_request lines in flight at once (answers stay in input order); 1: one line at a time"`
	EmbeddedMaxPayload int           `envconfig:"PBFT_EMBEDDED_MAX_PAYLOAD" default:"8388608" desc:"the embedded NATS server's message limit in bytes (operations may be half of it)"`
	HTTPAddr           string        `envconfig:"PBFT_HTTP_ADDR" desc:"gateway: network API; replica: /healthz, /readyz, /metrics; empty: off"`
	KeysDir            string        `envconfig:"PBFT_KEYS_DIR" desc:"<id>.pub of every replica and client and this process's <id>.key (embedded cluster: generated)"`
	ClientID           string        `envconfig:"PBFT_CLIENT_ID" default:"gateway" desc:"the gateway's identity on the bus (its key is <id>.key)"`
	AdminID            string        `envconfig:"PBFT_ADMIN_ID" desc:"the administrator: the one identity whose reconfigurations replicas execute (its <id>.pub in PBFT_KEYS_DIR); replica reconfigure signs as it, a gateway whose PBFT_CLIENT_ID it is may reconfigure on stdio; empty: nobody (the embedded cluster: its gateway)"`
	Join               trace.Switch  `envconfig:"PBFT_JOIN" default:"off" desc:"replica: on: join the running cluster as a member of PBFT_NODE_IDS (the membership it will join): not ready until the administrator's reconfiguration to it makes it a member"`
	InitialIDs         []string      `envconfig:"PBFT_INITIAL_IDS" desc:"replica: the ids the cluster started with; a replica among them starts from them (its data dir says which configuration is in force), any other joins PBFT_NODE_IDS as with PBFT_JOIN=on (one setting for every pod of a StatefulSet)"`
	Fault              string        `envconfig:"PBFT_FAULT" default:"none" desc:"a replica's built-in behaviour: none, crash, silent, equivocate"`
	LogLevel           string        `envconfig:"PBFT_LOG_LEVEL" default:"info" desc:"slog level: debug, info, warn, error"`
	Trace              trace.Switch  `envconfig:"PBFT_TRACE" default:"off" desc:"replicas publish protocol events for the live page and gateway trace (on/off)"`
	MaxProcs           int           `envconfig:"PBFT_MAX_PROCS" default:"0" desc:"replica: threads running its Go code at once (Go's GOMAXPROCS); 0: Go's default (the CPUs, or the container's CPU limit); 1 suits replicas that share cores: the protocol runs on one goroutine, and waking a second thread for each message costs more there than it gives"`
	GCHeapMB           int           `envconfig:"PBFT_GC_HEAP_MB" default:"64" desc:"replica: below this heap size (MiB) garbage collection runs less often than Go's default (GOGC raised up to 500 after each collection; at most this heap, or 6 times the live one): a replica's live heap is a few MiB, and at Go's default it collects every few MiB allocated, whose background work costs the cores it shares; 0: Go's default"`
	Pprof              trace.Switch  `envconfig:"PBFT_PPROF" default:"off" desc:"on: serve net/http/pprof under /debug/pprof/ on PBFT_HTTP_ADDR (gateway and replica)"`
}

// Default returns the settings with every default applied and nothing read from the
// environment.
func Default() Settings {
	var s Settings
	if err := applyDefaults(&s); err != nil {
		panic(err) // a default tag that does not parse: a bug caught by every test
	}
	return s
}

// Load reads the PBFT_ variables, and no others: a variable's bare name (TICK,
// DATA_DIR) in the environment changes nothing.
func Load() (Settings, error) {
	var s Settings
	if err := envconfig.Process("", &s); err != nil {
		return s, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := s.resolveInitial(); err != nil {
		return s, err
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
	case s.BatchMax < 0:
		return fmt.Errorf("%w: PBFT_BATCH_MAX %d: want 0 (the mode's default) or more", ErrInvalid, s.BatchMax)
	case s.GCHeapMB < 0 || s.GCHeapMB > maxGCHeapMB:
		return fmt.Errorf("%w: PBFT_GC_HEAP_MB %d: want 0 (Go's default) to %d", ErrInvalid, s.GCHeapMB, maxGCHeapMB)
	case s.MaxProcs < 0:
		return fmt.Errorf("%w: PBFT_MAX_PROCS %d: want 0 (Go's default) or more", ErrInvalid, s.MaxProcs)
	case s.StdioWindow < 1 || s.StdioWindow > maxStdioWindow:
		return fmt.Errorf("%w: PBFT_STDIO_WINDOW %d: want 1 to %d", ErrInvalid, s.StdioWindow, maxStdioWindow)
	case s.RequestTimeout <= 0:
		return fmt.Errorf("%w: PBFT_REQUEST_TIMEOUT must be positive", ErrInvalid)
	case bool(s.Join) && s.AdminID == "":
		return fmt.Errorf("%w: PBFT_JOIN=on needs PBFT_ADMIN_ID: a joiner waits for the administrator's reconfiguration", ErrInvalid)
	case s.AdminID != "" && (s.AdminID == s.NodeID || slices.Contains(s.NodeIDs, s.AdminID)):
		return fmt.Errorf("%w: PBFT_ADMIN_ID %q is a replica's id: the administrator is an identity of its own", ErrInvalid, s.AdminID)
	}
	if err := s.checkTokens(); err != nil {
		return err
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

// checkTokens refuses a cluster name or id that is not one NATS subject token: each
// travels in subjects (pbft.<cluster>.<kind>.<sender>), and NATS auth permissions name
// them, so a '.', '*', '>', whitespace or control character would address others.
func (s Settings) checkTokens() error {
	type token struct{ name, v string }
	toks := []token{{"PBFT_CLUSTER", s.Cluster}}
	for _, t := range []token{{"PBFT_NODE_ID", s.NodeID}, {"PBFT_CLIENT_ID", s.ClientID}, {"PBFT_ADMIN_ID", s.AdminID}} {
		if t.v != "" { // unset: each command says whether it needs it
			toks = append(toks, t)
		}
	}
	for _, id := range s.NodeIDs {
		toks = append(toks, token{"PBFT_NODE_IDS entry", id})
	}
	for _, id := range s.InitialIDs {
		toks = append(toks, token{"PBFT_INITIAL_IDS entry", id})
	}
	for _, t := range toks {
		if err := bus.CheckToken(t.name, t.v); err != nil {
			return fmt.Errorf("%w: %v: must be one NATS subject token (no '.', '*', '>', whitespace or control characters)", ErrInvalid, err)
		}
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

// ForStdio returns the settings of stdio mode. Over the embedded cluster, unless
// PBFT_BATCH_MAX says otherwise, the primary orders each request alone: a pbft_request's
// answer names the sequence number its request was ordered at, and with many lines in
// flight (PBFT_STDIO_WINDOW) requests would otherwise share one. Ordering them one per
// pre-prepare costs little there, since the replicas bundle what they send to each
// other in one go.
func (s Settings) ForStdio() Settings {
	if s.NATSURL == "" && s.BatchMax == 0 {
		s.BatchMax = 1
	}
	return s
}

// Protocol returns the protocol settings (without ID, N and App).
func (s Settings) Protocol() pbft.Config {
	p := pbft.DefaultConfig()
	p.CheckpointInterval = s.CheckpointInterval
	p.LogWindow = s.LogWindow
	if s.BatchMax > 0 {
		p.BatchMax = s.BatchMax
	}
	p.ViewChangeTicks = ticks(s.ViewChangeTimeout, s.Tick)
	p.StatusTicks = ticks(s.StatusInterval, s.Tick)
	p.Admin = s.AdminID
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
