package node

import (
	"fmt"

	"github.com/pbft-nats/pbft/pbft"
)

// Fault is a built-in behaviour of a replica (pbft.Fault: gateways switch it too).
type Fault = pbft.Fault

// The behaviours docs/protocol.md names.
const (
	FaultNone       = pbft.FaultNone
	FaultCrash      = pbft.FaultCrash
	FaultSilent     = pbft.FaultSilent
	FaultEquivocate = pbft.FaultEquivocate
)

// ParseFault checks a behaviour name.
func ParseFault(s string) (Fault, error) {
	f, err := pbft.ParseFault(s)
	if err != nil {
		return "", fmt.Errorf("%w: unknown fault %q", ErrConfig, s)
	}
	return f, nil
}

// corruptVote makes a prepare or commit (also one in a catch-up answer) name a digest
// nobody proposed.
func corruptVote(m pbft.Message) pbft.Message {
	switch v := m.(type) {
	case *pbft.Committed:
		c := *v
		c.Digest[0] ^= 0xff
		return &c
	case *pbft.Prepare:
		c := *v
		c.Digest[0] ^= 0xff
		return &c
	case *pbft.Commit:
		c := *v
		c.Digest[0] ^= 0xff
		return &c
	}
	return m
}

// forkPrePrepare is a conflicting pre-prepare for the same view and number: the batch
// reversed, or a null request when reversing would not change it.
func forkPrePrepare(pp *pbft.PrePrepare) *pbft.PrePrepare {
	b := make([]*pbft.Request, len(pp.Batch))
	for i := range pp.Batch {
		b[len(b)-1-i] = pp.Batch[i]
	}
	if len(b) < 2 {
		b = nil
	}
	return &pbft.PrePrepare{View: pp.View, Seq: pp.Seq, Digest: pbft.BatchDigest(b), Batch: b}
}

// forge gives a reply the configured forged result (Config.ForgedResult). The reply is
// copied: the replica's reply cache keeps the true one.
func (n *Node) forge(o pbft.Outbound) pbft.Outbound {
	rep, ok := o.Msg.(*pbft.Reply)
	if !ok || n.cfg.ForgedResult == nil {
		return o
	}
	forged := *rep
	forged.Result = n.cfg.ForgedResult
	o.Msg = &forged
	return o
}
