package kv

import (
	"slices"
	"strings"
)

// entry is one key of the store and its value. The map and the key order share it, so
// that an encoding walks the keys in order without looking each one up in the map.
type entry struct {
	key, value string
	gone       bool // deleted: the order drops it at its next merge
}

// keyOrder keeps the store's entries in key order between encodings, so that a
// checkpoint costs a merge of the keys set since the last one into those already in
// order, rather than a sort of the whole state and a map lookup per key each time: with
// a checkpoint every K sequence numbers and a state that grows, that was a third of a
// replica's CPU.
//
// Each live key has exactly one live entry: a set of a present key changes its entry's
// value, and a key deleted and set again gets a new entry (the old one is gone).
type keyOrder struct {
	// sorted holds, in strictly increasing key order, the store's entries as of the last
	// merge, and possibly entries deleted since.
	sorted []*entry
	// fresh holds the entries added since, unordered, and possibly some deleted since.
	fresh []*entry
	spare []*entry // the previous sorted slice, reused by the next merge
}

// added notes a new entry of a store of live keys (the entry among them).
func (o *keyOrder) added(e *entry, live int) {
	o.fresh = append(o.fresh, e)
	if len(o.fresh) > 2*live+1024 {
		// Many keys set and deleted between encodings: drop the deleted ones, so that
		// fresh holds at most the live keys and compactions come at least live+1024
		// additions apart.
		o.fresh = slices.DeleteFunc(o.fresh, func(e *entry) bool { return e.gone })
	}
}

// reset starts over from entries in strictly increasing key order (a restored
// snapshot).
func (o *keyOrder) reset(entries []*entry) {
	o.sorted, o.fresh, o.spare = entries, nil, nil
}

// settle merges the entries added since the last call into the order and returns every
// live entry in strictly increasing key order (the caller must not keep the slice past
// the next change to the store).
func (o *keyOrder) settle(live int) []*entry {
	fresh := slices.DeleteFunc(o.fresh, func(e *entry) bool { return e.gone })
	o.fresh = fresh // DeleteFunc cleared the tail it cut off
	if len(fresh) == 0 && len(o.sorted) == live {
		return o.sorted // nothing added or deleted since
	}
	slices.SortFunc(fresh, func(a, b *entry) int { return strings.Compare(a.key, b.key) })
	merged := o.spare[:0]
	if cap(merged) < live {
		merged = make([]*entry, 0, live+live/4) // room to grow before the next allocation
	}
	old := o.sorted
	i, j := 0, 0
	for i < len(old) || j < len(fresh) {
		// Live keys are unique, so two entries never compare equal while both are live.
		var e *entry
		if j == len(fresh) || (i < len(old) && old[i].key < fresh[j].key) {
			e, i = old[i], i+1
		} else {
			e, j = fresh[j], j+1
		}
		if !e.gone {
			merged = append(merged, e)
		}
	}
	clear(old) // let go of deleted entries
	clear(fresh)
	o.sorted, o.spare, o.fresh = merged, old[:0], fresh[:0]
	return merged
}
