package validate

import (
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	corev1 "k8s.io/api/core/v1"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/pbft/config"
)

// natsServer is a NATS server container of the manifests with its parsed configuration.
type natsServer struct {
	w    *workload
	ctr  corev1.Container
	opts *server.Options
}

// checkNATS parses the configuration of every NATS server container with the server's
// own parser, then checks the server's ports, its routes, and every PBFT_NATS_URL
// against it: hosts, ports, users, passwords and publish permissions.
func (c *checker) checkNATS() {
	var servers []natsServer
	for _, w := range c.workloads {
		for _, ctr := range w.tmpl.Spec.Containers {
			conf, ok := configFlag(ctr)
			if !ok {
				continue
			}
			if opts := c.parseNATS(w, ctr, conf); opts != nil {
				servers = append(servers, natsServer{w, ctr, opts})
			}
		}
	}
	for _, s := range servers {
		where := fmt.Sprintf("%s container %q: nats config", s.w, s.ctr.Name)
		for name, port := range map[string]int{"port": s.opts.Port, "cluster port": s.opts.Cluster.Port, "http_port": s.opts.HTTPPort} {
			if port <= 0 {
				continue
			}
			if _, ok := containerPort(s.ctr, intOrString{num: int32(port)}); !ok {
				c.reportf("%s: %s %d is not a containerPort", where, name, port)
			}
		}
		for _, r := range s.opts.Routes {
			if err := c.resolves(r.Hostname(), s.w); err != nil {
				c.reportf("%s: route %s: %v", where, r.Redacted(), err)
			}
			if p, _ := strconv.Atoi(r.Port()); p != s.opts.Cluster.Port {
				c.reportf("%s: route %s is not on the cluster port %d", where, r.Redacted(), s.opts.Cluster.Port)
			}
		}
		if n := int(s.w.replicas); s.w.kind == "StatefulSet" && n > 1 && len(s.opts.Routes) != n {
			c.reportf("%s: %d routes for %d servers", where, len(s.opts.Routes), n)
		}
		c.checkRouteAuth(where, s)
	}
	c.checkNetworkPolicies(servers)
	for _, w := range c.workloads {
		for _, ctr := range w.tmpl.Spec.Containers {
			if !hasEnv(ctr, "PBFT_NATS_URL") {
				continue
			}
			n := int(w.replicas)
			if w.kind != "StatefulSet" || n < 1 {
				n = 1
			}
			for i := 0; i < n; i++ {
				c.checkNATSClient(servers, w, ctr, w.podName(i))
			}
		}
	}
}

// configFlag returns the -c/--config argument of a nats-server container.
func configFlag(ctr corev1.Container) (string, bool) {
	args := append(append([]string{}, ctr.Command...), ctr.Args...)
	for i, a := range args {
		a = strings.TrimLeft(a, "-")
		if k, v, ok := strings.Cut(a, "="); ok && (k == "c" || k == "config") {
			return v, true
		}
		if (a == "c" || a == "config") && strings.HasPrefix(args[i], "-") && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

// parseNATS writes the ConfigMap mounted at the configuration's directory to a
// temporary directory and parses it with the container's environment.
func (c *checker) parseNATS(w *workload, ctr corev1.Container, conf string) *server.Options {
	where := fmt.Sprintf("%s container %q: nats config %s", w, ctr.Name, conf)
	m := mountOf(ctr, conf)
	if m == nil {
		c.reportf("%s: not on a mounted volume", where)
		return nil
	}
	v := w.volume(m.Name)
	if v == nil || v.ConfigMap == nil {
		c.reportf("%s: volume %q is not a ConfigMap", where, m.Name)
		return nil
	}
	cm := c.configMaps[v.ConfigMap.Name]
	if cm == nil {
		c.reportf("%s: ConfigMap %q is not in the manifests", where, v.ConfigMap.Name)
		return nil
	}
	dir, err := os.MkdirTemp("", "nats-config-")
	if err != nil {
		c.reportf("%s: %v", where, err)
		return nil
	}
	defer os.RemoveAll(dir)
	for k, data := range cm.Data {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(data), 0o600); err != nil {
			c.reportf("%s: %v", where, err)
			return nil
		}
	}
	rel := strings.TrimPrefix(path.Clean(conf), path.Clean(m.MountPath)+"/")
	if _, ok := cm.Data[rel]; !ok {
		c.reportf("%s: ConfigMap %q has no key %q", where, cm.Name, rel)
		return nil
	}
	var opts *server.Options
	withEnv(resolveEnv(w, ctr, w.podName(0)), func() {
		opts, err = server.ProcessConfigFile(filepath.Join(dir, rel))
	})
	if err != nil {
		c.reportf("%s: %v", where, strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), ""))
		return nil
	}
	if opts.PidFile != "" && !mounted(ctr, opts.PidFile) {
		c.reportf("%s: pid_file %s is not on a mounted volume (the root filesystem is read-only)", where, opts.PidFile)
	}
	return opts
}

func hasEnv(ctr corev1.Container, name string) bool {
	for _, e := range ctr.Env {
		if e.Name == name {
			return true
		}
	}
	return false
}

// resolves checks that host names a pod of w through its governing Service
// (<pod>.<service>), or a Service selecting w's pods.
func (c *checker) resolves(host string, w *workload) error {
	labels := strings.Split(host, ".")
	if len(labels) >= 2 && w.kind == "StatefulSet" && labels[1] == w.serviceName {
		ord, ok := strings.CutPrefix(labels[0], w.name+"-")
		n, err := strconv.Atoi(ord)
		if !ok || err != nil || n < 0 || n >= int(w.replicas) {
			return fmt.Errorf("%s is not a pod of %s (%d replicas)", labels[0], w, w.replicas)
		}
		return nil
	}
	if s := c.service(labels[0]); s != nil && selectsMap(s.Spec.Selector, w.tmpl.Labels) {
		return nil
	}
	return fmt.Errorf("%q resolves to no pod of %s", host, w)
}

// natsCredentials returns the NATS user and password ctr in pod connects with: user
// PBFT_NATS_USER, and the password as config.Settings.NATSOptions reads it from
// PBFT_NATS_PASSWORD_FILE in the simulated pod (podFiles: Secret volumes and what the
// init containers wrote). It reports why there are none.
func (c *checker) natsCredentials(where string, w *workload, ctr corev1.Container, pod string, env map[string]string) (user, pass string, ok bool) {
	s := config.Settings{NATSUser: env["PBFT_NATS_USER"], NATSPasswordFile: env["PBFT_NATS_PASSWORD_FILE"]}
	if s.NATSUser == "" && s.NATSPasswordFile == "" {
		c.reportf("%s: no PBFT_NATS_USER and PBFT_NATS_PASSWORD_FILE: connects without credentials", where)
		return "", "", false
	}
	file := s.NATSPasswordFile
	if file != "" {
		host, mounted := c.podFiles(w, pod).hostPath(ctr, file)
		if !mounted {
			return "", "", false // reported by checkSettings: not on a mounted volume
		}
		s.NATSPasswordFile = host
	}
	opts, err := s.NATSOptions()
	if err != nil {
		msg := err.Error()
		if file != "" {
			msg = strings.ReplaceAll(msg, s.NATSPasswordFile, file)
		}
		c.reportf("%s: %s", where, msg)
		return "", "", false
	}
	var o nats.Options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			c.reportf("%s: %v", where, err)
			return "", "", false
		}
	}
	return o.User, o.Password, true
}

// checkNATSClient checks the PBFT_NATS_URL and the NATS credentials of ctr in pod against
// the NATS servers.
func (c *checker) checkNATSClient(servers []natsServer, w *workload, ctr corev1.Container, pod string) {
	where := fmt.Sprintf("%s container %q (pod %s): NATS client", w, ctr.Name, pod)
	env := resolveEnv(w, ctr, pod)
	self := env["PBFT_NODE_ID"]
	admin := runsReconfigure(ctr)
	switch {
	case admin:
		self = env["PBFT_ADMIN_ID"] // replica reconfigure signs and connects as the administrator
	case self == "":
		self = env["PBFT_CLIENT_ID"]
		if self == "" {
			self = "gateway"
		}
	}
	cluster := env["PBFT_CLUSTER"]
	if cluster == "" {
		cluster = "pbft"
	}
	ids := append(splitList(env["PBFT_NODE_IDS"]), "gateway")
	if len(servers) == 0 {
		c.reportf("%s: no NATS server of the manifests has a valid configuration", where)
		return
	}
	user, pass, haveCreds := c.natsCredentials(where, w, ctr, pod, env)
	if haveCreds && user != self {
		c.reportf("%s: connects as NATS user %q (PBFT_NATS_USER), not as its own id %q", where, user, self)
	}
	for _, raw := range strings.Split(env["PBFT_NATS_URL"], ",") {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil {
			c.reportf("%s: %v", where, err)
			continue
		}
		if strings.Contains(u.String(), "$(") {
			c.reportf("%s: %s has an unresolved reference", where, u.Redacted())
		}
		if u.User != nil {
			c.reportf("%s: %s: credentials in PBFT_NATS_URL; set PBFT_NATS_USER and PBFT_NATS_PASSWORD_FILE instead", where, u.Redacted())
		}
		var srv *natsServer
		var errs []string
		for i := range servers {
			if err := c.resolves(u.Hostname(), servers[i].w); err != nil {
				errs = append(errs, err.Error())
				continue
			}
			srv = &servers[i]
		}
		if srv == nil {
			c.reportf("%s: %s: %s", where, u.Redacted(), strings.Join(errs, "; "))
			continue
		}
		port := 4222
		if p := u.Port(); p != "" {
			port, _ = strconv.Atoi(p)
		}
		if port != srv.opts.Port {
			c.reportf("%s: %s: port %d, but NATS listens on %d", where, u.Redacted(), port, srv.opts.Port)
		}
		if !haveCreds {
			continue
		}
		var nu *server.User
		for _, x := range srv.opts.Users {
			if x.Username == user {
				nu = x
			}
		}
		switch {
		case len(srv.opts.Users) == 0:
			c.reportf("%s: NATS has no users: anyone who reaches it may publish anything", where)
			continue
		case nu == nil:
			c.reportf("%s: NATS has no user %q", where, user)
			continue
		case nu.Password != pass:
			c.reportf("%s: the password of NATS user %q comes from a different secret than the one %s uses", where, user, pod)
		}
		c.checkPermissions(where, nu, cluster, self, ids, !admin)
		if !admin && !contains(ids[:len(ids)-1], self) {
			c.checkClientUser(where, srv, cluster, ids[:len(ids)-1])
		}
	}
}

// checkPermissions checks that user may publish under its own id and not under another
// one (subjects pbft.<cluster>.<kind>.<sender> and pbft.<cluster>.to.<receiver>.<kind>.<sender>).
// A process that serves the NATS services framework (replicas, the gateway; not the
// administrator's command) must also be allowed to (checkServes).
func (c *checker) checkPermissions(where string, u *server.User, cluster, self string, ids []string, serves bool) {
	isReplica := contains(ids[:len(ids)-1], self)
	var allow, deny []string
	if u.Permissions != nil && u.Permissions.Publish != nil {
		allow, deny = u.Permissions.Publish.Allow, u.Permissions.Publish.Deny
	}
	may := func(subject string) bool {
		ok := len(allow) == 0
		for _, a := range allow {
			ok = ok || subjectMatches(a, subject)
		}
		for _, d := range deny {
			if subjectMatches(d, subject) {
				return false
			}
		}
		return ok
	}
	for _, other := range ids {
		if other == self {
			continue
		}
		for _, s := range []string{
			"pbft." + cluster + ".commit." + other,
			"pbft." + cluster + ".to." + self + ".reply." + other,
		} {
			if may(s) {
				c.reportf("%s: NATS user %q may publish %s, impersonating %q", where, u.Username, s, other)
			}
		}
		kind := "query"
		if isReplica {
			kind = "reply"
		}
		if s := "pbft." + cluster + ".to." + other + "." + kind + "." + self; !may(s) {
			c.reportf("%s: NATS user %q may not publish %s", where, u.Username, s)
		}
	}
	if s := "pbft." + cluster + ".commit." + self; isReplica && !may(s) {
		c.reportf("%s: NATS user %q may not publish %s", where, u.Username, s)
	}
	// A gateway sends its reads to every replica in one message (pbft/client/batch.go).
	if s := "pbft." + cluster + ".requests." + self; !isReplica && serves && !may(s) {
		c.reportf("%s: NATS user %q may not publish %s (reads to every replica)", where, u.Username, s)
	}
	if serves {
		c.checkServes(where, u, cluster, self, isReplica)
	}
}

// runsReconfigure reports whether ctr runs `replica reconfigure` (the administrator's Job).
func runsReconfigure(ctr corev1.Container) bool {
	args := append(append([]string{}, ctr.Command...), ctr.Args...)
	return len(args) >= 2 && path.Base(args[0]) == "replica" && args[1] == "reconfigure"
}

// checkServes checks that user may serve the NATS services framework (nats.go/micro):
// the discovery subjects, its endpoint (the gateway's client protocol, a replica's
// status) and answers to the requests it receives.
func (c *checker) checkServes(where string, u *server.User, cluster, self string, isReplica bool) {
	var sub *server.SubjectPermission
	restricted := u.Permissions != nil && u.Permissions.Publish != nil &&
		(len(u.Permissions.Publish.Allow) > 0 || len(u.Permissions.Publish.Deny) > 0)
	if u.Permissions != nil {
		sub = u.Permissions.Subscribe
	}
	name, endpoint, err := "pbft-gateway", "", error(nil)
	if isReplica {
		name = "pbft-replica"
		endpoint, err = bus.ReplicaStatusSubject(cluster, self)
	} else {
		endpoint, err = bus.APISubject(cluster)
	}
	if err != nil {
		c.reportf("%s: %v", where, err)
		return
	}
	for _, s := range []string{"$SRV.PING", "$SRV.INFO." + name, "$SRV.STATS." + name + ".x", endpoint} {
		if !allows(sub, s) {
			c.reportf("%s: NATS user %q may not subscribe %s (the NATS services framework)", where, u.Username, s)
		}
	}
	if restricted && u.Permissions.Response == nil {
		c.reportf("%s: NATS user %q may not answer requests (allow_responses): the NATS services framework cannot reach it", where, u.Username)
	}
}

// checkClientUser checks NATS user "client" of the NATS-native API: it may ask the
// gateway on pbft.<cluster>.api and read its inbox, and nothing of the protocol.
func (c *checker) checkClientUser(where string, srv *natsServer, cluster string, ids []string) {
	var u *server.User
	for _, x := range srv.opts.Users {
		if x.Username == "client" {
			u = x
		}
	}
	if u == nil {
		c.reportf("%s: NATS has no user \"client\" for the NATS API (pbft.%s.api)", where, cluster)
		return
	}
	var pub, sub *server.SubjectPermission
	if u.Permissions != nil {
		pub, sub = u.Permissions.Publish, u.Permissions.Subscribe
	}
	api, err := bus.APISubject(cluster)
	if err != nil {
		c.reportf("%s: %v", where, err)
		return
	}
	if !allows(pub, api) {
		c.reportf("%s: NATS user %q may not publish %s", where, u.Username, api)
	}
	if !allows(sub, "_INBOX.x") {
		c.reportf("%s: NATS user %q may not subscribe _INBOX.> (the answers)", where, u.Username)
	}
	for _, id := range ids {
		status, _ := bus.ReplicaStatusSubject(cluster, id)
		for _, s := range []string{"pbft." + cluster + ".commit." + id, "pbft." + cluster + ".to." + id + ".query.client", "$SRV.PING", status} {
			if allows(pub, s) {
				c.reportf("%s: NATS user %q may publish %s: it may only ask the gateway", where, u.Username, s)
			}
		}
		for _, s := range []string{"pbft." + cluster + ".commit." + id, "pbft." + cluster + ".to." + id + ".reply.gateway", "pbft." + cluster + ".trace." + id + ".events"} {
			if allows(sub, s) {
				c.reportf("%s: NATS user %q may subscribe %s: it may only read its inbox", where, u.Username, s)
			}
		}
	}
}

// allows reports whether the permission p (nil: none, so everything) admits subject.
func allows(p *server.SubjectPermission, subject string) bool {
	if p == nil {
		return true
	}
	ok := len(p.Allow) == 0
	for _, a := range p.Allow {
		ok = ok || subjectMatches(a, subject)
	}
	for _, d := range p.Deny {
		if subjectMatches(d, subject) {
			return false
		}
	}
	return ok
}

// subjectMatches reports whether subject matches the NATS wildcard pattern.
func subjectMatches(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, t := range p {
		if t == ">" {
			return i < len(s)
		}
		if i >= len(s) || (t != "*" && t != s[i]) {
			return false
		}
	}
	return len(p) == len(s)
}
