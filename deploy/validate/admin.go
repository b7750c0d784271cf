package validate

// The checks that tie the administrator's Job (deploy/k8s/admin) to the replicas, and
// what every identity's keys directory holds.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// checkAdmin requires every container that runs `replica reconfigure` to sign as the
// administrator the replicas obey, to run the replicas' image, and to ask replicas the
// gateway also talks to (the membership in force).
func (c *checker) checkAdmin() {
	var replicas []*workload
	for _, w := range c.workloads {
		if pbftNodeIDs(w) != nil {
			replicas = append(replicas, w)
		}
	}
	for _, w := range c.workloads {
		for _, ctr := range w.tmpl.Spec.Containers {
			if !runsReconfigure(ctr) {
				continue
			}
			where := fmt.Sprintf("%s container %q", w, ctr.Name)
			env := resolveEnv(w, ctr, w.podName(0))
			if len(replicas) == 0 {
				c.reportf("%s: runs replica reconfigure, but no replicas are in the manifests", where)
			}
			for _, r := range replicas {
				rc := replicaContainer(r)
				renv := resolveEnv(r, rc, r.podName(0))
				if env["PBFT_ADMIN_ID"] == "" || renv["PBFT_ADMIN_ID"] != env["PBFT_ADMIN_ID"] {
					c.reportf("%s: signs as PBFT_ADMIN_ID %q, but %s obeys %q", where, env["PBFT_ADMIN_ID"], r, renv["PBFT_ADMIN_ID"])
				}
				if ctr.Image != rc.Image {
					c.reportf("%s: image %s, but %s runs %s", where, ctr.Image, r, rc.Image)
				}
			}
		}
	}
}

// replicaContainer returns the container of w that runs a replica (PBFT_NODE_ID).
func replicaContainer(w *workload) corev1.Container {
	for _, ctr := range w.tmpl.Spec.Containers {
		if hasEnv(ctr, "PBFT_NODE_ID") {
			return ctr
		}
	}
	return corev1.Container{}
}

// identityOf returns the id a PBFT container acts as: a replica's PBFT_NODE_ID, the
// administrator for replica reconfigure, else the gateway's PBFT_CLIENT_ID.
func identityOf(ctr corev1.Container, env map[string]string) string {
	switch {
	case runsReconfigure(ctr):
		return env["PBFT_ADMIN_ID"]
	case env["PBFT_NODE_ID"] != "":
		return env["PBFT_NODE_ID"]
	case env["PBFT_CLIENT_ID"] != "":
		return env["PBFT_CLIENT_ID"]
	}
	return "gateway"
}

// checkKeysDir checks, in the simulated pod (after the init containers and one pass of
// the looping ones), the PBFT_KEYS_DIR of ctr: its own private key and no other, and the
// public key of every replica it names and of the administrator.
func (c *checker) checkKeysDir(w *workload, ctr corev1.Container, pod string) {
	env := resolveEnv(w, ctr, pod)
	dir := env["PBFT_KEYS_DIR"]
	if dir == "" {
		return
	}
	host, ok := c.podFiles(w, pod).hostPath(ctr, dir)
	if !ok {
		return // reported by checkSettings
	}
	where := fmt.Sprintf("%s container %q (pod %s): PBFT_KEYS_DIR %s", w, ctr.Name, pod, dir)
	self := identityOf(ctr, env)
	ents, err := os.ReadDir(host)
	if err != nil {
		c.reportf("%s: %v", where, strings.ReplaceAll(err.Error(), host, dir))
		return
	}
	have := map[string]bool{}
	for _, e := range ents {
		have[e.Name()] = true
		if n := e.Name(); strings.HasSuffix(n, ".key") && n != self+".key" {
			c.reportf("%s: holds %s, the private key of another identity than %s", where, n, self)
		}
	}
	want := []string{self + ".key"}
	for _, id := range slices.Concat(splitList(env["PBFT_NODE_IDS"]), splitList(env["PBFT_INITIAL_IDS"]), splitList(env["PBFT_ADMIN_ID"])) {
		want = append(want, id+".pub")
	}
	for _, f := range want {
		if !have[f] {
			c.reportf("%s: no %s", where, filepath.Base(f))
		}
	}
}
