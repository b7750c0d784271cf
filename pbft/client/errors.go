package client

import (
	"context"
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
	// ErrConflict: a quorum of replicas agree the request's id was used before with
	// another operation (ordered at Error.Seq); nothing was ordered or executed.
	ErrConflict = errors.New("client: request id used with another operation")
	// ErrInFlight: the client waits for the replies to another operation under the same
	// id; the two could not be told apart, so this one is not sent.
	ErrInFlight = errors.New("client: request id in flight with another operation")
)

// Error is a failed request: one of the kinds above, and what exactly went wrong.
type Error struct {
	Kind error
	Text string
	// A timeout's What was awaited from which replicas (Asked), in cluster order.
	What  string
	Asked []string
	// Seq is where a conflicting id was ordered.
	Seq uint64
	// Cause is the caller's context error when the caller gave up first.
	Cause error
}

func (e *Error) Error() string { return e.Text }

// Unwrap is the kind, and the cause if any: errors.Is(err, context.Canceled) tells a
// request its caller cancelled.
func (e *Error) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Kind, e.Cause}
	}
	return []error{e.Kind}
}

// givenUp is e, or when the caller's ctx ended first, e saying so.
func givenUp(ctx context.Context, e *Error) *Error {
	if err := ctx.Err(); err != nil {
		e.Cause = err
		e.Text = fmt.Sprintf("%s (the caller gave up: %v)", e.Text, err)
	}
	return e
}

func fail(kind error, format string, args ...any) *Error {
	return &Error{Kind: kind, Text: fmt.Sprintf(format, args...)}
}

// timeout is an ErrTimeout for what, awaited from asked for the request timeout.
func (c *Client) timeout(what string, asked []string) *Error {
	return &Error{Kind: ErrTimeout, What: what, Asked: asked,
		Text: fmt.Sprintf("%s from %v within %v", what, asked, c.cfg.Timeout)}
}

// inClusterOrder lists the replicas in asked in the order of the cluster's ids.
func (c *Client) inClusterOrder(asked map[string]bool) []string {
	var out []string
	for _, id := range c.replicas() {
		if asked[id] {
			out = append(out, id)
		}
	}
	return out
}
