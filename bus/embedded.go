package bus

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// EmbeddedOptions configures StartEmbedded.
type EmbeddedOptions struct {
	// Port is the client TCP port on 127.0.0.1: 0 means no listener at all
	// (in-process connections only), -1 a random free port (see
	// Server.ClientURL), >0 that port.
	Port int
	// ReadyTimeout bounds the wait for the server to accept connections;
	// 0 means 5s.
	ReadyTimeout time.Duration
	// MaxPayload is the largest message the server takes; 0 means EmbeddedMaxPayload.
	MaxPayload int32
}

// EmbeddedMaxPayload is the embedded server's message limit unless told otherwise: room
// for operations of up to 4 MiB (the gateway allows half of it), as in deploy/k8s.
const EmbeddedMaxPayload = 8 << 20

// StartEmbedded starts a NATS server in this process, silent and without
// signal handlers, and waits until it accepts connections. The caller stops
// it with Shutdown (and WaitForShutdown, to wait for it).
func StartEmbedded(opts EmbeddedOptions) (*server.Server, error) {
	sopts := &server.Options{
		NoLog:      true,
		NoSigs:     true,
		MaxPayload: opts.MaxPayload,
	}
	if sopts.MaxPayload == 0 {
		sopts.MaxPayload = EmbeddedMaxPayload
	}
	switch {
	case opts.Port == 0:
		sopts.DontListen = true
	case opts.Port == -1:
		sopts.Host, sopts.Port = "127.0.0.1", server.RANDOM_PORT
	case opts.Port > 0:
		sopts.Host, sopts.Port = "127.0.0.1", opts.Port
	default:
		return nil, fmt.Errorf("bus: invalid embedded server port %d", opts.Port)
	}
	wait := opts.ReadyTimeout
	if wait <= 0 {
		wait = 5 * time.Second
	}
	s, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("bus: embedded server: %w", err)
	}
	s.Start() // returns once its goroutines are started
	if !s.ReadyForConnections(wait) {
		s.Shutdown()
		return nil, errors.New("bus: embedded server not ready for connections after " + wait.String())
	}
	return s, nil
}

// ConnectInProcess connects to s through an in-memory pipe, bypassing TCP,
// with the same options as Connect. name identifies the connection in the
// server's monitoring. Extra options are applied after the defaults.
func ConnectInProcess(s *server.Server, name string, extra ...nats.Option) (*nats.Conn, error) {
	if s == nil {
		return nil, errors.New("bus: nil server")
	}
	opts := append(connOptions(name), nats.InProcessServer(s))
	nc, err := nats.Connect("", append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("bus: connect in-process %s: %w", name, err)
	}
	return nc, nil
}

// Connect connects to the NATS server(s) at url (comma-separated URLs are
// accepted). Extra options (credentials, TLS) are applied after the
// defaults.
func Connect(url, name string, extra ...nats.Option) (*nats.Conn, error) {
	nc, err := nats.Connect(url, append(connOptions(name), extra...)...)
	if err != nil {
		// The URL may carry credentials: neither it nor the error may show them.
		return nil, fmt.Errorf("bus: connect %s: %s", RedactURLs(url), strings.ReplaceAll(err.Error(), url, RedactURLs(url)))
	}
	return nc, nil
}

// connOptions are the defaults for connections used by NATSTransport.
func connOptions(name string) []nats.Option {
	return append([]nats.Option{
		nats.Name(name),
		// A replica must not receive its own broadcasts.
		nats.NoEcho(),
		// PBFT tolerates lost messages but not a replica that gave up on
		// the bus: keep reconnecting, quickly, for as long as it runs.
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		// nats.go's default error handler prints async errors (e.g. slow
		// consumer) to stderr; NATSTransport.Stats also counts the drops.
	}, timelineOptions()...)
}
