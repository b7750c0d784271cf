package gateway

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
			Buckets: obs.LatencyBuckets,
		}, []string{"path", "outcome"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pbft_http_requests_in_flight",
			Help: "HTTP requests being answered (the live page's event streams not included).",
		}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.inFlight, backendMetrics{svc})
	return m
}

// backendMetrics collects, at each scrape, the metrics of the service's backend if it
// has any: the embedded cluster's replicas, under the names and labels a replica process
// exports. It describes nothing (an unchecked collector): the backend comes with init.
type backendMetrics struct{ svc *Service }

func (backendMetrics) Describe(chan<- *prometheus.Desc) {}

func (m backendMetrics) Collect(ch chan<- prometheus.Metric) {
	if c, ok := m.svc.Backend().(prometheus.Collector); ok {
		c.Collect(ch)
	}
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
