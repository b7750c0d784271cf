package kv

import (
	"slices"
	"strings"
)

// keyOrder keeps the store's keys in byte order between encodings, so that a checkpoint
// costs a merge of the keys set since the last one into the keys already in order,
// rather than a sort of the whole state each time: with a checkpoint every K sequence
// numbers and a state that grows, sorting was a third of a replica's CPU.
type keyOrder struct {
	// sorted holds, in strictly increasing order, every key of the store as of the last
	// encoding, and possibly keys deleted since (the merge drops them).
	sorted []string
	// fresh holds the keys added since, unordered; one deleted and set again may be
	// there twice, or in sorted too.
	fresh []string
	spare []string // the previous sorted slice, reused by the next merge
}

// added notes a key that m did not hold before (it does now). The order keeps a copy of its own: the store's
// key shares one string with its value, and the map takes the key of each later set,
// so the first one would keep the first value alive.
func (o *keyOrder) added(k string, m map[string]string) {
	o.fresh = append(o.fresh, strings.Clone(k))
	if len(o.fresh) > o.compactAt(len(m)) {
		// Many keys set (and some deleted, or set again) between encodings: keep only
		// those still in the store, once each, so that fresh stays within its size.
		o.fresh = slices.DeleteFunc(o.fresh, func(k string) bool { _, ok := m[k]; return !ok })
		slices.Sort(o.fresh)
		o.fresh = slices.Compact(o.fresh)
	}
}

// compactAt is how long fresh may grow over a store of live keys before added compacts
// it: after a compaction it holds at most live keys, so compactions come at least
// live+1024 additions apart and cost O(log) a key.
func (o *keyOrder) compactAt(live int) int { return 2*live + 1024 }

// reset starts over from keys, which must be strictly increasing (a restored snapshot).
func (o *keyOrder) reset(keys []string) {
	o.sorted, o.fresh, o.spare = keys, nil, nil
}

// each calls fn with every key of m and its value in strictly increasing key order, and
// keeps that order for the next call.
func (o *keyOrder) each(m map[string]string, fn func(k, v string)) {
	slices.Sort(o.fresh)
	fresh := slices.Compact(o.fresh)
	merged := o.spare[:0]
	if cap(merged) < len(m) {
		merged = make([]string, 0, len(m))
	}
	old := o.sorted
	emit := func(k string) {
		if v, ok := m[k]; ok {
			merged = append(merged, k)
			fn(k, v)
		}
	}
	i, j := 0, 0
	for i < len(old) && j < len(fresh) {
		switch c := strings.Compare(old[i], fresh[j]); {
		case c < 0:
			emit(old[i])
			i++
		case c > 0:
			emit(fresh[j])
			j++
		default: // deleted and set again: one key
			emit(old[i])
			i, j = i+1, j+1
		}
	}
	for ; i < len(old); i++ {
		emit(old[i])
	}
	for ; j < len(fresh); j++ {
		emit(fresh[j])
	}
	clear(old) // let go of deleted keys' strings
	clear(fresh)
	o.sorted, o.spare, o.fresh = merged, old[:0], fresh[:0]
}
