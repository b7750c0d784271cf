package pbft

import (
	"fmt"
	"slices"
	"sort"
)

// The protocol around transition certificates (chain.go): signing a configuration's
// end, gathering a quorum of statements into a certificate, answering a replica of an
// old configuration with the chain, and moving a replica that receives a valid chain
// into the newest configuration it leads to.

// FromAnyone is the sender index StepIn takes for a message from a replica the named
// configuration does not list: only a Chain, which certifies itself, is taken from it.
const FromAnyone = -3

// chainState is what a replica knows of configurations' ends: certificates of
// consecutive configurations, oldest first, at most maxChain; and the statements gathered
// for links not certified yet, by the configuration they end (only configurations this
// replica knows, one statement per signer: a few).
type chainState struct {
	certs   []*TransitionCert
	pending map[uint64][]*Transition
	// admits are the executed reconfigurations that admitted new replicas (admit.go).
	admits []*Request
	// own is this replica's latest statement, sent again while it lacks the certificate
	// and to a peer still gathering one it has (statements travel at most once).
	own *Transition
}

func (c *chainState) last() *TransitionCert {
	if len(c.certs) == 0 {
		return nil
	}
	return c.certs[len(c.certs)-1]
}

// members returns the members of configuration conf as the chain names them, or nil.
func (c *chainState) members(conf uint64) []string {
	for _, cert := range c.certs {
		switch conf {
		case cert.Link.Ends.Conf:
			return cert.Link.Ends.Members
		case cert.Link.Ends.Conf + 1:
			return cert.Link.Next
		}
	}
	return nil
}

// from returns the certificates from the one that ends configuration conf on.
func (c *chainState) from(conf uint64) []*TransitionCert {
	for i, cert := range c.certs {
		if cert.Link.Ends.Conf == conf {
			return c.certs[i:]
		}
	}
	return nil
}

// add appends cert if it is newer than the last one; a chain with a gap before it starts
// anew (the older part could no longer lead anyone to the newest configuration).
func (c *chainState) add(cert *TransitionCert) bool {
	if last := c.last(); last != nil {
		switch {
		case cert.Link.Ends.Conf <= last.Link.Ends.Conf:
			return false
		case cert.Link.Ends.Conf != last.Link.Ends.Conf+1:
			c.certs = nil
		}
	}
	c.certs = append(c.certs, cert)
	if n := len(c.certs); n > maxChain {
		c.certs = slices.Delete(c.certs, 0, n-maxChain)
	}
	for conf := range c.pending {
		if conf <= cert.Link.Ends.Conf {
			delete(c.pending, conf)
		}
	}
	return true
}

// Chain returns the transition certificates this replica keeps, oldest first.
func (r *Replica) Chain() []*TransitionCert { return slices.Clone(r.chain.certs) }

// signTransition signs the end of configuration old at seq (its stable checkpoint), when
// this replica was one of its members, and sends the statement to the members of old
// and of the configuration that followed.
func (r *Replica) signTransition(old Membership, seq uint64) {
	d, ok := r.checkpoints.own[seq]
	if r.cfg.Signer == nil || old.Index(r.self) < 0 || !ok || r.conf.cur.Conf != old.Conf+1 {
		return
	}
	t := &Transition{Link: TransitionLink{Ends: old, Seq: seq, Next: slices.Clone(r.conf.cur.Members), State: d}, Signer: r.self}
	t.Sig = r.cfg.Signer.Sign(linkBytes(&t.Link))
	r.chain.own = t
	r.noteTransition(t)
	r.out = append(r.out, Outbound{To: Broadcast, Conf: old.Conf, Msg: t})
}

// stepTransition takes another member's statement of a configuration's end.
func (r *Replica) stepTransition(t *Transition) error {
	l := &t.Link
	switch known := r.MembersOf(l.Ends.Conf); {
	case r.cfg.Signer == nil:
		return fmt.Errorf("%w: transition statement without a signer to check it", ErrRejected)
	case known == nil || !slices.Equal(known, l.Ends.Members):
		return fmt.Errorf("%w: transition statement for configuration %d %q, known as %q", ErrRejected, l.Ends.Conf, l.Ends.Members, known)
	case l.Ends.Index(t.Signer) < 0:
		return fmt.Errorf("%w: transition statement of %q, not a member of configuration %d", ErrRejected, t.Signer, l.Ends.Conf)
	case !r.cfg.Signer.Verify(t.Signer, linkBytes(l), t.Sig):
		return fmt.Errorf("%w: bad signature on %q's transition statement", ErrRejected, t.Signer)
	}
	if own := r.chain.own; own != nil && own.Link.Ends.Conf == l.Ends.Conf && t.Signer != r.self && r.certified(l.Ends.Conf) {
		// The sender still gathers what this replica has: its statement may have been lost.
		r.out = append(r.out, Outbound{Peer: t.Signer, Conf: l.Ends.Conf, Msg: own})
	}
	r.noteTransition(t)
	return nil
}

// certified reports whether the chain holds the certificate of configuration conf's end.
func (r *Replica) certified(conf uint64) bool {
	last := r.chain.last()
	return last != nil && last.Link.Ends.Conf >= conf
}

// resendTransition sends this replica's latest statement again, each status period,
// while it has no certificate of that configuration's end: a quorum's statements may
// not all have arrived.
func (r *Replica) resendTransition() {
	if own := r.chain.own; own != nil && !r.certified(own.Link.Ends.Conf) {
		r.out = append(r.out, Outbound{To: Broadcast, Conf: own.Link.Ends.Conf, Msg: own})
	}
}

// noteTransition gathers a checked statement; a quorum of the ended configuration's
// members stating the same link makes its certificate, which the replica keeps.
func (r *Replica) noteTransition(t *Transition) {
	l := &t.Link
	if last := r.chain.last(); last != nil && l.Ends.Conf <= last.Link.Ends.Conf {
		return // certified already
	}
	if r.chain.pending == nil {
		r.chain.pending = map[uint64][]*Transition{}
	}
	pend := r.chain.pending[l.Ends.Conf]
	for _, p := range pend {
		if p.Signer == t.Signer {
			return // one statement per signer and configuration
		}
	}
	pend = append(pend, t)
	r.chain.pending[l.Ends.Conf] = pend
	var sigs []Signature
	for _, p := range pend {
		if sameLink(&p.Link, l) {
			sigs = append(sigs, Signature{Signer: p.Signer, Sig: p.Sig})
		}
	}
	if len(sigs) < NewQuorum(len(l.Ends.Members)).Commit() {
		return
	}
	sort.Slice(sigs, func(i, j int) bool { return sigs[i].Signer < sigs[j].Signer })
	cert := &TransitionCert{Link: *l, Sigs: sigs}
	if r.chain.add(cert) {
		r.persist(&Chain{Certs: []*TransitionCert{cert}})
	}
}

// answerChain answers a status of configuration conf, older than the one before this
// replica's (the transition checkpoint, statusFromPrev, cannot help its sender), with the
// chain from conf on. It reports whether it did.
func (r *Replica) answerChain(conf uint64, from int, m *StatusMsg) bool {
	if conf >= r.conf.cur.Conf || r.prev != nil && conf >= r.prev.Conf || m.Replica != from {
		return false
	}
	certs, members := r.chain.from(conf), r.chain.members(conf)
	if len(certs) == 0 || from < 0 || from >= len(members) {
		return false
	}
	r.out = append(r.out, Outbound{Peer: members[from], Conf: conf, Msg: &Chain{Certs: slices.Clone(certs)}})
	return true
}

// stepChain takes a chain from any peer: the links from this replica's configuration on
// must each be certified by the configuration before, starting with the one it is in;
// then it moves to the newest. A chain with any bad link changes nothing.
func (r *Replica) stepChain(c *Chain) error {
	if r.awaiting {
		if err := r.stepAdmissionChain(c); err != nil {
			return err
		}
	}
	cur := r.conf.cur
	switch {
	case len(c.Certs) == 0:
		return nil
	case r.cfg.Signer == nil:
		return fmt.Errorf("%w: chain without a signer to check it", ErrRejected)
	case len(cur.Members) == 0:
		return fmt.Errorf("%w: chain to a replica configured without member ids", ErrRejected)
	}
	i := slices.IndexFunc(c.Certs, func(cert *TransitionCert) bool { return cert.Link.Ends.Conf == cur.Conf })
	if i < 0 {
		return nil // nothing past this replica's configuration
	}
	certs := c.Certs[i:]
	if _, err := verifyChain(r.cfg.Signer, cur, certs); err != nil {
		return fmt.Errorf("chain from configuration %d: %w", cur.Conf, err)
	}
	for _, cert := range certs {
		r.chain.add(cert)
	}
	r.adoptChain(certs[len(certs)-1])
	return nil
}

// adoptChain moves this replica into the configuration the certified link last starts:
// a member joins it as a joiner of that configuration (the link's signers vouch for the
// state at its start; later states come as for any joiner), any other replica knows it
// left and stops ordering.
func (r *Replica) adoptChain(last *TransitionCert) {
	l := &last.Link
	prev := Membership{Conf: l.Ends.Conf, Members: slices.Clone(l.Ends.Members)}
	r.setMembership(l.next())
	r.prev, r.prevID = &prev, prev.Index(r.self)
	clear(r.log)
	clear(r.inflight)
	r.transfer, r.join = nil, nil
	r.requestCompaction() // the durable log keeps the chain, which leads here again
	if r.member {
		r.join = newJoin(prev)
		for _, sg := range last.Sigs {
			_ = r.joinCheckpoint(sg.Signer, 0, &Checkpoint{Seq: l.Seq, State: l.State})
		}
	}
}

// restoreChain takes certificates from the durable log.
func (r *Replica) restoreChain(c *Chain) error {
	for _, cert := range c.Certs {
		r.chain.add(cert)
	}
	if c.Admission != nil {
		r.keepAdmission(c.Admission, false)
	}
	return nil
}

// adoptRestoredChain ends Restore: a chain that leads past the configuration restored
// was adopted before the restart (or would have been), and is again.
func (r *Replica) adoptRestoredChain() {
	last := r.chain.last()
	if last == nil || r.awaiting || last.Link.Ends.Conf < r.conf.cur.Conf ||
		!slices.Equal(r.chain.members(r.conf.cur.Conf), r.conf.cur.Members) {
		return
	}
	r.adoptChain(last)
}

// chainRecords is the chain as a durable record (durableState).
func (r *Replica) chainRecords() (out []Message) {
	for _, a := range r.chain.admits {
		out = append(out, &Chain{Admission: a})
	}
	if len(r.chain.certs) != 0 {
		out = append(out, &Chain{Certs: slices.Clone(r.chain.certs)})
	}
	return out
}
