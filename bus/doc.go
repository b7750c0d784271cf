// Package bus moves opaque byte payloads between the endpoints of a PBFT
// cluster: the replicas and the clients (gateways) that submit requests.
//
// It knows nothing about PBFT messages. A payload is addressed by a kind
// (e.g. "prepare") and either broadcast to every replica except the sender or
// sent point-to-point to one endpoint. The sender's id travels in the
// subject and is NOT authenticated here: signatures or MACs are a later
// layer's job, and a Byzantine peer can claim any id.
//
// Delivery is best effort, like the network PBFT assumes: a message to an
// unknown or closed endpoint is dropped silently, and nothing is retried.
// What the package does guarantee, for both implementations:
//
//   - messages from one sender to one receiver arrive in the order sent,
//     per path: point-to-point messages among themselves, broadcasts among
//     themselves (whatever their kinds). Over NATS a broadcast and a
//     point-to-point message may overtake each other, because they arrive
//     on two subscriptions; see NATSTransport;
//   - a Handler is never called concurrently with itself, nor while
//     holding any lock that Send or Broadcast take, so it may call them;
//   - after Close returns, the Handler is not running and is not called again.
//
// Two implementations share the Transport interface: NATSTransport (over a
// nats.go connection; see StartEmbedded and ConnectInProcess for a
// single-process cluster, Connect for an external server) and MemTransport
// (an in-memory Hub for tests, with a send-time filter for fault injection).
//
// Subjects are "pbft.<cluster>.<kind>.<sender>" for broadcasts and
// "pbft.<cluster>.to.<receiver>.<kind>.<sender>" for point-to-point
// messages; see subjects.go.
//
// Built with the pbft_timeline tag, the package also stamps each step of each
// message (Stamp, and the socket reads and writes of its connections) for
// the latency timeline of tests/topology; see timeline.go. Without the tag
// Stamp does nothing.
package bus
