package topology

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// AddReplica adds a replica id that Start did not start, to join the running ones by a
// reconfiguration: it writes its key pair into KeysDir (unless there) and gives it the
// settings of the others (a free HTTP port, a data dir with DataDirs, Options.Env).
// StartReplica then starts it, with extra settings such as PBFT_JOIN=on and the
// PBFT_NODE_IDS it joins (the later value of a variable wins). With Auth, id must be a
// user of auth.conf that Start did not run (AuthReplicaIDs: replica-4 ... replica-7 after
// replica-0 ... replica-3), as a pod the StatefulSet adds is.
func (t *Topology) AddReplica(ctx context.Context, id string) error {
	if err := t.authUserOf(id); err != nil {
		return err
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
