package validate

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

const (
	k8sDir     = "../k8s"
	authConf   = "nats/auth.conf"
	identitySh = "scripts/identity.sh"
	root       = "/k8s"
)

var natsUsers = []string{"replica-0", "replica-1", "replica-2", "replica-3", "replica-4", "replica-5", "replica-6", "replica-7", "gateway", "admin"}

// runningUsers are the NATS users of the pods the base runs (four replicas, the gateway)
// and of the administrator's Job.
var runningUsers = []string{"replica-0", "replica-1", "replica-2", "replica-3", "gateway", "admin"}

// natsAPIUsers are the NATS users of the NATS-native API, which no pod of the manifests
// connects as.
var natsAPIUsers = []string{"client", "monitor"}

// tree copies deploy/k8s into memory (under /k8s), so that tests can break copies of it.
func tree(t *testing.T) filesys.FileSystem {
	t.Helper()
	mem := filesys.MakeFsInMemory()
	err := filepath.WalkDir(k8sDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(k8sDir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return mem.WriteFile(filepath.Join(root, rel), data)
	})
	if err != nil {
		t.Fatalf("copying %s: %v", k8sDir, err)
	}
	return mem
}

// render renders the base and deploy/k8s/admin (the administrator's Job, applied apart)
// as one stream: the checks see every workload that may run.
func render(t *testing.T, fsys filesys.FileSystem) []byte {
	t.Helper()
	out, err := RenderAll(fsys, root)
	if err != nil {
		t.Fatalf("kustomize build: %v", err)
	}
	return out
}

func find[T any](t *testing.T, objs []Object, kind, name string) T {
	t.Helper()
	for _, o := range objs {
		if o.Kind == kind && o.Name == name {
			if v, ok := o.Obj.(T); ok {
				return v
			}
		}
	}
	var zero T
	t.Fatalf("no %s/%s in the rendered manifests", kind, name)
	return zero
}

func TestManifestsAreValid(t *testing.T) {
	out := render(t, tree(t))
	objs, problems := Load(out)
	problems = append(problems, Check(objs)...)
	for _, p := range problems {
		t.Error(p)
	}

	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.Kind]++
	}
	// ConfigMaps: nats-config, replica-membership and pbft-scripts, which the admin
	// kustomization renders again (the same object).
	want := map[string]int{"StatefulSet": 2, "Deployment": 1, "Job": 1, "Service": 4, "PodDisruptionBudget": 2, "ConfigMap": 4, "NetworkPolicy": 1}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("%d objects of kind %s, want %d (all: %v)", kinds[k], k, n, kinds)
		}
	}
	if strings.Contains(string(out), "\n  namespace:") {
		t.Errorf("the base sets a namespace; users choose it in an overlay")
	}

	rs := find[*appsv1.StatefulSet](t, objs, "StatefulSet", "replica")
	if *rs.Spec.Replicas != 4 || rs.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("replica StatefulSet: %d replicas, policy %q; want 4, Parallel", *rs.Spec.Replicas, rs.Spec.PodManagementPolicy)
	}
	if len(rs.Spec.VolumeClaimTemplates) != 1 || rs.Spec.VolumeClaimTemplates[0].Name != "data" {
		t.Errorf("replica StatefulSet: volumeClaimTemplates %v, want one named data", rs.Spec.VolumeClaimTemplates)
	}
	aff := rs.Spec.Template.Spec.Affinity
	if aff == nil || aff.PodAntiAffinity == nil || len(aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0 ||
		aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey != "kubernetes.io/hostname" {
		t.Errorf("replica StatefulSet: no preferred pod anti-affinity on kubernetes.io/hostname: %+v", aff)
	}
	ctr := rs.Spec.Template.Spec.Containers[0]
	cms := map[string]*corev1.ConfigMap{"replica-membership": find[*corev1.ConfigMap](t, objs, "ConfigMap", "replica-membership")}
	env := resolveEnv(&workload{kind: "StatefulSet", name: "replica", tmpl: rs.Spec.Template, configMaps: cms}, ctr, "replica-2")
	for k, v := range map[string]string{
		"PBFT_NODE_ID": "replica-2", "PBFT_NODE_IDS": "replica-0,replica-1,replica-2,replica-3", "PBFT_CLUSTER": "pbft",
		"PBFT_INITIAL_IDS": "replica-0,replica-1,replica-2,replica-3", "PBFT_ADMIN_ID": "admin",
		"PBFT_DATA_DIR": "/data", "PBFT_HTTP_ADDR": ":9090",
		"PBFT_NATS_URL":  "nats://nats-0.nats-headless:4222,nats://nats-1.nats-headless:4222,nats://nats-2.nats-headless:4222",
		"PBFT_NATS_USER": "replica-2", "PBFT_NATS_PASSWORD_FILE": "/keys/nats-password",
	} {
		if env[k] != v {
			t.Errorf("replica-2: %s = %q, want %q", k, env[k], v)
		}
	}
	if ctr.Image != "pbft:latest" {
		t.Errorf("replica image %q, want pbft:latest (kustomize images)", ctr.Image)
	}

	pdb := find[*policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget", "replica")
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("replica PDB maxUnavailable %v, want 1", pdb.Spec.MaxUnavailable)
	}
	if !selects(pdb.Spec.Selector, rs.Spec.Template.Labels) {
		t.Errorf("replica PDB does not select the replica pods")
	}

	gw := find[*appsv1.Deployment](t, objs, "Deployment", "gateway")
	if *gw.Spec.Replicas != 1 || gw.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("gateway: %d replicas, strategy %q; want 1, Recreate", *gw.Spec.Replicas, gw.Spec.Strategy.Type)
	}
	svc := find[*corev1.Service](t, objs, "Service", "gateway")
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8080 {
		t.Errorf("gateway Service ports %v, want 8080", svc.Spec.Ports)
	}
	nats := find[*appsv1.StatefulSet](t, objs, "StatefulSet", "nats")
	if *nats.Spec.Replicas != 3 {
		t.Errorf("NATS: %d servers, want 3", *nats.Spec.Replicas)
	}
}

// TestNATSConfig parses the rendered nats.conf + auth.conf with the NATS server's own
// parser and checks what it makes of them.
func TestNATSConfig(t *testing.T) {
	objs, problems := Load(render(t, tree(t)))
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	var cm *corev1.ConfigMap
	for _, o := range objs {
		if v, ok := o.Obj.(*corev1.ConfigMap); ok && strings.HasPrefix(v.Name, "nats-config-") {
			cm = v
		}
	}
	if cm == nil {
		t.Fatal("no nats-config ConfigMap (with a kustomize hash suffix)")
	}
	dir := t.TempDir()
	for _, k := range []string{"nats.conf", "auth.conf"} {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(cm.Data[k]), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("SERVER_NAME", "nats-1")
	t.Setenv("NATS_ROUTE_PASSWORD", "routepw")
	var routes []string
	for i := range 3 {
		routes = append(routes, fmt.Sprintf(`"nats://route:routepw@nats-%d.nats-headless:6222"`, i))
	}
	t.Setenv("NATS_ROUTES", "["+strings.Join(routes, ", ")+"]")
	for _, u := range slices.Concat(natsUsers, natsAPIUsers) {
		t.Setenv(strings.ToUpper(strings.ReplaceAll(u, "-", "_"))+"_PASSWORD", "secret-"+u)
	}
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if opts.ServerName != "nats-1" || opts.Port != 4222 || opts.HTTPPort != 8222 || opts.Cluster.Port != 6222 || len(opts.Routes) != 3 {
		t.Errorf("server %q port %d http %d cluster %d routes %v", opts.ServerName, opts.Port, opts.HTTPPort, opts.Cluster.Port, opts.Routes)
	}
	if opts.Cluster.Username != "route" || opts.Cluster.Password != "routepw" {
		t.Errorf("route authorization: user %q password %q, want route and $NATS_ROUTE_PASSWORD", opts.Cluster.Username, opts.Cluster.Password)
	}
	for _, r := range opts.Routes {
		if pw, _ := r.User.Password(); r.User.Username() != "route" || pw != "routepw" {
			t.Errorf("route %s does not carry the route credentials", r.Redacted())
		}
	}
	got := map[string]string{}
	for _, u := range opts.Users {
		got[u.Username] = u.Password
	}
	for _, u := range slices.Concat(natsUsers, natsAPIUsers) {
		if got[u] != "secret-"+u {
			t.Errorf("NATS user %q: password %q, want the value of its env var", u, got[u])
		}
	}
	if len(got) != len(natsUsers)+len(natsAPIUsers) {
		t.Errorf("NATS users %v, want exactly %v and %v", got, natsUsers, natsAPIUsers)
	}
}

// mutate returns a copy of the k8s tree with old replaced by new in file (relative to
// deploy/k8s); it fails the test if old does not occur there, so no breakage is vacuous.
func mutate(t *testing.T, file, old, new string) filesys.FileSystem {
	t.Helper()
	fsys := tree(t)
	p := filepath.Join(root, file)
	data, err := fsys.ReadFile(p)
	if err != nil && old != "" {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		t.Fatalf("%s does not contain %q: the breakage would not apply", file, old)
	}
	if err := fsys.WriteFile(p, []byte(strings.Replace(string(data), old, new, 1))); err != nil {
		t.Fatal(err)
	}
	return fsys
}

// TestChecksBite breaks the manifests in one way at a time and expects each breakage to
// be reported.
func TestChecksBite(t *testing.T) {
	cases := []struct {
		name, file, old, new string
		want                 string // a substring of one reported problem
	}{
		{"mistyped field", "replica/statefulset.yaml", "readinessProbe:", "readinesProbe:", `unknown field "spec.template.spec.containers[0].readinesProbe"`},
		{"field in the wrong case", "gateway/deployment.yaml", "readOnlyRootFilesystem: true", "readonlyRootFilesystem: true", `unknown field "spec.template.spec.initContainers[0].securityContext.readonlyRootFilesystem"`},
		{"unknown PBFT_ variable", "replica/statefulset.yaml", "- name: PBFT_LOG_LEVEL", "- name: PBFT_LOGLEVEL", "PBFT_LOGLEVEL is not a variable of config.Settings"},
		{"bad PBFT_ value", "gateway/deployment.yaml", "value: info", "value: loud", "config.Load"},
		{"probe on a port not exposed", "replica/statefulset.yaml", "path: /readyz\n              port: http", "path: /readyz\n              port: 9091", "readinessProbe port 9091 is not a port of the container"},
		{"probe on a named port not exposed", "gateway/deployment.yaml", "path: /healthz\n              port: http", "path: /healthz\n              port: metrics", "livenessProbe port metrics is not a port of the container"},
		{"probe path not served", "gateway/deployment.yaml", "path: /readyz", "path: /ready", `readinessProbe path "/ready" is not served by pbft`},
		{"HTTP address off the container port", "replica/statefulset.yaml", `value: ":9090"`, `value: ":9091"`, `PBFT_HTTP_ADDR ":9091" listens on no declared containerPort`},
		{"service targets a missing port", "gateway/service.yaml", "targetPort: http", "targetPort: api", "targets api, which no container of Deployment/gateway exposes"},
		{"PDB selects nothing", "replica/pdb.yaml", "matchLabels:\n      app.kubernetes.io/name: pbft-replica", "matchLabels:\n      app.kubernetes.io/name: pbft-replicas", "PodDisruptionBudget/replica: selector selects no workload's pods"},
		{"PDB allows more than f", "replica/pdb.yaml", "maxUnavailable: 1", "maxUnavailable: 2", "maxUnavailable 2 for 4 replicas, want f = 1"},
		{"writable root filesystem", "gateway/deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", `Deployment/gateway container "identity": readOnlyRootFilesystem is not true`},
		{"root user", "replica/statefulset.yaml", "runAsNonRoot: true", "runAsNonRoot: false", "runAsNonRoot is not true"},
		{"capabilities kept", "nats/statefulset.yaml", `drop: ["ALL"]`, `drop: ["NET_RAW"]`, "capabilities do not drop ALL"},
		{"more replicas than ids", "replica/statefulset.yaml", "replicas: 4", "replicas: 5", `replica "replica-4" is neither in PBFT_INITIAL_IDS`},
		{"env used before defined", "replica/statefulset.yaml", "value: /keys/nats-password", "value: $(PBFT_KEYS_DIR)/nats-password", "PBFT_NATS_PASSWORD_FILE refers to $(PBFT_KEYS_DIR), which is not defined before it"},
		{"env file (fileKeyRef)", "gateway/deployment.yaml", "- name: PBFT_NATS_USER\n              value: gateway\n", "- name: PBFT_NATS_USER\n              valueFrom:\n                fileKeyRef:\n                  volumeName: tmp\n                  path: nats.env\n                  key: USER\n", "PBFT_NATS_USER uses fileKeyRef, which needs Kubernetes >= 1.35"},
		{"wrong NATS password", "gateway/deployment.yaml", "- name: ID\n              value: gateway", "- name: ID\n              value: replica-0", `the password of NATS user "gateway" comes from a different secret`},
		{"init script copies another pod's password", identitySh, `cp "/secrets/nats/$id" /keys/nats-password`, `cp /secrets/nats/replica-0 /keys/nats-password`, `the password of NATS user "replica-1" comes from a different secret`},
		{"init script copies the password from the wrong Secret", identitySh, `cp "/secrets/nats/$id" /keys/nats-password`, `cp "/secrets/keys/$id.pub" /keys/nats-password`, `the password of NATS user "replica-3" comes from a different secret`},
		{"password file nobody writes", identitySh, `cp "/secrets/nats/$id" /keys/nats-password`, `cp "/secrets/nats/$id" /keys/nats-pw`, "PBFT_NATS_PASSWORD_FILE: open /keys/nats-password: no such file"},
		{"password file on no volume", "replica/statefulset.yaml", "value: /keys/nats-password", "value: /run/nats/password", "PBFT_NATS_PASSWORD_FILE /run/nats/password is not on a mounted volume"},
		{"gateway password file on no volume", "gateway/deployment.yaml", "value: /keys/nats-password", "value: /nats/password", "PBFT_NATS_PASSWORD_FILE /nats/password is not on a mounted volume"},
		{"user without password file", "gateway/deployment.yaml", "\n            - name: PBFT_NATS_PASSWORD_FILE\n              value: /keys/nats-password", "", "PBFT_NATS_USER and PBFT_NATS_PASSWORD_FILE go together"},
		{"no NATS credentials", "gateway/deployment.yaml", "\n            - name: PBFT_NATS_USER\n              value: gateway\n            - name: PBFT_NATS_PASSWORD_FILE\n              value: /keys/nats-password", "", "no PBFT_NATS_USER and PBFT_NATS_PASSWORD_FILE: connects without credentials"},
		{"NATS user not its own id", "gateway/deployment.yaml", "- name: PBFT_NATS_USER\n              value: gateway", "- name: PBFT_NATS_USER\n              value: replica-0", `connects as NATS user "replica-0" (PBFT_NATS_USER), not as its own id "gateway"`},
		{"credentials in the URL", "gateway/deployment.yaml", "nats://nats-1.nats-headless:4222", "nats://gateway:secret@nats-1.nats-headless:4222", "credentials in PBFT_NATS_URL"},
		{"failing init script", identitySh, `test -f "/secrets/keys/$id.key"`, `test -f "/secrets/keys/$id.secret"`, `init container "identity" (pod replica-0): script fails in the simulated pod: exit status 1: secret pbft-keys (pbft-admin for the administrator) has no replica-0.key`},
		{"NATS URL to an unknown host", "replica/statefulset.yaml", "nats://nats-2.nats-headless:4222", "nats://nats-3.nats-headless:4222", "nats-3 is not a pod of StatefulSet/nats"},
		{"NATS URL on the wrong port", "gateway/deployment.yaml", "nats://nats-0.nats-headless:4222", "nats://nats-0.nats-headless:6222", "port 6222, but NATS listens on 4222"},
		{"broken nats.conf", "nats/nats.conf", "  routes: $NATS_ROUTES\n}\n", "  routes: $NATS_ROUTES\n", "nats config /etc/nats-config/nats.conf"},
		{"nats.conf variable not in the environment", "nats/statefulset.yaml", "- name: GATEWAY_PASSWORD", "- name: GATEWAY_PASSWD", "GATEWAY_PASSWORD"},
		{"NATS route to a missing server", "nats/statefulset.yaml", `@nats-2.nats-headless:6222"]`, `@nats-3.nats-headless:6222"]`, "@nats-3.nats-headless:6222: nats-3 is not a pod of StatefulSet/nats"},
		{"container without imagePullPolicy", "replica/statefulset.yaml", "          imagePullPolicy: IfNotPresent\n          command: [\"/replica\"]", "          command: [\"/replica\"]", `StatefulSet/replica container "replica": no imagePullPolicy (image pbft:latest)`},
		{"init container without imagePullPolicy", "replica/statefulset.yaml", "image: busybox\n          imagePullPolicy: IfNotPresent\n", "image: busybox\n", `container "identity": no imagePullPolicy`},
		{"object in another namespace", "gateway/service.yaml", "name: gateway\n", "name: gateway\n  namespace: other\n", "objects in different namespaces"},
		{"no NATS route authorization", "nats/nats.conf", "  authorization {\n    user: route\n    password: $NATS_ROUTE_PASSWORD\n    timeout: 2\n  }\n", "", "cluster has no route authorization"},
		{"route password not from a Secret", "nats/statefulset.yaml", "- name: NATS_ROUTE_PASSWORD\n              valueFrom:\n                secretKeyRef:\n                  name: pbft-nats-auth\n                  key: nats-route", "- name: NATS_ROUTE_PASSWORD\n              value: hunter2", "the route password does not come from a Secret"},
		{"route without the route credentials", "nats/statefulset.yaml", `"nats://route:$(NATS_ROUTE_PASSWORD)@nats-1.nats-headless:6222"`, `"nats://nats-1.nats-headless:6222"`, "route nats://nats-1.nats-headless:6222 does not authenticate as the cluster's route user"},
		{"no NetworkPolicy on NATS", "kustomization.yaml", "  - nats/networkpolicy.yaml\n", "", "no NetworkPolicy (policyTypes Ingress) selects the NATS pods"},
		{"NetworkPolicy admits every pod", "nats/networkpolicy.yaml", "        - podSelector:\n            matchLabels:\n              app.kubernetes.io/name: pbft-gateway\n", "        - podSelector: {}\n", "an empty podSelector admits every pod of the namespace"},
		{"NetworkPolicy admits an address block", "nats/networkpolicy.yaml", "    - from:\n", "    - from:\n        - ipBlock:\n            cidr: 0.0.0.0/0\n", "an ipBlock peer admits addresses outside the project"},
		{"NetworkPolicy admits other namespaces", "nats/networkpolicy.yaml", "    - from:\n", "    - from:\n        - namespaceSelector: {}\n", "a namespaceSelector peer admits pods of other namespaces"},
		{"route port open to the replicas", "nats/networkpolicy.yaml", "        - port: client\n", "        - port: client\n        - port: cluster\n", "the route port 6222 admits StatefulSet/replica, not only the NATS servers"},
		{"NetworkPolicy rule on every port", "nats/networkpolicy.yaml", "      ports:\n        - port: cluster\n        - port: monitor\n", "", "no ports: admits its sources on every port"},
		{"gateway shut out of NATS", "nats/networkpolicy.yaml", "        - podSelector:\n            matchLabels:\n              app.kubernetes.io/name: pbft-gateway\n", "", "Deployment/gateway may not reach the client port 4222"},
		{"NATS user may impersonate", authConf, "", "", "impersonating"},
		{"cluster name the NATS permissions do not allow", "gateway/deployment.yaml", "- name: PBFT_CLUSTER\n              value: pbft", "- name: PBFT_CLUSTER\n              value: other", `NATS user "gateway" may not publish pbft.other.to.replica-0.query.gateway`},
		{"client user may publish protocol subjects", authConf, `publish: { allow: ["pbft.pbft.api"] }`, `publish: { allow: ["pbft.pbft.>"] }`, `NATS user "client" may publish pbft.pbft.commit.replica-0`},
		{"client user may read protocol traffic", authConf, `subscribe: { allow: ["_INBOX.>"] }`, `subscribe: { allow: [">"] }`, `NATS user "client" may subscribe pbft.pbft.commit.replica-0`},
		{"client user may not ask the gateway", authConf, `publish: { allow: ["pbft.pbft.api"] }`, `publish: { allow: ["pbft.pbft.apx"] }`, `NATS user "client" may not publish pbft.pbft.api`},
		{"no client user", authConf, `user: "client"`, `user: "someone"`, `NATS has no user "client" for the NATS API`},
		{"gateway may not send reads in one message", authConf, `"pbft.pbft.request.gateway", "pbft.pbft.requests.gateway",`, `"pbft.pbft.request.gateway",`, `NATS user "gateway" may not publish pbft.pbft.requests.gateway (reads to every replica)`},
		{"gateway may not serve the NATS API", authConf, `"$SRV.>", "pbft.pbft.api"]`, `"$SRV.>"]`, `NATS user "gateway" may not subscribe pbft.pbft.api`},
		{"replica not discoverable", authConf, `"$SRV.>", "pbft.pbft.replica.replica-0.status"]`, `"pbft.pbft.replica.replica-0.status"]`, `NATS user "replica-0" may not subscribe $SRV.PING`},
		{"replica may not answer requests", authConf, "        allow_responses: true\n", "", `NATS user "replica-0" may not answer requests (allow_responses)`},
		{"public-keys copies private keys", "scripts/public-keys.sh", "for f in /secrets/keys/*.pub; do", "for f in /secrets/keys/*; do", `PBFT_KEYS_DIR /keys: holds replica-0.key, the private key of another identity than replica-1`},
		{"identity script misses the public keys", identitySh, "cp /secrets/keys/*.pub ", "cp ", `Job/reconfigure container "reconfigure" (pod reconfigure-pod): PBFT_KEYS_DIR /keys: no replica-3.pub`},
		{"replicas obey another administrator", "replica/statefulset.yaml", "- name: PBFT_ADMIN_ID\n              value: admin", "- name: PBFT_ADMIN_ID\n              value: root", `Job/reconfigure container "reconfigure": signs as PBFT_ADMIN_ID "admin", but StatefulSet/replica obeys "root"`},
		{"admin Job on another image", "admin/kustomization.yaml", "newName: pbft\n", "newName: registry.example.com/pbft\n", `Job/reconfigure container "reconfigure": image registry.example.com/pbft:latest, but StatefulSet/replica runs pbft:latest`},
		{"no NATS user for the administrator", authConf, `user: "admin"`, `user: "root"`, `(pod reconfigure-pod): NATS client: NATS has no user "admin"`},
		{"administrator may impersonate", authConf, `publish: { allow: ["pbft.pbft.request.admin", "pbft.pbft.to.*.*.admin"] }`, `publish: { allow: ["pbft.pbft.request.admin", "pbft.pbft.to.>"] }`, `NATS user "admin" may publish pbft.pbft.to.admin.reply.replica-0, impersonating "replica-0"`},
		{"admin Job shut out of NATS", "nats/networkpolicy.yaml", "        - podSelector:\n            matchLabels:\n              app.kubernetes.io/name: pbft-admin\n", "", "Job/reconfigure may not reach the client port 4222"},
		{"admin Job asks no replicas", "admin/job.yaml", "                  key: members", "                  key: gone", `PBFT_NODE_IDS refers to key "gone" missing from ConfigMap "replica-membership"`},
		{"unknown kind", "kustomization.yaml", "resources:\n", "resources:\n  - extra.yaml\n", "unknown kind example.com/v1/Widget"},
		{"StatefulSet without its Service", "replica/service.yaml", "name: replica\n", "name: replicas\n", `serviceName "replica" names no Service`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var fsys filesys.FileSystem
			switch tc.name {
			case "NATS user may impersonate":
				// Every user may publish anything: replace auth.conf's permissions.
				fsys = tree(t)
				var b strings.Builder
				b.WriteString("authorization {\n  users: [\n")
				for _, u := range natsUsers {
					fmt.Fprintf(&b, "    { user: %q, password: $%s_PASSWORD }\n", u, strings.ToUpper(strings.ReplaceAll(u, "-", "_")))
				}
				b.WriteString("  ]\n}\n")
				if err := fsys.WriteFile(filepath.Join(root, authConf), []byte(b.String())); err != nil {
					t.Fatal(err)
				}
			case "unknown kind":
				fsys = mutate(t, tc.file, tc.old, tc.new)
				if err := fsys.WriteFile(filepath.Join(root, "extra.yaml"), []byte("apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n")); err != nil {
					t.Fatal(err)
				}
			default:
				fsys = mutate(t, tc.file, tc.old, tc.new)
			}
			problems := Validate(render(t, fsys))
			for _, p := range problems {
				if strings.Contains(p, tc.want) {
					return
				}
			}
			t.Errorf("breakage not reported: want a problem containing %q, got %d:\n%s", tc.want, len(problems), strings.Join(problems, "\n"))
		})
	}
}

func TestSettingsVariables(t *testing.T) {
	vars := SettingsVariables()
	for _, v := range []string{"PBFT_NODE_ID", "PBFT_NODE_IDS", "PBFT_NATS_URL", "PBFT_NATS_USER", "PBFT_NATS_PASSWORD_FILE", "PBFT_CLUSTER", "PBFT_DATA_DIR", "PBFT_HTTP_ADDR", "PBFT_KEYS_DIR", "PBFT_CLIENT_ID", "PBFT_LOG_LEVEL"} {
		if !vars[v] {
			t.Errorf("config.Settings has no %s (has %v)", v, keys(vars))
		}
	}
	if vars["PBFT_NODEID"] || vars["NODE_ID"] {
		t.Errorf("unexpected names in %v", keys(vars))
	}
}

func TestDecodeIsStrict(t *testing.T) {
	for doc, want := range map[string]string{
		"apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n  - port: 80\n    targetport: 8080\n": "unknown field",
		"apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  name: t\n":                                           "already set",
		"apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n":                                                          "unknown kind v1/Pod",
		"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  replicas: two\n":                      "cannot unmarshal",
	} {
		if _, err := Decode([]byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Decode(%q) = %v, want an error containing %q", doc, err, want)
		}
	}
}

func TestSubjectMatches(t *testing.T) {
	for _, c := range []struct {
		p, s string
		want bool
	}{
		{"pbft.*.*.replica-0", "pbft.pbft.commit.replica-0", true},
		{"pbft.*.*.replica-0", "pbft.pbft.commit.replica-1", false},
		{"pbft.*.to.*.*.replica-0", "pbft.pbft.to.gateway.reply.replica-0", true},
		{"pbft.>", "pbft.pbft.commit.x", true},
		{"pbft.>", "pbft", false},
		{"a.b", "a.b.c", false},
	} {
		if got := subjectMatches(c.p, c.s); got != c.want {
			t.Errorf("subjectMatches(%q, %q) = %v", c.p, c.s, got)
		}
	}
}

// scriptsConfigMap returns the rendered ConfigMap of the shared scripts (pbft-scripts,
// with its kustomize hash suffix).
func scriptsConfigMap(t *testing.T, objs []Object) *corev1.ConfigMap {
	t.Helper()
	for _, o := range objs {
		if v, ok := o.Obj.(*corev1.ConfigMap); ok && strings.HasPrefix(v.Name, "pbft-scripts-") {
			return v
		}
	}
	t.Fatal("no pbft-scripts ConfigMap (with a kustomize hash suffix)")
	return nil
}

// TestIdentityInitScript runs the replica's init container script (its mount paths moved
// into a temporary directory, as the checks do) and checks what it leaves for the replica
// container in the keys volume: its own private key, every public key, and its own NATS
// password as nats-password, byte for byte, which config.Settings.NATSOptions reads. Then
// one pass of the public-keys container: a public key added to the Secret later reaches
// the keys volume, a private key does not.
func TestIdentityInitScript(t *testing.T) {
	objs, problems := Load(render(t, tree(t)))
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	rs := find[*appsv1.StatefulSet](t, objs, "StatefulSet", "replica")
	ic := rs.Spec.Template.Spec.InitContainers
	if len(ic) != 1 || strings.Join(ic[0].Command, " ") != "sh /scripts/identity.sh" {
		t.Fatalf("init containers %+v, want one running sh /scripts/identity.sh", ic)
	}
	var mounts []string
	for _, m := range ic[0].VolumeMounts {
		if m.MountPath != "/scripts" {
			mounts = append(mounts, m.MountPath)
		}
	}
	if strings.Join(mounts, " ") != "/secrets/keys /secrets/nats /keys" {
		t.Fatalf("init container mounts %v, want /scripts /secrets/keys /secrets/nats /keys", mounts)
	}
	scripts := scriptsConfigMap(t, objs)
	script, sidecar := scripts.Data["identity.sh"], scripts.Data["public-keys.sh"]
	// run runs the script for pod in dir (a new one if empty), the Secret pbft-nats-auth
	// holding password for pod (none if nil).
	run := func(t *testing.T, dir, pod string, password []byte) (string, []byte, error) {
		if dir == "" {
			dir = t.TempDir()
		}
		dirs := map[string]string{}
		for _, m := range mounts {
			dirs[m] = filepath.Join(dir, strings.ReplaceAll(strings.TrimPrefix(m, "/"), "/", "-"))
			if err := os.MkdirAll(dirs[m], 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range natsUsers {
			for _, ext := range []string{".key", ".pub"} {
				if err := os.WriteFile(filepath.Join(dirs["/secrets/keys"], id+ext), []byte(id+ext), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			pw := []byte("other-" + id)
			if id == pod {
				if password == nil {
					continue
				}
				pw = password
			}
			if err := os.WriteFile(filepath.Join(dirs["/secrets/nats"], id), pw, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command("sh", "-c", SandboxScript(script, dirs))
		cmd.Env = append(os.Environ(), "ID="+pod)
		out, err := cmd.CombinedOutput()
		return dirs["/keys"], out, err
	}

	// No URL and no env file any more: any password goes, as it is.
	password := []byte("p@ss:w/rd 'with' $(quotes)\n")
	dir := t.TempDir()
	keysDir, out, err := run(t, dir, "replica-2", password)
	if err != nil {
		t.Fatalf("init script: %v\n%s", err, out)
	}
	// Init containers run again when a pod's sandbox is recreated; the emptyDirs, with
	// their read-only files, are still there.
	if _, out, err := run(t, dir, "replica-2", password); err != nil {
		t.Fatalf("init script, second run: %v\n%s", err, out)
	}
	ents, err := os.ReadDir(keysDir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	want := []string{"nats-password", "replica-2.key"}
	for _, id := range natsUsers {
		want = append(want, id+".pub")
	}
	slices.Sort(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("keys dir holds %v, want %v (its own private key and password only)", got, want)
	}

	// A replica added later: its key pair lands in the Secret; one pass of the
	// public-keys loop (a stand-in sleep ends it) copies the public key only.
	secrets := filepath.Join(dir, "secrets-keys")
	for _, f := range []string{"replica-9.pub", "replica-9.key"} {
		if err := os.WriteFile(filepath.Join(secrets, f), []byte(f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "sleep"), []byte("#!/bin/sh\nexit 97\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", SandboxScript(sidecar, map[string]string{"/secrets/keys": secrets, "/keys": keysDir}))
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); cmd.ProcessState.ExitCode() != 97 {
		t.Fatalf("public-keys: one pass did not reach its sleep: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(keysDir, "replica-9.pub")); err != nil || string(b) != "replica-9.pub" {
		t.Errorf("public-keys: replica-9.pub holds %q (%v)", b, err)
	}
	ents, err = os.ReadDir(keysDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if n := e.Name(); strings.HasSuffix(n, ".key") && n != "replica-2.key" || strings.HasPrefix(n, ".") {
			t.Errorf("public-keys: the keys dir holds %s", n)
		}
	}
	if pw, err := os.ReadFile(filepath.Join(keysDir, "nats-password")); err != nil || string(pw) != string(password) {
		t.Errorf("nats-password holds %q (%v), want %q", pw, err, password)
	}

	if _, out, err := run(t, "", "replica-1", []byte{}); err == nil || !strings.Contains(string(out), "pbft-nats-auth has no key replica-1, or it is empty") {
		t.Errorf("empty password: err %v, output %s", err, out)
	}
	if _, out, err := run(t, "", "replica-1", nil); err == nil || !strings.Contains(string(out), "pbft-nats-auth has no key replica-1") {
		t.Errorf("pod without a password: err %v, output %s", err, out)
	}
	if _, out, err := run(t, "", "replica-9", []byte("fine")); err == nil || !strings.Contains(string(out), "no replica-9.key") {
		t.Errorf("pod without a key: err %v, output %s", err, out)
	}
}

// TestNATSPasswordFiles checks, in the simulated pods the checks build, that every
// replica and the gateway end up with the password file PBFT_NATS_PASSWORD_FILE names,
// holding its own key of pbft-nats-auth (and nothing of another's).
func TestNATSPasswordFiles(t *testing.T) {
	objs, problems := Load(render(t, tree(t)))
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	c := &checker{objs: objs}
	defer c.cleanup()
	c.index()
	seen := map[string]bool{}
	for _, w := range c.workloads {
		for _, ctr := range w.tmpl.Spec.Containers {
			n := int(w.replicas)
			if w.kind != "StatefulSet" {
				n = 1
			}
			for i := 0; i < n; i++ {
				pod := w.podName(i)
				env := resolveEnv(w, ctr, pod)
				file, user := env["PBFT_NATS_PASSWORD_FILE"], env["PBFT_NATS_USER"]
				if file == "" {
					continue
				}
				host, ok := c.podFiles(w, pod).hostPath(ctr, file)
				if !ok {
					t.Errorf("%s: %s is on no volume", pod, file)
					continue
				}
				pw, err := os.ReadFile(host)
				if err != nil {
					t.Errorf("%s: %v", pod, err)
					continue
				}
				if want := secretValue("pbft-nats-auth", user); string(pw) != want {
					t.Errorf("%s: %s holds %q, want %q", pod, file, pw, want)
				}
				seen[user] = true
			}
		}
	}
	if len(seen) != len(runningUsers) {
		t.Errorf("password files for %v, want one for each of %v", keys(seen), runningUsers)
	}
	if len(c.problems) > 0 {
		t.Errorf("simulating the pods: %v", c.problems)
	}
}

func TestSandboxScript(t *testing.T) {
	dirs := map[string]string{"/keys": "/tmp/k", "/secrets/keys": "/tmp/sk", "/secrets/nats": "/tmp/sn"}
	in := `cp /secrets/keys/*.pub "/secrets/keys/$id.key" /keys/
cp "/secrets/nats/$id" /keys/nats-password
rm -f /keys/* /keysfoo /etc/keys/x
test -d /keys`
	want := `cp /tmp/sk/*.pub "/tmp/sk/$id.key" /tmp/k/
cp "/tmp/sn/$id" /tmp/k/nats-password
rm -f /tmp/k/* /keysfoo /etc/keys/x
test -d /tmp/k`
	if got := SandboxScript(in, dirs); got != want {
		t.Errorf("SandboxScript:\n%s\nwant\n%s", got, want)
	}
}

// The states deploy/README.md's membership changes leave are valid manifests too, as an
// overlay that records them would render: replica-0 replaced by replica-4 (first ordinal
// 1), then seven replicas.
func TestChangedMembershipsValidate(t *testing.T) {
	for _, tc := range []struct {
		name, sts, lists string
	}{
		{"replica-0 replaced", "  replicas: 4\n  ordinals:\n    start: 1\n", "replica-1,replica-2,replica-3,replica-4"},
		{"seven replicas", "  replicas: 7\n  ordinals:\n    start: 1\n", "replica-1,replica-2,replica-3,replica-4,replica-5,replica-6,replica-7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := mutate(t, "replica/statefulset.yaml", "  replicas: 4\n", tc.sts)
			p := filepath.Join(root, "replica/membership.yaml")
			data, err := fsys.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			old := "  next: replica-0,replica-1,replica-2,replica-3\n  members: replica-0,replica-1,replica-2,replica-3\n"
			if !strings.Contains(string(data), old) {
				t.Fatalf("membership.yaml does not contain %q", old)
			}
			s := strings.Replace(string(data), old, "  next: "+tc.lists+"\n  members: "+tc.lists+"\n", 1)
			if err := fsys.WriteFile(p, []byte(s)); err != nil {
				t.Fatal(err)
			}
			for _, p := range Validate(render(t, fsys)) {
				t.Error(p)
			}
		})
	}
}
