// Package integration tests the PBFT cluster end to end with real processes, started
// through internal/topology: it builds cmd/replica, cmd/gateway and a nats-server from
// the module cache, starts a NATS server and one replica process per node on 127.0.0.1
// for each cluster, and drives cmd/gateway in stdio
// mode against those external replicas (PBFT_NATS_URL set). It checks that the golden
// cases of testdata/cases hold against external replicas (except the fault-injection
// ones, which are embedded-only), and that killing the primary's process while a client
// keeps sending costs a view change but no answer and no executed request.
//
// The package holds tests only; run them with go test ./tests/integration/.
package integration
