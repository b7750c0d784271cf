package gateway

import (
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbft-nats/pbft/pbft/node"
	"github.com/pbft-nats/pbft/pbft/node/nodehttp"
	"github.com/pbft-nats/pbft/pbft/obs"
)

// httpMetrics are the gateway's Prometheus metrics, in a registry of the handler's own
// (package obs): the requests it served, their latency, those in flight, the Go runtime
// and the process, and, for an embedded cluster, its replicas' metrics under the names
// and labels a replica process exports (package nodehttp).
type httpMetrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	inFlight prometheus.Gauge
}

func newHTTPMetrics(svc *Service) *httpMetrics {
	m := &httpMetrics{
		reg: obs.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbft_http_requests_total",
			Help: "HTTP requests served, by route and status code.",
		}, []string{"path", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pbft_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route and outcome (ok, client_error, unavailable, timeout, error).",
			Buckets: node.LatencyBuckets,
		}, []string{"path", "outcome"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pbft_http_requests_in_flight",
			Help: "HTTP requests being answered (the live page's event streams not included).",
		}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.inFlight, nodehttp.NewCollector(func() []nodehttp.Replica {
		return embeddedReplicas(svc)
	}))
	return m
}

// embeddedReplicas lists the replicas of svc's embedded cluster, if it runs one.
func embeddedReplicas(svc *Service) []nodehttp.Replica {
	e, ok := svc.Backend().(*Embedded)
	if !ok || e == nil {
		return nil
	}
	svc.mu.Lock()
	ids := slices.Clone(svc.ids)
	svc.mu.Unlock()
	var out []nodehttp.Replica
	for _, id := range ids {
		if n := e.Node(id); n != nil {
			out = append(out, nodehttp.Replica{Source: n})
		}
	}
	return out
}

// outcome classifies an HTTP status for the latency histogram.
func outcome(code int) string {
	switch {
	case code < 400:
		return "ok"
	case code < 500:
		return "client_error"
	case code == http.StatusServiceUnavailable:
		return "unavailable"
	case code == http.StatusGatewayTimeout:
		return "timeout"
	}
	return "error"
}

// observe records a request of route answered with code after d.
func (m *httpMetrics) observe(route string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(route, outcome(code)).Observe(d.Seconds())
}
