// Package gateway is the client front end of the cluster: it turns the JSON-line client
// protocol (docs/protocol.md) into PBFT requests and queries on the bus and collects the
// replicas' replies. Service holds the protocol logic; Stdio runs it over standard input
// and output; Embedded runs a whole cluster in-process for stdio mode and tests.
package gateway
