// Package loadgen is the load tool behind `gateway bench`: it drives a PBFT cluster (an
// embedded one, or external replicas behind PBFT_NATS_URL) with closed-loop clients
// through the gateway's Service, measures throughput and latency, and compares them with
// an unreplicated baseline: the same clients against a NATS request/reply echo service.
package loadgen
