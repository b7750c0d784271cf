package topology

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// The NATS users of auth.conf for the NATS-native API: ClientUser may only ask the
// gateway on pbft.pbft.api, MonitorUser only the services framework's discovery ($SRV.>,
// `nats micro`). Their passwords are Password(ClientUser) and Password(MonitorUser).
const (
	ClientUser  = "client"
	MonitorUser = "monitor"
)

// authUser matches a user of auth.conf.
var authUser = regexp.MustCompile(`user: "([^"]+)"`)

// setupAuth copies auth.conf next to the NATS configs and makes a password per principal.
func (t *Topology) setupAuth(principals []string) error {
	if t.o.Cluster != "pbft" {
		return fmt.Errorf("topology: auth.conf's permissions are for the cluster \"pbft\", not %q", t.o.Cluster)
	}
	src, err := AuthConfPath()
	if err != nil {
		return err
	}
	conf, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("topology: %w", err)
	}
	for _, id := range slices.Concat(principals, []string{ClientUser, MonitorUser}) {
		if !strings.Contains(string(conf), fmt.Sprintf("user: %q", id)) {
			return fmt.Errorf("topology: %s has no NATS user %q", src, id)
		}
	}
	// Every user gets a password, since nats-server refuses an undefined variable: the
	// NATS-API users, which have no key pair, and the users of replicas this topology
	// does not run (the ones deploy/k8s grows to, the administrator).
	for _, m := range authUser.FindAllStringSubmatch(string(conf), -1) {
		id := m[1]
		if _, ok := t.passwords[id]; ok {
			continue
		}
		buf := make([]byte, 16)
		_, _ = rand.Read(buf)
		t.passwords[id] = hex.EncodeToString(buf)
		t.natsEnv = append(t.natsEnv, PasswordEnv(id)+"="+t.passwords[id])
	}
	return os.WriteFile(filepath.Join(t.dir, "nats", "auth.conf"), conf, 0o644)
}

// AuthReplicaIDs are the replica users of auth.conf (replica-<i>), by ordinal: the ids
// a deployment with its users may run, those it starts with and those that join later
// (deploy/README.md, Changing the membership: each id joins once, ids are never reused).
func AuthReplicaIDs() ([]string, error) {
	src, err := AuthConfPath()
	if err != nil {
		return nil, err
	}
	conf, err := os.ReadFile(src)
	if err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	var ids []string
	ordinal := map[string]int{}
	for _, m := range authUser.FindAllStringSubmatch(string(conf), -1) {
		if n, ok := replicaOrdinal(m[1]); ok {
			ids = append(ids, m[1])
			ordinal[m[1]] = n
		}
	}
	slices.SortFunc(ids, func(a, b string) int { return ordinal[a] - ordinal[b] })
	return ids, nil
}

// replicaOrdinal is i of "replica-<i>" (the StatefulSet's pod names).
func replicaOrdinal(id string) (int, bool) {
	s, ok := strings.CutPrefix(id, "replica-")
	if !ok || s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0
}

// authUserOf refuses an id that has no user in auth.conf (so no password): with Auth
// a process of that id could not connect.
func (t *Topology) authUserOf(id string) error {
	if !t.o.Auth {
		return nil
	}
	if _, ok := t.passwords[id]; !ok {
		return fmt.Errorf("topology: auth.conf has no NATS user %q (a replica added later takes an id it has a user for: AuthReplicaIDs)", id)
	}
	return nil
}

// AuthConfPath returns the path of deploy/k8s/nats/auth.conf in this module.
func AuthConfPath() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "deploy", "k8s", "nats", "auth.conf"), nil
}

// PasswordEnv is the environment variable auth.conf reads id's NATS password from:
// replica-0 -> REPLICA_0_PASSWORD, gateway -> GATEWAY_PASSWORD.
func PasswordEnv(id string) string {
	return strings.ToUpper(strings.ReplaceAll(id, "-", "_")) + "_PASSWORD"
}
