package campaign

import "strconv"

// Whom a fault may hit: the room for another fault and the choice of its target.

// room reports whether a fault of kind may start now.
func (n *Nemesis) room(kind FaultKind) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if reconfigFault(kind) {
		return n.reconfigRoom(kind)
	}
	if replicaFault(kind) {
		return n.faulty < n.budget()
	}
	for i := range n.c.NATSServers() {
		if n.busy[natsName(i)] {
			return false
		}
	}
	return true
}

// pick chooses a target for kind and reserves it, or reports that none may be faulted.
func (n *Nemesis) pick(kind FaultKind) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var candidates []string
	if replicaFault(kind) {
		if n.faulty >= n.budget() {
			return "", false
		}
		for _, id := range n.members { // members of the configuration in force only
			if !n.busy[id] {
				candidates = append(candidates, id)
			}
		}
	} else {
		if n.c.NATSServers() < 3 {
			return "", false
		}
		for i := range n.c.NATSServers() {
			if n.busy[natsName(i)] {
				return "", false // one NATS server down at a time keeps a quorum of routes
			}
			candidates = append(candidates, natsName(i))
		}
	}
	if len(candidates) == 0 {
		return "", false
	}
	t := candidates[n.rng.IntN(len(candidates))]
	n.busy[t] = true
	if replicaFault(kind) {
		n.faulty++
		n.maxFault = max(n.maxFault, n.faulty)
	}
	return t, true
}

func natsName(i int) string { return "nats-" + strconv.Itoa(i) }

func natsIndex(name string) int {
	i, _ := strconv.Atoi(name[len("nats-"):])
	return i
}
