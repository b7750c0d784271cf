// Package topology holds end-to-end tests on a production-like topology started by
// internal/topology: three clustered nats-server processes with deploy/k8s/nats/auth.conf's
// users and permissions, four cmd/replica processes (replica-0 ... replica-3) and
// cmd/gateway in network mode. Run with:
//
//	go test -race ./tests/topology/
package topology
