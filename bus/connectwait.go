package bus

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// connectBackoff bounds the wait between attempts to reach NATS: it doubles from
// reconnectBase up to this, so a pod started before NATS connects soon after NATS is up
// without hammering it meanwhile.
const (
	reconnectBase  = 100 * time.Millisecond
	connectBackoff = 5 * time.Second
)

// backoff is the delay before reconnect attempt number attempts (1, 2, ...).
func backoff(attempts int) time.Duration {
	d := reconnectBase
	for i := 1; i < attempts && d < connectBackoff; i++ {
		d *= 2
	}
	return min(d, connectBackoff)
}

// ConnectWaiting is Connect for a process that may start before NATS is reachable (a
// Kubernetes pod): instead of failing, it retries with capped exponential backoff,
// logging each failed attempt, until it is connected or ctx ends. Once connected the
// connection reconnects as Connect's does.
func ConnectWaiting(ctx context.Context, url, name string, logger *slog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	connected := make(chan struct{})
	redacted := RedactURLs(url)
	opts := append([]nats.Option{
		nats.RetryOnFailedConnect(true),
		nats.CustomReconnectDelay(backoff),
		nats.ConnectHandler(func(*nats.Conn) { close(connected) }),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			logger.Warn("NATS not reachable; retrying", "nats", redacted, "err", redactErr(err, url))
		}),
	}, extra...)
	nc, err := Connect(url, name, opts...)
	if err != nil {
		return nil, err
	}
	if nc.IsConnected() {
		return nc, nil
	}
	logger.Info("waiting for NATS", "nats", redacted)
	select {
	case <-connected:
		logger.Info("connected to NATS", "nats", redacted)
		return nc, nil
	case <-ctx.Done():
		nc.Close()
		return nil, fmt.Errorf("bus: gave up waiting for NATS at %s: %w", redacted, ctx.Err())
	}
}

// redactErr is err's text without the credentials url may carry.
func redactErr(err error, url string) string {
	if err == nil {
		return ""
	}
	return strings.ReplaceAll(err.Error(), url, RedactURLs(url))
}
