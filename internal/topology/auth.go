package topology

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
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
