// Package gateway is the client front end of the cluster: the handler of the JSON-line
// client protocol (docs/protocol.md). Service answers one message at a time (Handle); Stdio
// runs it over standard input and output, NewHTTPHandler over HTTP. It reaches the
// replicas only through a Backend: a PBFT client (pbft/client) and a settle policy
// (pbft/gateway/settle) that it asks once per answer how long to wait and for whom. The
// backends are External (replicas behind a NATS server) and the in-process cluster of
// pbft/gateway/embedded, which this package does not import (docs/architecture.md).
package gateway
