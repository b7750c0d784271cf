package campaign

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The reconfigurations the nemesis draws like faults: the administrator changes the
// membership through PBFT itself (pbft_reconfigure semantics), and the run goes on
// with the new one.
const (
	FaultGrow    FaultKind = "grow"    // a fresh replica (new id, new key, empty data dir) joins
	FaultShrink  FaultKind = "shrink"  // a member leaves
	FaultReplace FaultKind = "replace" // one reconfiguration: a fresh replica joins, a member leaves
)

// Reconfigurable is a Cluster whose membership the nemesis may change: the campaign's
// topology, whose administrator client issues the reconfigurations.
type Reconfigurable interface {
	// StartJoiner adds replica id (a new key pair, an empty data dir) and starts it to
	// join the membership next (PBFT_JOIN=on): it waits, not ready, until it is a member.
	StartJoiner(ctx context.Context, id string, next []string) error
	// Reconfigure has the administrator change the membership to next. It returns the
	// configuration in force afterwards and its members, also on error when it can
	// learn them (nil members: unknown).
	Reconfigure(ctx context.Context, next []string) (conf uint64, members []string, err error)
	// FollowMembership makes the clients' gateway send to members.
	FollowMembership(ctx context.Context, members []string) error
	// RetireReplica stops a replica that is no longer a member.
	RetireReplica(id string) error
}

func reconfigFault(k FaultKind) bool {
	return k == FaultGrow || k == FaultShrink || k == FaultReplace
}

// fOf is the f of a membership of n replicas.
func fOf(n int) int { return max((n-1)/3, 0) }

// reconfigPlan is one reconfiguration: who leaves, who joins, the membership after.
type reconfigPlan struct {
	kind  FaultKind
	leave string // "" for a grow
	join  string // "" for a shrink
	next  []string
}

// target names the change in the fault list: +joiner, -leaver, or both.
func (p reconfigPlan) target() string {
	s := ""
	if p.leave != "" {
		s += "-" + p.leave
	}
	if p.join != "" {
		s += "+" + p.join
	}
	return s
}

// effective is the reconfiguration kind drawn, adapted to the membership in force and
// the fresh ids left: a grow at MaxMembers shrinks instead, a shrink that would leave
// f' = 0 (fewer than 4 members, so no fault would be tolerated) grows instead, and with
// no fresh id left (NemesisConfig.FreshIDs) a grow or replace shrinks; whichever cannot
// happen becomes a replace, and "" means no reconfiguration can. Called with mu held.
func (n *Nemesis) effective(kind FaultKind) FaultKind {
	size := len(n.members)
	join := n.cfg.FreshIDs == nil || n.fresh < len(n.cfg.FreshIDs)
	grow, shrink := join && size < n.cfg.MaxMembers, fOf(size-1) >= 1
	var order []FaultKind
	switch kind {
	case FaultGrow:
		order = []FaultKind{FaultGrow, FaultShrink, FaultReplace}
	case FaultShrink:
		order = []FaultKind{FaultShrink, FaultGrow, FaultReplace}
	case FaultReplace:
		order = []FaultKind{FaultReplace, FaultShrink}
	}
	for _, k := range order {
		if (k == FaultGrow && grow) || (k == FaultShrink && shrink) || (k == FaultReplace && join) {
			return k
		}
	}
	return ""
}

// grows is how many members a reconfiguration of kind adds (-1: removes one).
func grows(kind FaultKind) int {
	switch kind {
	case FaultGrow:
		return 1
	case FaultShrink:
		return -1
	}
	return 0
}

// reconfigRoom reports whether a reconfiguration of kind may start now: none is under
// way, and the faulty replicas plus the one it counts (a joiner catching up, a member
// leaving) stay within f' of the membership before and after it. Called with mu held.
func (n *Nemesis) reconfigRoom(kind FaultKind) bool {
	k := n.effective(kind)
	if n.reconfiguring || k == "" {
		return false
	}
	size := len(n.members)
	after := size + grows(k)
	return n.faulty+1 <= min(fOf(size), fOf(after))
}

// reconfigsOver reports whether a reconfiguration of kind can never happen: none is under
// way (which could change the membership), and the membership can neither take a fresh
// id nor shrink. No other fault changes the membership, so this lasts.
func (n *Nemesis) reconfigsOver(kind FaultKind) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return reconfigFault(kind) && !n.reconfiguring && n.effective(kind) == ""
}

// endReconfigs drops the reconfigurations from the kinds still to draw (Run's
// goroutine owns them), says why, and keeps the reason for the report.
func (n *Nemesis) endReconfigs() {
	keep := func(ks []FaultKind) []FaultKind {
		return slices.DeleteFunc(ks, reconfigFault)
	}
	n.cfg.Faults, n.deck, n.lead = keep(n.cfg.Faults), keep(n.deck), keep(n.lead)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.reconfigEnd = fmt.Sprintf("reconfigurations ended at %.3fs: every fresh id %v was taken (a joiner's id is never reused) and %d members cannot shrink without leaving f'=0",
		n.since().Seconds(), n.cfg.FreshIDs, len(n.members))
	n.cfg.Logf("nemesis %s", n.reconfigEnd)
}

// ReconfigEnd says why the nemesis stopped reconfiguring before the fault phase ended
// ("" when it did not).
func (n *Nemesis) ReconfigEnd() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.reconfigEnd
}

// planReconfig chooses the change and reserves its replicas (the joiner counts as
// faulty until it has caught up), or reports that there is no room.
func (n *Nemesis) planReconfig(kind FaultKind) (reconfigPlan, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.reconfigRoom(kind) {
		return reconfigPlan{}, false
	}
	p := reconfigPlan{kind: n.effective(kind)}
	if p.kind != FaultGrow {
		var candidates []string
		for _, id := range n.members {
			if !n.busy[id] {
				candidates = append(candidates, id)
			}
		}
		if len(candidates) == 0 {
			return reconfigPlan{}, false
		}
		p.leave = candidates[n.rng.IntN(len(candidates))]
	}
	if p.kind != FaultShrink {
		p.join = n.freshID()
		n.fresh++
	}
	for _, id := range n.members {
		if id != p.leave {
			p.next = append(p.next, id)
		}
	}
	if p.join != "" {
		// At the end of the rotation: a joiner still fetching the state is not the new
		// configuration's first primary.
		p.next = append(p.next, p.join)
	}
	for _, id := range []string{p.leave, p.join} {
		if id != "" {
			n.busy[id] = true
		}
	}
	n.reconfiguring = true
	n.faulty++
	n.maxFault = max(n.maxFault, n.faulty)
	return p, true
}

// reconfigure runs one reconfiguration: start the joiner, have the administrator
// reconfigure, make the gateway follow, keep a leaver serving for the hold (it keeps
// serving the state until the new configuration has its own checkpoint), then retire
// whoever is not a member and wait until the joiner has caught up.
func (n *Nemesis) reconfigure(ctx context.Context, p reconfigPlan, hold time.Duration) {
	rc := n.c.(Reconfigurable) // supported() checked
	ev := FaultEvent{Kind: p.kind, Target: p.target(), Start: n.since()}
	var errs []error
	note := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	n.cfg.Logf("nemesis %8.3fs: %s %s to %v (hold %v)", ev.Start.Seconds(), p.kind, ev.Target, p.next, hold.Round(time.Millisecond))
	// Bounded on its own: the change must finish (or fail) even when the fault phase ends.
	rctx, cancel := context.WithTimeout(context.Background(), n.cfg.ReconfigTimeout)
	if n.cfg.Abort != nil {
		defer context.AfterFunc(n.cfg.Abort, cancel)()
	}
	defer cancel()
	started := false
	var err error
	if p.join != "" {
		err = rc.StartJoiner(rctx, p.join, p.next)
		started = err == nil
		note(err)
	}
	if err == nil {
		conf, members, err := rc.Reconfigure(rctx, p.next)
		note(err)
		if members != nil {
			ev.Configuration, ev.Members = conf, slices.Clone(members)
			if n.setMembers(members) {
				note(rc.FollowMembership(rctx, members))
			}
		}
	}
	wait(ctx, hold)
	member := n.Members()
	if p.leave != "" && !slices.Contains(member, p.leave) {
		note(rc.RetireReplica(p.leave))
	}
	if started && !slices.Contains(member, p.join) {
		note(rc.RetireReplica(p.join)) // not admitted: it would wait for ever
	}
	ev.Healed = n.since()
	if started && slices.Contains(member, p.join) && n.cfg.Settle != nil {
		sctx, scancel := context.WithTimeout(context.Background(), n.cfg.JoinTimeout)
		if n.cfg.Abort != nil {
			defer context.AfterFunc(n.cfg.Abort, scancel)()
		}
		if err := n.cfg.Settle(sctx, p.join); err != nil {
			note(fmt.Errorf("joiner %s not caught up: %w", p.join, err))
		}
		scancel()
		ev.Settled = n.since()
	}
	if err := errors.Join(errs...); err != nil {
		ev.Error = err.Error()
	}
	n.cfg.Logf("nemesis %8.3fs: %s %s done: configuration %d %v%s", n.since().Seconds(), p.kind, ev.Target,
		ev.Configuration, ev.Members, errSuffix(ev.Error))
	n.mu.Lock()
	n.events = append(n.events, ev)
	delete(n.busy, p.leave)
	delete(n.busy, p.join)
	n.reconfiguring = false
	n.faulty--
	n.mu.Unlock()
	n.signalFreed()
}

// setMembers records the membership in force; it reports whether it changed.
func (n *Nemesis) setMembers(members []string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if slices.Equal(n.members, members) {
		return false
	}
	n.members = slices.Clone(members)
	return true
}

// Members is the membership in force, as the nemesis last learnt it.
func (n *Nemesis) Members() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.members)
}

// freshID names the next replica the nemesis adds: FreshIDs in order, or without them
// replica-<n+i> after the initial replica-0 ... replica-<n-1>. Called with mu held.
func (n *Nemesis) freshID() string {
	if n.cfg.FreshIDs != nil {
		return n.cfg.FreshIDs[n.fresh]
	}
	return fmt.Sprintf("replica-%d", n.initial+n.fresh)
}

// reconfigSummary is one line per reconfiguration for the report.
func reconfigSummary(evs []FaultEvent) []string {
	var out []string
	for _, e := range evs {
		if !reconfigFault(e.Kind) {
			continue
		}
		outcome := "ok"
		if e.Error != "" {
			outcome = "error: " + e.Error
		}
		out = append(out, fmt.Sprintf("%8.3fs %-7s %-22s -> configuration %d [%s]: %s", e.Start.Seconds(), e.Kind, e.Target,
			e.Configuration, strings.Join(e.Members, ","), outcome))
	}
	return out
}
