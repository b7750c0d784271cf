package pbft

import (
	"bytes"
	"fmt"
	"slices"
)

// Transition certificates: transferable evidence of how each configuration ended.
//
// When a reconfiguration's checkpoint at s becomes stable, each member of the
// configuration c it ends signs the link (c and its members, s, the members of c+1, the
// state digest at s) and sends it to the members of c and c+1 (Transition). A quorum of
// c's members signing one link is its certificate; replicas keep the certificates in a
// chain, oldest first, in their durable log (not in the replicated state: which
// signatures a replica gathered differs between replicas, and state digests must not).
// A replica that slept through several reconfigurations announces itself with a status
// of its old configuration; a replica whose chain reaches back to it answers with the
// chain from there on (Chain). The sleeper checks each link with the members of the
// configuration it already trusts (link c with c's, then c+1's, ...) and moves to the
// newest: a member joins it (join.go, with the last link's signers vouching for its
// start), any other replica knows it left. A Byzantine peer can forge no link: it would
// need the signatures of a quorum of the configuration the link ends, whose members a
// correct replica trusts only through the links before it.

// Signer signs this replica's transition statements and checks other replicas'
// (Config.Signer). The core calls it only around reconfigurations; a driver backs it
// with the replicas' signing keys (pbft/node: the keys of PBFT_KEYS_DIR).
type Signer interface {
	Sign(msg []byte) []byte
	// Verify reports whether sig is id's signature over msg.
	Verify(id string, msg, sig []byte) bool
}

// maxChain bounds the certificates a replica keeps (and sends): a replica that slept
// through more reconfigurations than this is removed and added again, as before chains.
// Each link is a few hundred bytes plus a quorum's signatures.
const maxChain = 64

// TransitionLink says that configuration Ends ended at sequence number Seq with state
// digest State (the checkpoint at the reconfiguration), and configuration Ends.Conf+1
// with members Next followed.
type TransitionLink struct {
	Ends  Membership
	Seq   uint64
	Next  []string
	State Digest
}

// next is the configuration the link starts.
func (l *TransitionLink) next() Membership {
	return Membership{Conf: l.Ends.Conf + 1, Members: l.Next}
}

// Transition is one member's signed statement of a link (KindTransition).
type Transition struct {
	Link   TransitionLink
	Signer string
	Sig    []byte
}

// Signature is one signer's signature over a link.
type Signature struct {
	Signer string
	Sig    []byte
}

// TransitionCert is a link with the signatures of distinct members of the configuration
// it ends, sorted by signer; a quorum of them makes it valid.
type TransitionCert struct {
	Link TransitionLink
	Sigs []Signature
}

// Chain carries transition certificates of consecutive configurations, oldest first
// (KindChain). It is self-certifying: a replica takes it from any peer. Admission, in an
// answer to a joiner's AskAdmission, is the administrator's reconfiguration that admitted
// it (the certificates then start at the configuration it started); the joiner's driver
// checks the joiner's own tag in its authenticator, as when it comes from a gateway.
type Chain struct {
	Certs     []*TransitionCert
	Admission *Request
}

// AskAdmission is a joiner's question to the members it will run with (KindAskAdmission):
// the administrator's reconfiguration that admitted Joiner to Members, if it executed.
// The driver checks that Joiner is the sender.
type AskAdmission struct {
	Joiner  string
	Members []string
}

func (*Transition) Kind() Kind   { return KindTransition }
func (*Chain) Kind() Kind        { return KindChain }
func (*AskAdmission) Kind() Kind { return KindAskAdmission }

// linkBytes is what a transition signature covers: the kind byte (so no other signed
// message can pass for it) and the link.
func linkBytes(l *TransitionLink) []byte {
	return appendLink([]byte{byte(KindTransition)}, l)
}

func appendLink(dst []byte, l *TransitionLink) []byte {
	dst = append(dst, EncodeMembership(l.Ends)...)
	dst = appendUvarint(dst, l.Seq)
	dst = appendUvarint(dst, uint64(len(l.Next)))
	for _, id := range l.Next {
		dst = appendString(dst, id)
	}
	return append(dst, l.State[:]...)
}

func appendChain(dst []byte, c *Chain) []byte {
	dst = appendUvarint(dst, uint64(len(c.Certs)))
	for _, cert := range c.Certs {
		dst = appendLink(dst, &cert.Link)
		dst = appendUvarint(dst, uint64(len(cert.Sigs)))
		for _, s := range cert.Sigs {
			dst = appendString(dst, s.Signer)
			dst = appendBytes(dst, s.Sig)
		}
	}
	if c.Admission != nil {
		dst = append(dst, 1) // optional, last: a chain without one ends before it
		dst = appendRequest(dst, c.Admission)
	}
	return dst
}

func (d *decoder) link() TransitionLink {
	l := TransitionLink{Ends: d.membership(), Seq: d.uvarint()}
	for i, n := 0, d.count(); i < n && d.err == nil; i++ {
		l.Next = append(l.Next, d.string())
	}
	l.State = d.digest()
	if d.err == nil && (ValidateMembers(l.Ends.Members) != nil || ValidateMembers(l.Next) != nil) {
		d.fail("bad transition membership")
	}
	return l
}

func (d *decoder) transition() *Transition {
	return &Transition{Link: d.link(), Signer: d.string(), Sig: d.bytes()}
}

func (d *decoder) chain() *Chain {
	c := &Chain{}
	n := d.count()
	if n > maxChain {
		d.fail("chain too long")
		return c
	}
	for i := 0; i < n && d.err == nil; i++ {
		cert := &TransitionCert{Link: d.link()}
		for j, k := 0, d.count(); j < k && d.err == nil; j++ {
			cert.Sigs = append(cert.Sigs, Signature{Signer: d.string(), Sig: d.bytes()})
		}
		c.Certs = append(c.Certs, cert)
	}
	if d.err == nil && len(d.buf) > 0 {
		if d.buf[0] != 1 {
			d.fail("bad admission flag")
			return c
		}
		d.buf = d.buf[1:]
		c.Admission = d.request()
	}
	return c
}

func (d *decoder) askAdmission() *AskAdmission {
	m := &AskAdmission{Joiner: d.string()}
	for i, n := 0, d.count(); i < n && d.err == nil; i++ {
		m.Members = append(m.Members, d.string())
	}
	if d.err == nil && (m.Joiner == "" || ValidateMembers(m.Members) != nil) {
		d.fail("bad admission question")
	}
	return m
}

// verifyCert checks that cert is a valid certificate of the end of trusted: the link
// names exactly trusted's number and members, and a quorum of trusted's members, each
// once, signed it.
func verifyCert(s Signer, trusted Membership, cert *TransitionCert) error {
	l := &cert.Link
	if l.Ends.Conf != trusted.Conf || !slices.Equal(l.Ends.Members, trusted.Members) {
		return fmt.Errorf("%w: link ends configuration %d %q, the trusted one is %d %q",
			ErrRejected, l.Ends.Conf, l.Ends.Members, trusted.Conf, trusted.Members)
	}
	if err := ValidateMembers(l.Next); err != nil {
		return fmt.Errorf("%w: link to %v", ErrRejected, err)
	}
	msg := linkBytes(l)
	signed := map[string]bool{}
	for _, sg := range cert.Sigs {
		switch {
		case trusted.Index(sg.Signer) < 0:
			return fmt.Errorf("%w: %q signed the end of configuration %d, not a member", ErrRejected, sg.Signer, trusted.Conf)
		case signed[sg.Signer]:
			return fmt.Errorf("%w: %q signed twice", ErrRejected, sg.Signer)
		case !s.Verify(sg.Signer, msg, sg.Sig):
			return fmt.Errorf("%w: bad signature of %q on the end of configuration %d", ErrRejected, sg.Signer, trusted.Conf)
		}
		signed[sg.Signer] = true
	}
	if need := NewQuorum(len(trusted.Members)).Commit(); len(signed) < need {
		return fmt.Errorf("%w: the end of configuration %d has %d signatures, needs %d", ErrRejected, trusted.Conf, len(signed), need)
	}
	return nil
}

// verifyChain checks certs link by link from the configuration trusted: each must end
// the configuration the one before started, at a higher number. It returns the newest
// configuration they lead to.
func verifyChain(s Signer, trusted Membership, certs []*TransitionCert) (Membership, error) {
	var seq uint64
	for i, cert := range certs {
		if err := verifyCert(s, trusted, cert); err != nil {
			return Membership{}, fmt.Errorf("link %d: %w", i, err)
		}
		if i > 0 && cert.Link.Seq <= seq {
			return Membership{}, fmt.Errorf("%w: link %d at %d, not above %d", ErrRejected, i, cert.Link.Seq, seq)
		}
		seq, trusted = cert.Link.Seq, cert.Link.next()
	}
	return trusted, nil
}

// sameLink reports whether two links are equal.
func sameLink(a, b *TransitionLink) bool {
	return bytes.Equal(appendLink(nil, a), appendLink(nil, b))
}
