package validate

// The deploy guide's commands as steps: which key files exist on the operator's disk,
// which Secrets and keys the cluster holds, how many replica pods run, what the
// membership ConfigMap says, whether the administrator's Job exists and which
// membership is in force, followed command by command and checked against the
// manifests.

import (
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// guideState is what the guide's commands made so far.
type guideState struct {
	files    map[string]map[string]bool // directory -> file names (keygen, cp, rm)
	secrets  map[string]map[string]bool // Secret -> its keys
	lists    map[string][]string        // the membership ConfigMap's keys
	applied  bool                       // kubectl apply -k of the base
	start    int                        // the replica StatefulSet's first ordinal
	replicas int
	readNext map[string]string // pod -> the list it joins, as read at its start
	inForce  []string          // the membership in force
	job      bool              // the administrator's Job exists
	// members are the ids that were ever members of a running configuration: the
	// replicas keep their keys, so none may get a new key pair (it takes a new id).
	members map[string]bool
}

// guideModel is what the checks need of the manifests.
type guideModel struct {
	sts            *workload // the replica StatefulSet
	gateway        *workload
	job            *workload // the administrator's Job
	cm             string    // the membership ConfigMap
	initialKey     string    // its keys the replicas and the Job read
	nextKey        string
	membersKey     string
	users          map[string]bool            // NATS users
	natsSecretKeys map[string]map[string]bool // Secret -> keys the NATS servers read
	mountedBy      map[string][]string        // Secret -> workloads other than the Job mounting it
}

// CheckGuideSteps follows the sh blocks of the deploy guide in order against the
// rendered manifests (the base and deploy/k8s/admin) and reports each step that cannot
// work: a pod started without its key pair, NATS password or NATS user; a Secret used
// before it is created; a reconfiguration to ids that do not run, or whose joiners read
// another list at their start; the Job applied while the previous one still exists; a
// scale-down that removes a member of the configuration in force.
func CheckGuideSteps(name, markdown string, objs []Object) []string {
	var problems []string
	report := func(cmd, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%s: %q: %s", name, cmd, fmt.Sprintf(format, args...)))
	}
	m, err := newGuideModel(objs)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", name, err)}
	}
	cm := map[string]string{}
	for _, o := range objs {
		if v, ok := o.Obj.(*corev1.ConfigMap); ok && v.Name == m.cm {
			cm = v.Data
		}
	}
	st := &guideState{files: map[string]map[string]bool{}, secrets: map[string]map[string]bool{},
		lists: map[string][]string{}, start: int(m.sts.start), replicas: int(m.sts.replicas), readNext: map[string]string{},
		members: map[string]bool{}}
	for k, v := range cm {
		st.lists[k] = splitList(v)
	}
	st.inForce = st.lists[m.membersKey]
	for _, b := range codeBlocks(markdown) {
		if b.lang != "sh" {
			continue
		}
		for _, line := range shellLines(b.text) {
			for _, cmd := range strings.Split(line, " | ") {
				cmd = strings.TrimSpace(cmd)
				m.step(st, cmd, strings.Contains(line, "--dry-run=client"), func(format string, args ...any) { report(cmd, format, args...) })
			}
		}
	}
	return problems
}

func newGuideModel(objs []Object) (*guideModel, error) {
	c := &checker{objs: objs}
	defer c.cleanup()
	c.index()
	m := &guideModel{users: map[string]bool{}, natsSecretKeys: map[string]map[string]bool{}, mountedBy: map[string][]string{}}
	ref := func(ctr corev1.Container, name string) *corev1.ConfigMapKeySelector {
		for _, e := range ctr.Env {
			if e.Name == name && e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
				return e.ValueFrom.ConfigMapKeyRef
			}
		}
		return nil
	}
	for _, w := range c.workloads {
		for _, ctr := range w.tmpl.Spec.Containers {
			switch {
			case hasEnv(ctr, "PBFT_NODE_ID") && w.kind == "StatefulSet":
				m.sts = w
				if r := ref(ctr, "PBFT_NODE_IDS"); r != nil {
					m.cm, m.nextKey = r.Name, r.Key
				}
				if r := ref(ctr, "PBFT_INITIAL_IDS"); r != nil {
					m.initialKey = r.Key
				}
			case runsReconfigure(ctr):
				m.job = w
				if r := ref(ctr, "PBFT_NODE_IDS"); r != nil {
					m.membersKey = r.Key
				}
			case hasEnv(ctr, "PBFT_NATS_URL"):
				m.gateway = w
			}
			if conf, ok := configFlag(ctr); ok {
				if opts := c.parseNATS(w, ctr, conf); opts != nil {
					for _, u := range opts.Users {
						m.users[u.Username] = true
					}
				}
				for _, e := range ctr.Env {
					if r := e.ValueFrom; r != nil && r.SecretKeyRef != nil {
						if m.natsSecretKeys[r.SecretKeyRef.Name] == nil {
							m.natsSecretKeys[r.SecretKeyRef.Name] = map[string]bool{}
						}
						m.natsSecretKeys[r.SecretKeyRef.Name][r.SecretKeyRef.Key] = true
					}
				}
			}
		}
	}
	for _, w := range c.workloads {
		if w == m.job {
			continue
		}
		for _, v := range w.tmpl.Spec.Volumes {
			var names []string
			if v.Secret != nil {
				names = append(names, v.Secret.SecretName)
			}
			if v.Projected != nil {
				for _, src := range v.Projected.Sources {
					if src.Secret != nil {
						names = append(names, src.Secret.Name)
					}
				}
			}
			for _, n := range names {
				m.mountedBy[n] = append(m.mountedBy[n], w.String())
				slices.Sort(m.mountedBy[n])
			}
		}
	}
	switch {
	case m.sts == nil || m.cm == "" || m.initialKey == "":
		return nil, fmt.Errorf("no replica StatefulSet reading PBFT_NODE_IDS and PBFT_INITIAL_IDS from a ConfigMap")
	case m.job == nil || m.membersKey == "":
		return nil, fmt.Errorf("no administrator's Job reading PBFT_NODE_IDS from a ConfigMap")
	}
	return m, nil
}

var (
	forIDs    = regexp.MustCompile(`\$\(for id in ([^;]*); do`) // the loop's printf makes --from-literal=<id>=...
	patchJSON = regexp.MustCompile(`-p '([^']*)'`)
)

// step applies one command of the guide to st, reporting what cannot work.
func (m *guideModel) step(st *guideState, cmd string, dryRun bool, report func(string, ...any)) {
	f := strings.Fields(cmd)
	switch {
	case len(f) == 0:
	case strings.HasPrefix(cmd, "go run ./cmd/replica keygen ") || strings.HasPrefix(cmd, "bin/replica keygen "):
		st.keygen(f[slices.Index(f, "keygen")+1:], report)
	case f[0] == "cp" && len(f) == 3:
		src, dst := f[1], strings.TrimSuffix(f[2], "/")
		if !st.files[path.Dir(src)][path.Base(src)] {
			report("%s does not exist", src)
			return
		}
		st.dir(dst)[path.Base(src)] = true
	case f[0] == "rm" && len(f) == 2:
		delete(st.files[path.Dir(f[1])], path.Base(f[1]))
	case f[0] != "kubectl" || len(f) < 4:
	case f[3] == "create" && len(f) >= 7 && f[4] == "secret" && f[5] == "generic":
		st.createSecret(f[6], cmd, f[7:], dryRun, report)
		if admin := m.adminID(); st.secrets[f[6]][admin+".key"] && len(m.mountedBy[f[6]]) > 0 {
			report("Secret %s holds %s.key, the administrator's private key, and %v mount it: only the Job may", f[6], admin, m.mountedBy[f[6]])
		}
	case f[3] == "apply" && dryRun:
		// the second half of a create --dry-run | apply: done by createSecret
	case f[3] == "apply" && len(f) >= 6 && f[4] == "-k":
		m.apply(st, strings.TrimSuffix(f[5], "/"), report)
	case f[3] == "patch" && len(f) >= 6 && f[4] == "configmap" && f[5] == m.cm:
		m.patchConfigMap(st, cmd, report)
	case f[3] == "patch" && len(f) >= 6 && f[4] == "statefulset" && f[5] == m.sts.name:
		var p struct {
			Spec struct {
				Replicas *int `json:"replicas"`
				Ordinals *struct {
					Start int `json:"start"`
				} `json:"ordinals"`
			} `json:"spec"`
		}
		if !patchArg(cmd, &p, report) {
			return
		}
		start, n := st.start, st.replicas
		if p.Spec.Ordinals != nil {
			start = p.Spec.Ordinals.Start
		}
		if p.Spec.Replicas != nil {
			n = *p.Spec.Replicas
		}
		m.scale(st, start, n, report)
	case f[3] == "scale" && len(f) >= 6:
		target := f[4]
		if !strings.Contains(target, "/") {
			target += "/" + f[5]
		}
		if target != "statefulset/"+m.sts.name && target != "sts/"+m.sts.name {
			return
		}
		for _, a := range f {
			if v, ok := strings.CutPrefix(a, "--replicas="); ok {
				n, err := strconv.Atoi(v)
				if err != nil {
					report("--replicas=%s is not a number", v)
					return
				}
				m.scale(st, st.start, n, report)
			}
		}
	case f[3] == "delete" && len(f) >= 6 && f[4] == "job" && f[5] == m.job.name:
		st.job = false
	}
}

func (st *guideState) dir(d string) map[string]bool {
	if st.files[d] == nil {
		st.files[d] = map[string]bool{}
	}
	return st.files[d]
}

// keygen follows `replica keygen [-force] -dir DIR ID...`.
func (st *guideState) keygen(args []string, report func(string, ...any)) {
	dir, force := ".", false
	var ids []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-dir" && i+1 < len(args):
			dir = strings.TrimSuffix(args[i+1], "/")
			i++
		case a == "-force":
			force = true
		default:
			ids = append(ids, a)
		}
	}
	for _, id := range ids {
		switch {
		case st.dir(dir)[id+".key"] && !force:
			report("keygen refuses to replace %s/%s.key (and a new key for a known id would not be believed)", dir, id)
		case st.members[id]:
			report("a new key pair for %s, which was a member: the replicas keep the key of every id they have known and would not believe it (a new key takes a new id)", id)
		}
		st.dir(dir)[id+".key"], st.dir(dir)[id+".pub"] = true, true
	}
}

// createSecret follows `kubectl create secret generic NAME ARGS` (with --dry-run, as
// piped to kubectl apply: the Secret is replaced).
func (st *guideState) createSecret(name, cmd string, args []string, dryRun bool, report func(string, ...any)) {
	if st.secrets[name] != nil && !dryRun {
		report("Secret %s exists already: kubectl create fails", name)
	}
	keys := map[string]bool{}
	if mm := forIDs.FindStringSubmatch(cmd); mm != nil {
		for _, id := range strings.Fields(mm[1]) {
			keys[id] = true
		}
	}
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--from-literal="); ok {
			k, _, _ := strings.Cut(v, "=")
			keys[k] = true
		}
		v, ok := strings.CutPrefix(a, "--from-file=")
		if !ok {
			continue
		}
		key, src, named := strings.Cut(v, "=")
		if !named {
			src = v
			key = path.Base(v)
		}
		src = strings.TrimSuffix(src, "/")
		switch {
		case st.files[src] != nil && !named:
			for f := range st.files[src] {
				keys[f] = true
			}
		case st.files[path.Dir(src)][path.Base(src)]:
			keys[key] = true
		default:
			report("%s: no such file or directory (made by no command before)", src)
		}
	}
	st.secrets[name] = keys
}

// patchArg decodes the JSON of a command's -p '...'.
func patchArg(cmd string, v any, report func(string, ...any)) bool {
	mm := patchJSON.FindStringSubmatch(cmd)
	if mm == nil {
		report("no -p '<json>'")
		return false
	}
	if err := json.Unmarshal([]byte(mm[1]), v); err != nil {
		report("-p: %v", err)
		return false
	}
	return true
}

// patchConfigMap follows a merge patch of the membership ConfigMap.
func (m *guideModel) patchConfigMap(st *guideState, cmd string, report func(string, ...any)) {
	var p struct {
		Data map[string]string `json:"data"`
	}
	if !patchArg(cmd, &p, report) {
		return
	}
	for k, v := range p.Data {
		if _, ok := st.lists[k]; !ok {
			report("ConfigMap %s has no key %s (the pods read %s, %s and %s)", m.cm, k, m.initialKey, m.nextKey, m.membersKey)
			continue
		}
		st.lists[k] = splitList(v)
		switch k {
		case m.initialKey:
			report("changes %s: the replicas the cluster started with are what they are", k)
		case m.membersKey:
			if !slices.Equal(st.lists[k], st.inForce) {
				report("%s %v is not the membership in force %v (the gateway and the Job ask those)", k, st.lists[k], st.inForce)
			}
		}
	}
}

// pods are the replica pods that run: ordinals start .. start+n-1.
func (m *guideModel) pods(start, n int) []string {
	var out []string
	for i := start; i < start+n; i++ {
		out = append(out, fmt.Sprintf("%s-%d", m.sts.name, i))
	}
	return out
}

// scale follows a change of the replica StatefulSet's first ordinal and replicas: the
// pods it starts must be able to, the pods it removes must no longer be members.
func (m *guideModel) scale(st *guideState, start, n int, report func(string, ...any)) {
	before, after := m.pods(st.start, st.replicas), m.pods(start, n)
	st.start, st.replicas = start, n
	if !st.applied {
		return // nothing runs yet
	}
	for _, pod := range before {
		if !slices.Contains(after, pod) && slices.Contains(st.inForce, pod) {
			report("removes %s, a member of the configuration in force %v: reconfigure first", pod, st.inForce)
		}
	}
	for _, pod := range after {
		if !slices.Contains(before, pod) {
			m.startReplica(st, pod, report)
		}
	}
}

// startReplica checks what a replica pod needs at its start and records the list it
// joins.
func (m *guideModel) startReplica(st *guideState, pod string, report func(string, ...any)) {
	m.identity(st, pod, "pod "+pod, report)
	switch {
	case slices.Contains(st.lists[m.initialKey], pod):
		st.readNext[pod] = ""
	case slices.Contains(st.lists[m.nextKey], pod):
		st.readNext[pod] = strings.Join(st.lists[m.nextKey], ",")
	default:
		report("pod %s is in neither %s %v nor %s %v: the replica refuses to start", pod, m.initialKey, st.lists[m.initialKey], m.nextKey, st.lists[m.nextKey])
	}
}

// identity checks that id has its key pair, its NATS password and a NATS user.
func (m *guideModel) identity(st *guideState, id, who string, report func(string, ...any)) {
	keySecret := "pbft-keys"
	if m.job != nil && id == m.adminID() {
		keySecret = "pbft-admin"
	}
	if !st.secrets[keySecret][id+".key"] {
		report("%s: Secret %s has no %s.key", who, keySecret, id)
	}
	if !st.secrets["pbft-nats-auth"][id] {
		report("%s: Secret pbft-nats-auth has no key %s", who, id)
	}
	if !m.users[id] {
		report("%s: NATS has no user %q", who, id)
	}
}

func (m *guideModel) adminID() string {
	for _, ctr := range m.job.tmpl.Spec.Containers {
		if runsReconfigure(ctr) {
			return resolveEnv(m.job, ctr, m.job.podName(0))["PBFT_ADMIN_ID"]
		}
	}
	return ""
}

// apply follows kubectl apply -k of the base or of its admin kustomization.
func (m *guideModel) apply(st *guideState, dir string, report func(string, ...any)) {
	switch {
	case strings.HasSuffix(dir, "/"+AdminDir):
		m.runJob(st, report)
	case !st.applied:
		st.applied = true
		for secret, keys := range m.natsSecretKeys {
			for k := range keys {
				if !st.secrets[secret][k] {
					report("NATS reads key %s of Secret %s, which the guide did not create: NATS does not start", k, secret)
				}
			}
		}
		m.identity(st, "gateway", "the gateway", report)
		for _, pod := range m.pods(st.start, st.replicas) {
			m.startReplica(st, pod, report)
		}
		for _, id := range st.inForce {
			st.members[id] = true
		}
	}
}

// runJob checks a run of the administrator's Job: its own identity, and a new
// membership of running replicas that can join it.
func (m *guideModel) runJob(st *guideState, report func(string, ...any)) {
	if st.job {
		report("Job %s still exists from a previous run: a Job runs once, so nothing would change (delete it first)", m.job.name)
	}
	if !st.applied {
		report("the replicas do not run yet")
	}
	st.job = true
	m.identity(st, m.adminID(), "the administrator", report)
	next := st.lists[m.nextKey]
	running := m.pods(st.start, st.replicas)
	for _, id := range next {
		switch {
		case !slices.Contains(running, id):
			report("%s names %s, which does not run", m.nextKey, id)
		case !st.secrets["pbft-keys"][id+".pub"]:
			report("Secret pbft-keys has no %s.pub: the replicas cannot authenticate %s", id, id)
		case !slices.Contains(st.inForce, id) && st.readNext[id] != strings.Join(next, ","):
			report("joiner %s started before %s named this membership: it joins %q", id, m.nextKey, st.readNext[id])
		}
	}
	for _, id := range st.inForce {
		if !slices.Contains(running, id) {
			report("%s, a member of the configuration in force, does not run", id)
		}
	}
	st.inForce = slices.Clone(next)
	for _, id := range next {
		st.members[id] = true
	}
}
