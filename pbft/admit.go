package pbft

import (
	"fmt"
	"slices"
)

// Admission: a joiner told only the membership it joins (Config.Join).
//
// A joining process knows its own id, the members it will run with and the
// administrator; it does not know the configuration's number nor the members whose
// certificate must vouch for the state it fetches. The administrator's reconfiguration
// names both (ReconfigOp: the configuration it ends, number and members), and whoever
// submits it sends it to the joiners too. The driver checks the request's authenticator
// (the joiner's own tag, from a key only the administrator and it share) before it
// reaches admit, so the old membership a joiner trusts is the administrator's word, the
// same authority that decides the change; the old members refuse to execute a
// reconfiguration that names other members than theirs, so a joiner admitted by one that
// never executes simply waits. From then on it is a joiner as with Config.JoinFrom: it
// installs only the state at the reconfiguration certified by a quorum of the named old
// members, whose configuration says it ends exactly that one and starts the joiner's
// (join.go).

// admit takes a message while the replica awaits admission: only the administrator's
// reconfiguration to this replica's membership is taken, and nothing else.
func (r *Replica) admit(from int, m Message) error {
	req, ok := m.(*Request)
	if from != FromClient || !ok || !IsReconfig(req.Op) {
		return fmt.Errorf("%w: %s: awaiting the administrator's reconfiguration", ErrRejected, m.Kind())
	}
	prev, err := r.checkAdmission(req)
	if err != nil {
		return err
	}
	r.persist(req) // a joiner restarted before it holds the state is still admitted
	r.enterAdmission(req, prev)
	return nil
}

// checkAdmission returns the configuration an admission ends, or why it admits nothing.
func (r *Replica) checkAdmission(req *Request) (Membership, error) {
	if req.Gateway != r.cfg.Admin {
		return Membership{}, fmt.Errorf("%w: reconfiguration from %q, who is not the administrator", ErrRejected, req.Gateway)
	}
	ends, next, err := DecodeReconfigChange(req.Op)
	if err != nil {
		return Membership{}, fmt.Errorf("%w: %v", ErrRejected, err)
	}
	switch {
	case !slices.Equal(next.Members, r.conf.cur.Members):
		return Membership{}, fmt.Errorf("%w: a reconfiguration to %q, this replica joins %q", ErrRejected, next.Members, r.conf.cur.Members)
	case ends.Index(r.self) >= 0:
		return Membership{}, fmt.Errorf("%w: %s is a member of the configuration the reconfiguration ends", ErrRejected, r.self)
	}
	return Membership{Conf: ends.Conf, Members: slices.Clone(ends.Members)}, nil
}

// enterAdmission makes the replica a joiner of the configuration after prev.
func (r *Replica) enterAdmission(req *Request, prev Membership) {
	r.admission = req
	r.awaiting, r.member = false, true
	r.conf.cur.Conf = prev.Conf + 1
	r.prev, r.prevID = &prev, -1
	r.join = newJoin(prev)
	r.confVersion++
	r.nextReady.ViewChanged = true // the driver reads the configuration again
}

// restoreAdmission takes an admission from the durable log (Restore), checked as when it
// came; a replica whose log already put it in a configuration ignores it.
func (r *Replica) restoreAdmission(req *Request) error {
	switch {
	case !r.cfg.Join:
		return fmt.Errorf("an admission in the log of a replica that does not join")
	case !r.awaiting:
		return nil
	}
	prev, err := r.checkAdmission(req)
	if err != nil {
		return err
	}
	r.enterAdmission(req, prev)
	return nil
}

// ConfigVersion changes whenever KnownMembers may have changed (cheap: a driver asks
// after every step).
func (r *Replica) ConfigVersion() uint64 { return r.confVersion }

// KnownMembers returns the ids of every configuration this replica knows (the current
// one, the one decided to follow and the one before), each once: a driver keeps its keys
// for all of them (a joiner's tag in broadcasts, the old members a joiner fetches from).
func (r *Replica) KnownMembers() (ids []string) {
	add := func(ms []string) {
		for _, id := range ms {
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	add(r.conf.cur.Members)
	if r.conf.next != nil {
		add(r.conf.next.Members)
	}
	if r.prev != nil {
		add(r.prev.Members)
	}
	return ids
}

// A joiner that was not running when its admission executed never received it from the
// administrator. While it waits it asks the members it will run with (askAdmission,
// each status period); a replica that executed the reconfiguration kept the request
// (keepAdmission: in its durable log, not in the replicated state, since the request's
// authenticator is not covered by batch digests and may differ between replicas) and
// answers with it and the certificates from the configuration it started on
// (answerAdmission). The joiner's driver checks its own tag in the request; stepChain
// then admits it and moves it along the chain.

// maxAdmissions bounds the admissions a replica keeps: as many as certificates.
const maxAdmissions = maxChain

// keepAdmission keeps an executed reconfiguration that admitted someone (recording it
// in the durable log unless it comes from there).
func (r *Replica) keepAdmission(req *Request, record bool) {
	ends, next, err := DecodeReconfigChange(req.Op)
	if err != nil || !slices.ContainsFunc(next.Members, func(id string) bool { return ends.Index(id) < 0 }) {
		return // admitted nobody
	}
	for _, a := range r.chain.admits {
		if keyOf(a) == keyOf(req) && a.Gateway == req.Gateway {
			return // executed again after a restart
		}
	}
	r.chain.admits = append(r.chain.admits, req)
	if n := len(r.chain.admits); n > maxAdmissions {
		r.chain.admits = slices.Delete(r.chain.admits, 0, n-maxAdmissions)
	}
	if record {
		r.persist(&Chain{Admission: req})
	}
}

// askAdmission asks the members this joiner will run with for its admission.
func (r *Replica) askAdmission() {
	for _, id := range r.conf.cur.Members {
		if id != r.self {
			r.out = append(r.out, Outbound{Peer: id, Conf: r.conf.cur.Conf,
				Msg: &AskAdmission{Joiner: r.self, Members: slices.Clone(r.conf.cur.Members)}})
		}
	}
}

// answerAdmission answers a joiner with the newest kept admission of it to the members
// it names, and the certificates from the configuration that admission started.
func (r *Replica) answerAdmission(m *AskAdmission) error {
	if r.awaiting || m.Joiner == r.self {
		return fmt.Errorf("%w: admission question to a replica that is not admitted itself", ErrRejected)
	}
	for i := len(r.chain.admits) - 1; i >= 0; i-- {
		req := r.chain.admits[i]
		ends, next, err := DecodeReconfigChange(req.Op)
		if err != nil || !slices.Equal(next.Members, m.Members) || ends.Index(m.Joiner) >= 0 {
			continue
		}
		r.out = append(r.out, Outbound{Peer: m.Joiner, Conf: r.conf.cur.Conf,
			Msg: &Chain{Certs: slices.Clone(r.chain.from(ends.Conf + 1)), Admission: req}})
		return nil
	}
	return nil
}

// stepAdmissionChain admits an awaiting joiner by the admission a member kept; the
// certificates, if any, then go through stepChain from the configuration it joined.
func (r *Replica) stepAdmissionChain(c *Chain) error {
	if c.Admission == nil {
		return fmt.Errorf("%w: chain without an admission: awaiting the administrator's reconfiguration", ErrRejected)
	}
	prev, err := r.checkAdmission(c.Admission)
	if err != nil {
		return err
	}
	r.persist(c.Admission)
	r.enterAdmission(c.Admission, prev)
	return nil
}
