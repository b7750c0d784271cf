//go:build !pbft_timeline

package bus

import "github.com/nats-io/nats.go"

// Stamp records that a message of kind, to or from peer, reached stage now; it does
// nothing without the pbft_timeline build tag (timeline.go).
func Stamp(stage byte, kind, peer string) {}

// timelineOptions are the connection options the timeline needs: none without the tag.
func timelineOptions() []nats.Option { return nil }
