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
	CodePreconditionFail = 22
)

// ProtoError is an error answer of the client protocol.
type ProtoError struct {
	Code int
	Text string
}

func (e *ProtoError) Error() string { return fmt.Sprintf("error %d: %s", e.Code, e.Text) }

func protoErr(code int, format string, args ...any) *ProtoError {
	return &ProtoError{Code: code, Text: fmt.Sprintf(format, args...)}
}

// fromClient is a failed request of the PBFT client as the client protocol reports it.
func fromClient(err error) *ProtoError {
	switch {
	case errors.Is(err, client.ErrStale):
		return protoErr(CodePreconditionFail, "%v; send a new msg_id", err)
	case errors.Is(err, client.ErrTooLarge):
		return protoErr(CodeMalformed, "%v", err)
	case errors.Is(err, client.ErrUnavailable):
		return protoErr(CodeUnavailable, "%v", err)
	}
	return protoErr(CodeTimeout, "%v", err)
}
