package auth

import (
	"crypto/ed25519"
	"crypto/hmac"
	"fmt"
	"maps"
	"slices"
)

// ring is what a keyring knows of the others: the replicas it tags for, every principal's
// public key and the MAC keys derived from them. It is never changed once published;
// Include publishes a larger copy, so that Seal and Open read it without a lock.
type ring struct {
	replicas []string // the receivers of a broadcast's or a request's authenticator
	selfPos  int      // the keyring's own position in replicas, or -1: hasTag's hint
	pubs     map[string]ed25519.PublicKey
	macs     map[string]*macState
}

// Authenticators are sets, not vectors: a sender tags for every replica it knows, in its
// own order, and a receiver looks for its tag in every slot (hasTag). A tag is bound to
// its receiver and sender (the key only those two share, derived from both ids, and the
// direction), the kind, the counter and the payload's digest, so where it sits proves
// nothing and needs no agreement:
// replicas that joined the membership later, a gateway started before them and a joiner
// told only the new membership each list the replicas in their own order, and all of them
// still authenticate each other. The slot at hint (this receiver's position in its own
// list, where senders that list the replicas alike put its tag) is tried first; each
// compare is constant-time, and which slot matched is no secret.
func hasTag(tags, want []byte, hint int) bool {
	if hint >= 0 && (hint+1)*tagSize <= len(tags) && hmac.Equal(want, tags[hint*tagSize:(hint+1)*tagSize]) {
		return true
	}
	for i := 0; i+tagSize <= len(tags); i += tagSize {
		if hmac.Equal(want, tags[i:i+tagSize]) {
			return true
		}
	}
	return false
}

// Replicas returns the replicas this keyring tags for, in its order.
func (k *Keyring) Replicas() []string { return slices.Clone(k.ring.Load().replicas) }

// Include makes the keyring tag for each of ids too (a replica that joins the
// membership): it appends the ids it does not list yet. A public key it does not know is
// read from the keys directory the keyring was loaded from (LoadKeyring), where an
// operator puts a new replica's <id>.pub before reconfiguring to it; the error names a
// key still missing, and then nothing changed. Replicas that left stay listed: a tag
// for them costs 16 bytes and lets them serve the state they hold.
func (k *Keyring) Include(ids []string) error {
	k.grow.Lock()
	defer k.grow.Unlock()
	old := k.ring.Load()
	var added []string
	for _, id := range ids {
		if !slices.Contains(old.replicas, id) && !slices.Contains(added, id) {
			added = append(added, id)
		}
	}
	if len(added) == 0 {
		return nil
	}
	r := &ring{replicas: append(slices.Clone(old.replicas), added...), pubs: maps.Clone(old.pubs), macs: maps.Clone(old.macs)}
	r.selfPos = slices.Index(r.replicas, k.self.ID)
	for _, id := range added {
		if _, ok := r.pubs[id]; ok || id == k.self.ID {
			continue
		}
		if k.dir == "" {
			return fmt.Errorf("%w: no public key for replica %s", ErrKeys, id)
		}
		pubs, err := LoadPublic(k.dir, []string{id})
		if err != nil {
			return err
		}
		key, err := macKey(k.self, id, pubs[id])
		if err != nil {
			return err
		}
		r.pubs[id], r.macs[id] = pubs[id], newMacState(key)
	}
	k.ring.Store(r)
	return nil
}
