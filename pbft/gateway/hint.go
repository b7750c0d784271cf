package gateway

import (
	"time"

	"github.com/pbft-nats/pbft/bus"
)

// noReplies is the timeout error of a request nobody answered in time: against external
// replicas it says what was waited for and what to check, since the usual causes are
// replicas not running, on another NATS, or under other ids than PBFT_NODE_IDS says.
func (s *Service) noReplies(what string, asked []string) *ProtoError {
	if s.backend.InProcess() {
		return protoErr(CodeTimeout, "%s from %v within %v", what, asked, s.settings.RequestTimeout)
	}
	ids, _ := s.members()
	return protoErr(CodeTimeout,
		"%s from %v within %v: are the replicas running and connected to %s? is PBFT_NODE_IDS (%v) the cluster's membership?",
		what, asked, s.settings.RequestTimeout.Round(time.Millisecond), bus.RedactURLs(s.settings.NATSURL), ids)
}
