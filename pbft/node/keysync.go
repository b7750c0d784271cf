package node

import "time"

// syncKeys keeps the keyring tagging for every replica of the configurations the replica
// knows: when a reconfiguration decides a membership with new ids, their tags go into
// every broadcast from then on (the checkpoint that certifies a joiner's state), and a
// joiner admitted by the administrator tags for the old members it fetches from. A key
// the keyring lacks is read from PBFT_KEYS_DIR (auth.Keyring.Include); while one is
// missing the node says so and tries again, at most once a second (it reads the keys
// directory).
func (n *Node) syncKeys() {
	version := n.r.ConfigVersion()
	if version == n.keysVersion {
		return
	}
	now := time.Now()
	if now.Before(n.keysRetry) {
		return
	}
	ids := n.r.KnownMembers()
	if err := n.keys.Include(ids); err != nil {
		n.keysRetry = now.Add(time.Second)
		if n.logs.allow("keys", now) {
			n.log.Error("cannot authenticate a member of a known configuration: put its <id>.pub in the keys directory", "members", ids, "err", err)
		}
		return
	}
	n.keysVersion = version
}
