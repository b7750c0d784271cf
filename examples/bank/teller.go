package main

import (
	"context"
	"errors"

	"github.com/pbft-nats/pbft/pbft/client"
)

// teller is one client of the bank: it numbers its operations in order and sends each
// until it has f+1 matching replies. A retry keeps the operation's number, and replicas
// execute a (client, number) once, so an operation happens exactly once however often a
// timeout made the teller send it.
type teller struct {
	c    *client.Client
	name string
	next uint64
}

func (t *teller) do(ctx context.Context, op []byte) (string, error) {
	t.next++
	for {
		res, err := t.c.Invoke(ctx, client.Request{Client: t.name, Timestamp: t.next, Op: op})
		if err == nil {
			return string(res.Value), nil
		}
		if !errors.Is(err, client.ErrTimeout) || ctx.Err() != nil {
			return "", err
		}
	}
}
