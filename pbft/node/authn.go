package node

import (
	"errors"
	"sync"
	"time"

	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft"
)

// Reasons for dropping a message, as counted in Stats.Rejected.
const (
	RejectBadMAC         = "bad mac"
	RejectBadSignature   = "bad signature"
	RejectUnknownSender  = "unknown sender"
	RejectSenderMismatch = "sender mismatch"
	RejectReplayed       = "stale or replayed"
	RejectMalformed      = "malformed"
	RejectProtocol       = "protocol"
	RejectReissue        = "executed number re-issued"
)

func rejectReason(err error) string {
	switch {
	case errors.Is(err, auth.ErrBadMAC):
		return RejectBadMAC
	case errors.Is(err, auth.ErrBadSignature):
		return RejectBadSignature
	case errors.Is(err, auth.ErrUnknownSender):
		return RejectUnknownSender
	case errors.Is(err, auth.ErrSenderMismatch):
		return RejectSenderMismatch
	case errors.Is(err, auth.ErrReplay):
		return RejectReplayed
	}
	return RejectMalformed
}

// verifyInner checks what a message carries from third parties: the client authenticators
// of requests (also inside pre-prepares) and the signatures of view-change evidence.
func (n *Node) verifyInner(m pbft.Message) error {
	switch m := m.(type) {
	case *pbft.Request:
		return n.keys.VerifyRequest(m.Gateway, pbft.RequestDigest(m), m.Auth)
	case *pbft.PrePrepare:
		for _, r := range m.Batch {
			if err := n.keys.VerifyRequest(r.Gateway, pbft.RequestDigest(r), r.Auth); err != nil {
				return err
			}
		}
	case *pbft.Chain:
		if a := m.Admission; a != nil {
			// A kept admission: this joiner's own tag, as from the administrator's gateway.
			return n.keys.VerifyRequest(a.Gateway, pbft.RequestDigest(a), a.Auth)
		}
	case *pbft.ViewChange:
		return n.verifyViewChange(m)
	case *pbft.NewView:
		if err := n.keys.Verify(n.ids[m.Replica%len(n.ids)], pbft.SignedBytes(m), m.Sig); err != nil || m.Replica >= len(n.ids) {
			return auth.ErrBadSignature
		}
		for _, vc := range m.ViewChanges {
			if err := n.verifyViewChange(vc); err != nil {
				return err
			}
		}
	}
	return nil
}

func (n *Node) verifyViewChange(vc *pbft.ViewChange) error {
	if vc.Replica < 0 || vc.Replica >= len(n.ids) {
		return auth.ErrBadSignature
	}
	return n.keys.Verify(n.ids[vc.Replica], pbft.SignedBytes(vc), vc.Sig)
}

// sign adds this replica's signature to evidence it sends; the core keeps the same
// message, so a retransmission carries the signature too.
func (n *Node) sign(m pbft.Message) {
	switch m := m.(type) {
	case *pbft.ViewChange:
		if m.Sig == nil && m.Replica == n.self {
			m.Sig = n.keys.Sign(pbft.SignedBytes(m))
		}
	case *pbft.NewView:
		if m.Sig == nil && m.Replica == n.self {
			// The core may put its own view-change in the NEW-VIEW (a copy without its
			// batches) in the same step that made it, before it was ever signed: sign
			// that copy too, or every backup refuses the NEW-VIEW.
			for _, vc := range m.ViewChanges {
				if vc.Sig == nil && vc.Replica == n.self {
					vc.Sig = n.keys.Sign(pbft.SignedBytes(vc))
				}
			}
			m.Sig = n.keys.Sign(pbft.SignedBytes(m))
		}
	}
}

// keySigner backs pbft.Signer (transition certificates) with the node's keyring. A
// signer the keyring has no public key for, a member of a configuration this replica
// slept through, is read from PBFT_KEYS_DIR as syncKeys reads a new member's.
type keySigner struct{ n *Node }

func (s keySigner) Sign(msg []byte) []byte { return s.n.keys.Sign(msg) }

func (s keySigner) Verify(id string, msg, sig []byte) bool {
	err := s.n.keys.Verify(id, msg, sig)
	if errors.Is(err, auth.ErrUnknownSender) && s.n.keys.Include([]string{id}) == nil {
		err = s.n.keys.Verify(id, msg, sig)
	}
	return err == nil
}

// rateLog logs a rejection at most once a second per reason, so that a flood of forged
// messages cannot flood the log; the counters still count every one.
type rateLog struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (l *rateLog) allow(reason string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last = map[string]time.Time{}
	}
	if now.Sub(l.last[reason]) < time.Second {
		return false
	}
	l.last[reason] = now
	return true
}
