package nodehttp

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbft-nats/pbft/pbft/node"
)

// Replica is one replica whose metrics a Collector exports.
type Replica struct {
	Source  Source
	Options Options
}

// Collector exports replicas' node.MetricsSnapshot and node.Stats as Prometheus metrics
// labelled by replica, read when scraped. One collector serves a replica process, or
// every replica of the gateway's embedded cluster.
type Collector struct {
	replicas func() []Replica

	ready, connected, view, viewActive, viewChanges, lastExecuted, stable, executed, caughtUp, peers *prometheus.Desc
	in, out, rejected, latency, batch, inflight                                                      *prometheus.Desc
	walUnits, walSyncs, walRewrites, walSyncSeconds, walRewriteSeconds                               *prometheus.Desc
}

// NewCollector returns a collector of the replicas listed by replicas at each scrape.
func NewCollector(replicas func() []Replica) *Collector {
	one := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"replica"}, nil)
	}
	two := func(name, help, label string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"replica", label}, nil)
	}
	return &Collector{
		replicas:          replicas,
		ready:             one("pbft_replica_ready", "1 when /readyz answers 200."),
		connected:         one("pbft_replica_nats_connected", "1 while the NATS connection is up."),
		view:              one("pbft_replica_view", "The replica's current view."),
		viewActive:        one("pbft_replica_view_active", "1 when the replica is active in its view, 0 while it changes view."),
		viewChanges:       one("pbft_replica_view_changes_total", "View changes the replica completed."),
		lastExecuted:      one("pbft_replica_last_executed", "Sequence number of the last executed batch."),
		stable:            one("pbft_replica_stable_checkpoint", "Sequence number of the last stable checkpoint (the low watermark)."),
		executed:          one("pbft_replica_executed_batches_total", "Batches executed by this process."),
		caughtUp:          one("pbft_replica_caught_up_total", "Sequence numbers executed by catch-up from peers' commits instead of the normal case."),
		peers:             one("pbft_replica_peers_heard", "Other replicas this process has stepped an authenticated message from."),
		in:                two("pbft_messages_in_total", "Protocol messages stepped by the replica, by kind.", "kind"),
		out:               two("pbft_messages_out_total", "Protocol messages sent by the replica, by kind.", "kind"),
		rejected:          two("pbft_messages_rejected_total", "Messages dropped by the replica, by reason.", "reason"),
		latency:           one("pbft_request_latency_seconds", "Time from a request's first step into this replica to its execution."),
		batch:             one("pbft_batch_size", "Requests per executed batch."),
		inflight:          one("pbft_primary_batches_in_flight", "Batches the primary had ordered and not executed each time it ordered more."),
		walUnits:          one("pbft_wal_units_total", "Readies whose records the durable log's writer wrote."),
		walSyncs:          one("pbft_wal_syncs_total", "Syncs of records appended to the durable log."),
		walRewrites:       one("pbft_wal_rewrites_total", "Compactions: the durable log replaced whole."),
		walSyncSeconds:    one("pbft_wal_sync_seconds_total", "Time the durable log's writer spent in syncs of appended records."),
		walRewriteSeconds: one("pbft_wal_rewrite_seconds_total", "Time the durable log's writer spent replacing the log (compactions)."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.ready, c.connected, c.view, c.viewActive, c.viewChanges, c.lastExecuted,
		c.stable, c.executed, c.caughtUp, c.peers, c.in, c.out, c.rejected, c.latency, c.batch, c.inflight,
		c.walUnits, c.walSyncs, c.walRewrites, c.walSyncSeconds, c.walRewriteSeconds} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.replicas() {
		o := r.Options.withDefaults()
		m, st := r.Source.Metrics(), r.Source.Stats()
		id := m.ID
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, id)
		}
		counter := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, id)
		}
		connected := o.connected()
		ready, _ := Ready(m, connected, o.StaleAfter, o.Now())
		gauge(c.ready, boolFloat(ready))
		gauge(c.connected, boolFloat(connected))
		gauge(c.view, float64(m.View))
		gauge(c.viewActive, boolFloat(m.ViewActive))
		counter(c.viewChanges, float64(m.ViewChanges))
		gauge(c.lastExecuted, float64(m.LastExecuted))
		gauge(c.stable, float64(m.StableCheckpoint))
		counter(c.executed, float64(m.ExecutedBatches))
		counter(c.caughtUp, float64(m.CaughtUp))
		gauge(c.peers, float64(m.HeardFrom))
		counter(c.walUnits, float64(m.WAL.Units))
		counter(c.walSyncs, float64(m.WAL.Syncs))
		counter(c.walRewrites, float64(m.WAL.Rewrites))
		counter(c.walSyncSeconds, m.WAL.SyncSeconds)
		counter(c.walRewriteSeconds, m.WAL.RewriteSeconds)
		for d, values := range map[*prometheus.Desc]map[string]uint64{c.in: st.In, c.out: st.Out, c.rejected: st.Rejected} {
			for k, v := range values {
				ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), id, k)
			}
		}
		ch <- constHistogram(c.latency, m.Latency, id)
		ch <- constHistogram(c.batch, m.BatchSize, id)
		ch <- constHistogram(c.inflight, m.InFlight, id)
	}
}

// constHistogram turns the node's cumulative histogram into Prometheus'.
func constHistogram(d *prometheus.Desc, h node.Histogram, id string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	for i, b := range h.Bounds {
		buckets[b] = h.Counts[i]
	}
	return prometheus.MustNewConstHistogram(d, h.Count, h.Sum, buckets, id)
}

func boolFloat(v bool) float64 {
	if v {
		return 1
	}
	return 0
}
