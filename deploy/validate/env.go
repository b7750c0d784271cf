package validate

import (
	"fmt"
	"net"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/pbft-nats/pbft/pbft/config"
)

// SettingsVariables returns every PBFT_ variable config.Settings reads.
func SettingsVariables() map[string]bool {
	vars := map[string]bool{}
	for _, v := range config.Variables() {
		vars[v.Name] = true
	}
	return vars
}

// varRef matches Kubernetes' dependent variable references $(NAME); $$ escapes a $.
var varRef = regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// envMu serializes the use of the process environment by config.Load and the NATS
// configuration parser.
var envMu sync.Mutex

// withEnv runs fn with exactly the given variables among those named like the keys of
// env or starting with "PBFT_", restoring the environment afterwards.
func withEnv(env map[string]string, fn func()) {
	envMu.Lock()
	defer envMu.Unlock()
	saved := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if _, ok := env[k]; ok || strings.HasPrefix(k, "PBFT_") {
			saved[k] = v
			os.Unsetenv(k)
		}
	}
	for k, v := range env {
		os.Setenv(k, v)
	}
	defer func() {
		for k := range env {
			os.Unsetenv(k)
		}
		for _, kv := range os.Environ() {
			if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "PBFT_") {
				os.Unsetenv(k)
			}
		}
		for k, v := range saved {
			os.Setenv(k, v)
		}
	}()
	fn()
}

// secretValue is the stand-in value of a Secret key: what a test sets and expects.
func secretValue(secret, key string) string { return "pw-" + secret + "-" + key }

// resolveEnv returns the environment ctr sees in the pod named pod of w: literal values
// with $(VAR) expanded, fieldRefs, ConfigMap keys of the manifests, and stand-ins for
// Secret keys (secretValue). Files
// (such as PBFT_NATS_PASSWORD_FILE) are resolved by podFiles, not here.
func resolveEnv(w *workload, ctr corev1.Container, pod string) map[string]string {
	env := map[string]string{}
	for _, e := range ctr.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = expand(e.Value, env)
		case e.ValueFrom.FieldRef != nil:
			switch e.ValueFrom.FieldRef.FieldPath {
			case "metadata.name":
				env[e.Name] = pod
			case "metadata.namespace":
				env[e.Name] = "default"
			default:
				env[e.Name] = "field-" + e.ValueFrom.FieldRef.FieldPath
			}
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = secretValue(e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
		case e.ValueFrom.ConfigMapKeyRef != nil:
			r := e.ValueFrom.ConfigMapKeyRef
			if cm := w.configMaps[r.Name]; cm != nil {
				if v, ok := cm.Data[r.Key]; ok {
					env[e.Name] = v
					continue
				}
			}
			env[e.Name] = "configmap-" + r.Key // reported by checkEnv
		default:
			env[e.Name] = "unresolved"
		}
	}
	return env
}

func expand(s string, env map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		name := m[2 : len(m)-1]
		if v, ok := env[name]; ok {
			return v
		}
		return m // Kubernetes leaves an unresolved reference as it is.
	})
}

func (c *checker) checkEnv(where string, w *workload, ctr corev1.Container) {
	known := SettingsVariables()
	defined := map[string]bool{}
	pbft := false
	for _, e := range ctr.Env {
		if strings.HasPrefix(e.Name, "PBFT_") {
			pbft = true
			if !known[e.Name] {
				c.reportf("%s: %s is not a variable of config.Settings", where, e.Name)
			}
		}
		if defined[e.Name] {
			c.reportf("%s: %s set twice", where, e.Name)
		}
		for _, m := range varRef.FindAllStringSubmatch(e.Value, -1) {
			if m[1] != "" && !defined[m[1]] {
				c.reportf("%s: %s refers to $(%s), which is not defined before it", where, e.Name, m[1])
			}
		}
		if vf := e.ValueFrom; vf != nil {
			if vf.FileKeyRef != nil {
				// Env files (KEP-3721) are beta only since Kubernetes 1.35; older API servers
				// drop the field and leave the variable unset.
				c.reportf("%s: %s uses fileKeyRef, which needs Kubernetes >= 1.35: mount the file and pass its path instead", where, e.Name)
			}
			if r := vf.ConfigMapKeyRef; r != nil {
				if cm := c.configMaps[r.Name]; cm == nil {
					c.reportf("%s: %s refers to ConfigMap %q, which is not in the manifests", where, e.Name, r.Name)
				} else if _, ok := cm.Data[r.Key]; !ok {
					c.reportf("%s: %s refers to key %q missing from ConfigMap %q", where, e.Name, r.Key, r.Name)
				}
			}
		}
		defined[e.Name] = true
	}
	if pbft {
		c.checkSettings(where, w, ctr)
	}
}

// checkSettings loads config.Settings from the environment each pod of w would give ctr
// and checks the values against the pod: ids, mounts, ports.
func (c *checker) checkSettings(where string, w *workload, ctr corev1.Container) {
	n := int(w.replicas)
	if w.kind != "StatefulSet" || n < 1 {
		n = 1
	}
	pods := map[string]bool{}
	for i := 0; i < n; i++ {
		pod := w.podName(i)
		env := resolveEnv(w, ctr, pod)
		var s config.Settings
		var err error
		withEnv(env, func() { s, err = config.Load() })
		if err != nil {
			c.reportf("%s (pod %s): config.Load: %v", where, pod, err)
			return
		}
		if s.NodeID != "" {
			pods[s.NodeID] = true
			if !contains(s.NodeIDs, s.NodeID) {
				c.reportf("%s (pod %s): PBFT_NODE_ID %q is not in PBFT_NODE_IDS %v", where, pod, s.NodeID, s.NodeIDs)
			}
		}
		if s.HTTPAddr != "" {
			_, port, err := net.SplitHostPort(s.HTTPAddr)
			if _, ok := containerPort(ctr, intOrString{num: atoi32(port)}); err != nil || !ok {
				c.reportf("%s: PBFT_HTTP_ADDR %q listens on no declared containerPort", where, s.HTTPAddr)
			}
		}
		for name, dir := range map[string]string{"PBFT_DATA_DIR": s.DataDir, "PBFT_KEYS_DIR": s.KeysDir, "PBFT_NATS_PASSWORD_FILE": s.NATSPasswordFile} {
			if dir != "" && !mounted(ctr, dir) {
				c.reportf("%s: %s %s is not on a mounted volume", where, name, dir)
			}
		}
		if s.DataDir != "" {
			if m := mountOf(ctr, s.DataDir); m != nil && !claimed(w, m.Name) {
				c.reportf("%s: PBFT_DATA_DIR %s is on volume %q, not on a volumeClaimTemplate", where, s.DataDir, m.Name)
			}
		}
	}
	if len(pods) > 0 {
		ids := pbftNodeIDs(w)
		if len(ids) != len(pods) {
			c.reportf("%s: %d pods with ids %v, but PBFT_NODE_IDS lists %d: %v", where, len(pods), keys(pods), len(ids), ids)
		}
		for _, id := range ids {
			if !pods[id] {
				c.reportf("%s: PBFT_NODE_IDS names %q, which no pod of %s is", where, id, w)
			}
		}
	}
}

func atoi32(s string) int32 {
	var n int32
	if _, err := fmt.Sscan(s, &n); err != nil {
		return -1
	}
	return n
}

func mountOf(ctr corev1.Container, dir string) *corev1.VolumeMount {
	var best *corev1.VolumeMount
	for i, m := range ctr.VolumeMounts {
		mp := path.Clean(m.MountPath)
		if d := path.Clean(dir); d == mp || strings.HasPrefix(d, mp+"/") {
			if best == nil || len(mp) > len(best.MountPath) {
				best = &ctr.VolumeMounts[i]
			}
		}
	}
	return best
}

func mounted(ctr corev1.Container, dir string) bool { return mountOf(ctr, dir) != nil }

func claimed(w *workload, volume string) bool {
	for _, c := range w.claims {
		if c.Name == volume {
			return true
		}
	}
	return false
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
