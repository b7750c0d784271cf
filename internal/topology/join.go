package topology

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// AddReplica adds a replica id that Start did not start, to join the running ones by a
// reconfiguration: it writes its key pair into KeysDir (unless there) and gives it the
// settings of the others (a free HTTP port, a data dir with DataDirs, Options.Env).
// StartReplica then starts it, with extra settings such as PBFT_JOIN=on and the
// PBFT_NODE_IDS it joins (the later value of a variable wins). Not with Auth, whose
// users name the replicas auth.conf fixes.
func (t *Topology) AddReplica(ctx context.Context, id string) error {
	if t.o.Auth {
		return errors.New("topology: AddReplica with Auth: auth.conf has no user for a new replica")
	}
	t.mu.Lock()
	_, exists := t.replicas[id]
	t.mu.Unlock()
	if exists {
		return fmt.Errorf("topology: replica %s exists", id)
	}
	if _, err := os.Stat(filepath.Join(t.keysDir, id+".key")); err != nil {
		if out, err := exec.CommandContext(ctx, t.b.Replica, "keygen", "-dir", t.keysDir, id).CombinedOutput(); err != nil {
			return fmt.Errorf("topology: keygen %s: %v\n%s", id, err, out)
		}
	}
	return t.addReplica(id) // Replicas still lists those Start started
}
