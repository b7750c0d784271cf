package client

import (
	"errors"
	"fmt"
)

// The kinds of failed request; errors.Is tells them apart.
var (
	// ErrTimeout: no outcome within the request timeout (or the caller's deadline).
	ErrTimeout = errors.New("client: timed out")
	// ErrStale: the request is older than the replicas' reply cache remembers; it was
	// refused, never executed twice.
	ErrStale = errors.New("client: stale request")
	// ErrTooLarge: the operation is larger than the bus can carry in a pre-prepare.
	ErrTooLarge = errors.New("client: operation too large")
	// ErrUnavailable: the request could not be sent.
	ErrUnavailable = errors.New("client: cannot send")
)

// Error is a failed request: one of the kinds above, and what exactly went wrong.
type Error struct {
	Kind error
	Text string
}

func (e *Error) Error() string { return e.Text }

// Unwrap is the kind.
func (e *Error) Unwrap() error { return e.Kind }

func fail(kind error, format string, args ...any) *Error {
	return &Error{Kind: kind, Text: fmt.Sprintf(format, args...)}
}
