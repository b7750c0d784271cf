package validate

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// checkImagePull requires an explicit imagePullPolicy on every container: without one,
// an image tagged :latest (the base's pbft:latest) is pulled Always, so an image loaded
// into the cluster's nodes (kind load) is never used.
func (c *checker) checkImagePull(where string, ctr corev1.Container) {
	if ctr.ImagePullPolicy == "" {
		c.reportf("%s: no imagePullPolicy (image %s): a :latest or untagged image is then pulled Always", where, ctr.Image)
	}
}

// checkNamespaces requires every object to be in the same namespace (or all in none, as
// the base leaves it to an overlay or to kubectl -n): the Secrets, the pods that mount
// them and the Services the pods reach by short names must be together.
func (c *checker) checkNamespaces() {
	byNS := map[string][]string{}
	for _, o := range c.objs {
		byNS[o.Namespace] = append(byNS[o.Namespace], o.String())
	}
	if len(byNS) > 1 {
		c.reportf("objects in different namespaces: %v", byNS)
	}
}

// checkRouteAuth requires NATS route authorization with a password from a Secret, and
// routes that use it: a route is trusted with every subject, so without authorization
// anything reaching the cluster port joins as a route and bypasses the users'
// permissions.
func (c *checker) checkRouteAuth(where string, s natsServer) {
	cl := s.opts.Cluster
	if cl.Port <= 0 {
		return
	}
	if cl.Username == "" || cl.Password == "" {
		c.reportf("%s: cluster has no route authorization (user and password): anything that reaches port %d can join as a route", where, cl.Port)
		return
	}
	fromSecret := false
	for _, e := range s.ctr.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil &&
			cl.Password == secretValue(e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key) {
			fromSecret = true
		}
	}
	if !fromSecret {
		c.reportf("%s: the route password does not come from a Secret", where)
	}
	for _, r := range s.opts.Routes {
		pass, _ := r.User.Password()
		if r.User == nil || r.User.Username() != cl.Username || pass != cl.Password {
			c.reportf("%s: route %s does not authenticate as the cluster's route user %q", where, r.Redacted(), cl.Username)
		}
	}
}

// checkNetworkPolicies requires a NetworkPolicy on the NATS servers' pods that admits
// only the project's pods: the client port from the workloads that use NATS
// (PBFT_NATS_URL), the route port only from NATS servers, every rule naming its sources
// by pod selector (no IP blocks, no other namespaces, no "everyone") and its ports.
func (c *checker) checkNetworkPolicies(servers []natsServer) {
	for _, s := range servers {
		where := fmt.Sprintf("%s: NetworkPolicy", s.w)
		var pols []*networkingv1.NetworkPolicy
		for _, p := range c.netpols {
			if selects(&p.Spec.PodSelector, s.w.tmpl.Labels) && slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
				pols = append(pols, p)
			}
		}
		if len(pols) == 0 {
			c.reportf("%s: no NetworkPolicy (policyTypes Ingress) selects the NATS pods: any pod can reach ports %d and %d", s.w, s.opts.Port, s.opts.Cluster.Port)
			continue
		}
		allowed := map[int32][]*workload{} // port -> workloads admitted to it
		for _, p := range pols {
			for i, rule := range p.Spec.Ingress {
				rwhere := fmt.Sprintf("%s %s ingress[%d]", where, p.Name, i)
				sources := c.ruleSources(rwhere, rule.From)
				if len(rule.Ports) == 0 {
					c.reportf("%s: no ports: admits its sources on every port", rwhere)
				}
				for _, pp := range rule.Ports {
					if pp.Port == nil {
						c.reportf("%s: a rule port without a port admits every port", rwhere)
						continue
					}
					port, ok := containerPort(s.ctr, fromIntOrString(pp.Port.StrVal, pp.Port.IntVal, pp.Port.Type == intstr.String))
					if !ok {
						c.reportf("%s: port %s is not a port of the NATS container", rwhere, pp.Port)
						continue
					}
					allowed[port] = append(allowed[port], sources...)
				}
			}
		}
		for _, w := range allowed[int32(s.opts.Cluster.Port)] {
			if w != s.w {
				c.reportf("%s: the route port %d admits %s, not only the NATS servers", where, s.opts.Cluster.Port, w)
			}
		}
		for _, w := range c.workloads {
			if w != s.w && usesNATS(w) && !slices.Contains(allowed[int32(s.opts.Port)], w) {
				c.reportf("%s: %s may not reach the client port %d", where, w, s.opts.Port)
			}
		}
		if n := int(s.w.replicas); n > 1 && !slices.Contains(allowed[int32(s.opts.Cluster.Port)], s.w) {
			c.reportf("%s: the NATS servers may not reach each other's route port %d", where, s.opts.Cluster.Port)
		}
	}
}

// ruleSources returns the workloads a rule's peers admit, reporting peers that admit
// anything beyond the project's pods.
func (c *checker) ruleSources(where string, peers []networkingv1.NetworkPolicyPeer) []*workload {
	if len(peers) == 0 {
		c.reportf("%s: no from: admits every source", where)
		return nil
	}
	var out []*workload
	for _, peer := range peers {
		switch {
		case peer.IPBlock != nil:
			c.reportf("%s: an ipBlock peer admits addresses outside the project", where)
		case peer.NamespaceSelector != nil:
			c.reportf("%s: a namespaceSelector peer admits pods of other namespaces", where)
		case peer.PodSelector == nil || emptySelector(peer.PodSelector):
			c.reportf("%s: an empty podSelector admits every pod of the namespace", where)
		default:
			n := 0
			for _, w := range c.workloads {
				if selects(peer.PodSelector, w.tmpl.Labels) {
					out = append(out, w)
					n++
				}
			}
			if n == 0 {
				c.reportf("%s: podSelector %v selects none of the project's pods", where, peer.PodSelector.MatchLabels)
			}
		}
	}
	return out
}

func emptySelector(s *metav1.LabelSelector) bool {
	return len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0
}

// usesNATS reports whether a container of w connects to NATS.
func usesNATS(w *workload) bool {
	for _, ctr := range w.tmpl.Spec.Containers {
		if hasEnv(ctr, "PBFT_NATS_URL") {
			return true
		}
	}
	return false
}
