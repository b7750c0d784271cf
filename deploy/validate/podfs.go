package validate

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// podFS is the simulated filesystem of one pod: one directory per volume (and per
// volumeClaimTemplate), filled as the kubelet would fill it, with stand-in Secret values
// (secretValue), and then changed by the pod's init containers, whose shell scripts are
// run with their mount paths moved into those directories.
type podFS struct {
	root string
	dirs map[string]string // volume or claim name -> directory
}

// hostPath returns where the file p of container ctr is in the simulated pod, and false
// if p is on no volume ctr mounts.
func (fs *podFS) hostPath(ctr corev1.Container, p string) (string, bool) {
	m := mountOf(ctr, p)
	if m == nil {
		return "", false
	}
	dir, ok := fs.dirs[m.Name]
	if !ok {
		return "", false
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(path.Clean(p), path.Clean(m.MountPath)), "/")
	return filepath.Join(dir, filepath.FromSlash(m.SubPath), filepath.FromSlash(rel)), true
}

// principals are the ids the stand-in Secrets hold keys for: every id in a
// PBFT_NODE_IDS, PBFT_INITIAL_IDS, PBFT_CLIENT_ID or PBFT_ADMIN_ID of the manifests (as
// the first pod of each workload resolves them), every StatefulSet pod's name, and
// "gateway" (the default client id).
func (c *checker) principals() []string {
	set := map[string]bool{"gateway": true}
	for _, w := range c.workloads {
		for _, ctr := range w.containers() {
			env := resolveEnv(w, ctr, w.podName(0))
			for _, name := range []string{"PBFT_NODE_IDS", "PBFT_INITIAL_IDS", "PBFT_CLIENT_ID", "PBFT_ADMIN_ID"} {
				for _, id := range splitList(env[name]) {
					set[id] = true
				}
			}
		}
		if w.kind == "StatefulSet" {
			for i := range int(w.replicas) {
				set[w.podName(i)] = true
			}
		}
	}
	return keys(set)
}

// secretKeys are the keys of a stand-in Secret: for every principal id, the keys id (a
// password, as in pbft-nats-auth), id.key and id.pub (a key pair, as in pbft-keys).
func (c *checker) secretKeys() []string {
	var out []string
	for _, id := range c.principals() {
		out = append(out, id, id+".key", id+".pub")
	}
	return out
}

// podFiles returns the simulated filesystem of pod of w after its init containers ran,
// building it on first use. Problems (a failing init script) are reported once.
func (c *checker) podFiles(w *workload, pod string) *podFS {
	key := w.String() + "/" + pod
	if fs, ok := c.pods[key]; ok {
		return fs
	}
	if c.pods == nil {
		c.pods = map[string]*podFS{}
	}
	fs := &podFS{dirs: map[string]string{}}
	c.pods[key] = fs
	root, err := os.MkdirTemp("", "pod-"+pod+"-")
	if err != nil {
		c.reportf("%s (pod %s): %v", w, pod, err)
		return fs
	}
	fs.root = root
	c.tmpDirs = append(c.tmpDirs, root)
	names := map[string]bool{}
	for _, v := range w.tmpl.Spec.Volumes {
		names[v.Name] = true
	}
	for _, pvc := range w.claims {
		names[pvc.Name] = true
	}
	for _, name := range keys(names) {
		dir := filepath.Join(root, "volumes", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			c.reportf("%s (pod %s): %v", w, pod, err)
			return fs
		}
		fs.dirs[name] = dir
		if v := w.volume(name); v != nil {
			if err := c.fillVolume(dir, *v); err != nil {
				c.reportf("%s (pod %s): volume %q: %v", w, pod, name, err)
			}
		}
	}
	for _, ic := range w.tmpl.Spec.InitContainers {
		if err := c.runInit(fs, w, ic, pod); err != nil {
			c.reportf("%s init container %q (pod %s): %v", w, ic.Name, pod, err)
		}
	}
	// Containers that run a shell script (the public-keys loop) run one pass.
	for _, ctr := range w.tmpl.Spec.Containers {
		if err := c.runOnePass(fs, w, ctr, pod); err != nil {
			c.reportf("%s container %q (pod %s): %v", w, ctr.Name, pod, err)
		}
	}
	return fs
}

// fillVolume writes what the kubelet would put into the volume v: stand-in Secret
// values, ConfigMap data of the manifests. emptyDirs and claims start empty.
func (c *checker) fillVolume(dir string, v corev1.Volume) error {
	switch {
	case v.Secret != nil:
		return c.writeSecret(dir, v.Secret.SecretName, v.Secret.Items)
	case v.ConfigMap != nil:
		return c.writeConfigMap(dir, v.ConfigMap.Name, v.ConfigMap.Items)
	case v.Projected != nil:
		for _, src := range v.Projected.Sources {
			var err error
			switch {
			case src.Secret != nil:
				err = c.writeSecret(dir, src.Secret.Name, src.Secret.Items)
			case src.ConfigMap != nil:
				err = c.writeConfigMap(dir, src.ConfigMap.Name, src.ConfigMap.Items)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *checker) writeSecret(dir, name string, items []corev1.KeyToPath) error {
	data := map[string]string{}
	for _, k := range c.secretKeys() {
		data[k] = secretValue(name, k)
	}
	if len(items) > 0 {
		// The Secret is not in the manifests: assume it has every key an item names.
		for _, it := range items {
			data[it.Key] = secretValue(name, it.Key)
		}
	}
	return writeItems(dir, data, items)
}

func (c *checker) writeConfigMap(dir, name string, items []corev1.KeyToPath) error {
	cm := c.configMaps[name]
	if cm == nil {
		return nil // reported by checkWorkload
	}
	return writeItems(dir, cm.Data, items)
}

// writeItems writes data into dir: every key as a file of its name, or only the items,
// each at its path.
func writeItems(dir string, data map[string]string, items []corev1.KeyToPath) error {
	files := map[string]string{}
	if len(items) == 0 {
		for k, v := range data {
			files[k] = v
		}
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			return fmt.Errorf("no key %q", it.Key)
		}
		files[it.Path] = v
	}
	for p, v := range files {
		clean := path.Clean("/" + p)[1:]
		if clean == "" || clean != p {
			return fmt.Errorf("path %q is not a plain relative path", p)
		}
		f := filepath.Join(dir, filepath.FromSlash(clean))
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(f, []byte(v), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// pathToken matches an absolute path in a shell script, up to the first character that
// ends a word or starts an expansion or a glob.
var pathToken = regexp.MustCompile(`(?m)(^|[\s"'=])(/[^\s"'$*?;|&()<>]*)`)

// SandboxScript moves the absolute paths of a shell script that lie under one of the
// mount paths (keys of dirs) to the matching directory (values): what an init
// container's script does to its volumes, it then does to those directories.
func SandboxScript(script string, dirs map[string]string) string {
	mounts := make([]string, 0, len(dirs))
	for m := range dirs {
		mounts = append(mounts, m)
	}
	// The longest mount path first: /secrets/keys before /secrets.
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	return pathToken.ReplaceAllStringFunc(script, func(s string) string {
		i := strings.IndexByte(s, '/')
		lead, p := s[:i], s[i:]
		for _, m := range mounts {
			mp := path.Clean(m)
			if p == mp || strings.HasPrefix(p, mp+"/") {
				return lead + dirs[m] + p[len(mp):]
			}
		}
		return s
	})
}

// containerScript returns the shell script container ctr runs in the simulated pod fs,
// with the environment Kubernetes gives it: `sh -c SCRIPT` ($(VAR) expanded, as
// Kubernetes does before the shell sees it) or `sh FILE` with FILE on a volume (a
// ConfigMap of scripts). ok is false for a container that runs no shell script.
func (c *checker) containerScript(fs *podFS, w *workload, ctr corev1.Container, pod string) (script string, env map[string]string, ok bool, err error) {
	args := append(append([]string{}, ctr.Command...), ctr.Args...)
	if len(args) < 2 || !contains([]string{"sh", "ash", "bash"}, path.Base(args[0])) {
		return "", nil, false, nil
	}
	env = resolveEnv(w, ctr, pod)
	switch {
	case args[1] == "-c" && len(args) >= 3:
		return expand(args[2], env), env, true, nil
	case strings.HasPrefix(args[1], "/"):
		host, mounted := fs.hostPath(ctr, args[1])
		if !mounted {
			return "", nil, true, fmt.Errorf("script %s is on no volume the container mounts", args[1])
		}
		b, err := os.ReadFile(host)
		if err != nil {
			return "", nil, true, fmt.Errorf("script %s: %v", args[1], strings.ReplaceAll(err.Error(), host, args[1]))
		}
		return string(b), env, true, nil
	}
	return "", nil, false, nil
}

// runScript runs the shell script of container ctr (containerScript) in the simulated
// pod, its mount paths moved into the pod's directories, with PATH first searching
// extraPath if not empty. Containers that run no shell script are skipped.
func (c *checker) runScript(fs *podFS, w *workload, ctr corev1.Container, pod, extraPath string) error {
	script, env, ok, err := c.containerScript(fs, w, ctr, pod)
	if !ok || err != nil {
		return err
	}
	dirs := map[string]string{}
	for _, m := range ctr.VolumeMounts {
		dir, ok := fs.dirs[m.Name]
		if !ok {
			continue // reported by checkMounts
		}
		dirs[m.MountPath] = filepath.Join(dir, filepath.FromSlash(m.SubPath))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", SandboxScript(script, dirs))
	cmd.Dir = fs.root
	pathVar := os.Getenv("PATH")
	if extraPath != "" {
		pathVar = extraPath + string(os.PathListSeparator) + pathVar
	}
	cmd.Env = []string{"PATH=" + pathVar}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if extraPath != "" && cmd.ProcessState != nil && cmd.ProcessState.ExitCode() == stoppedBySleep {
			return nil // a loop's first pass ran to its sleep
		}
		msg := strings.TrimSpace(out.String())
		for m, d := range dirs {
			msg = strings.ReplaceAll(msg, d, m)
		}
		return fmt.Errorf("script fails in the simulated pod: %v: %s", err, msg)
	}
	return nil
}

// runInit runs an init container's script in the simulated pod.
func (c *checker) runInit(fs *podFS, w *workload, ic corev1.Container, pod string) error {
	return c.runScript(fs, w, ic, pod, "")
}

// stoppedBySleep is the exit status of the stand-in sleep RunOnePass puts first on PATH.
const stoppedBySleep = 97

// runOnePass runs a looping container script (`while :; do ...; sleep N; done`) in the
// simulated pod once: a stand-in sleep ends the script with stoppedBySleep (the script
// uses set -e), so whatever one pass does is done.
func (c *checker) runOnePass(fs *podFS, w *workload, ctr corev1.Container, pod string) error {
	bin, err := os.MkdirTemp("", "fake-sleep-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(bin)
	if err := os.WriteFile(filepath.Join(bin, "sleep"), []byte(fmt.Sprintf("#!/bin/sh\nexit %d\n", stoppedBySleep)), 0o755); err != nil {
		return err
	}
	return c.runScript(fs, w, ctr, pod, bin)
}

// cleanup removes the simulated pods.
func (c *checker) cleanup() {
	for _, d := range c.tmpDirs {
		os.RemoveAll(d)
	}
	c.tmpDirs, c.pods = nil, nil
}
