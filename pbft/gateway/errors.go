package gateway

import (
	"errors"
	"fmt"

	"github.com/pbft-nats/pbft/pbft/client"
)

// Error codes of the client protocol (Maelstrom's).
const (
	CodeTimeout          = 0
	CodeNotSupported     = 10
	CodeUnavailable      = 11
	CodeMalformed        = 12
	CodeKeyNotFound      = 20 // the HTTP facade's GET of a key that is not set
	CodePreconditionFail = 22
)

// ProtoError is an error answer of the client protocol.
type ProtoError struct {
	Code int
	Text string
	// conflict marks error 22 for a request id used with another operation (not a
	// stale one, which stdio may still answer from its own record).
	conflict bool
}

func (e *ProtoError) Error() string { return fmt.Sprintf("error %d: %s", e.Code, e.Text) }

func protoErr(code int, format string, args ...any) *ProtoError {
	return &ProtoError{Code: code, Text: fmt.Sprintf(format, args...)}
}

// requestError is a failed request a of the PBFT client as the client protocol reports it.
func (s *Service) requestError(err error, a RequestArgs) *ProtoError {
	var ce *client.Error
	errors.As(err, &ce)
	switch {
	case errors.Is(err, client.ErrStale):
		return protoErr(CodePreconditionFail, "%v; send a new msg_id", err)
	case errors.Is(err, client.ErrConflict):
		return conflictError(a.Client, a.Timestamp, ce.Seq)
	case errors.Is(err, client.ErrInFlight):
		return inFlightConflict(a)
	case errors.Is(err, client.ErrTooLarge):
		return protoErr(CodeMalformed, "%v", err)
	case errors.Is(err, client.ErrUnavailable):
		return protoErr(CodeUnavailable, "%v", err)
	case ce != nil && ce.What != "":
		return s.noReplies(ce.What, ce.Asked)
	}
	return protoErr(CodeTimeout, "%v", err)
}
