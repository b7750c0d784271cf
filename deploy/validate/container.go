package validate

// The checks of one container: its security context, mounts, probes and ports.

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func (c *checker) checkSecurity(where string, pod *corev1.PodSecurityContext, sc *corev1.SecurityContext) {
	if pod == nil {
		pod = &corev1.PodSecurityContext{}
	}
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	nonRoot := isTrue(sc.RunAsNonRoot) || (sc.RunAsNonRoot == nil && isTrue(pod.RunAsNonRoot))
	if !nonRoot {
		c.reportf("%s: runAsNonRoot is not true", where)
	}
	uid := sc.RunAsUser
	if uid == nil {
		uid = pod.RunAsUser
	}
	if uid != nil && *uid == 0 {
		c.reportf("%s: runs as uid 0", where)
	}
	if !isTrue(sc.ReadOnlyRootFilesystem) {
		c.reportf("%s: readOnlyRootFilesystem is not true", where)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		c.reportf("%s: allowPrivilegeEscalation is not false", where)
	}
	if isTrue(sc.Privileged) {
		c.reportf("%s: privileged", where)
	}
	dropAll := false
	if sc.Capabilities != nil {
		for _, d := range sc.Capabilities.Drop {
			dropAll = dropAll || d == "ALL"
		}
		if len(sc.Capabilities.Add) > 0 {
			c.reportf("%s: adds capabilities %v", where, sc.Capabilities.Add)
		}
	}
	if !dropAll {
		c.reportf("%s: capabilities do not drop ALL", where)
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil {
		seccomp = pod.SeccompProfile
	}
	if seccomp == nil || (seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault && seccomp.Type != corev1.SeccompProfileTypeLocalhost) {
		c.reportf("%s: seccomp profile is not RuntimeDefault", where)
	}
}

func isTrue(b *bool) bool { return b != nil && *b }

func (c *checker) checkMounts(where string, w *workload, ctr corev1.Container) {
	claims := map[string]bool{}
	for _, pvc := range w.claims {
		claims[pvc.Name] = true
	}
	paths := map[string]bool{}
	for _, m := range ctr.VolumeMounts {
		if w.volume(m.Name) == nil && !claims[m.Name] {
			c.reportf("%s: volumeMount %q names no volume or volumeClaimTemplate", where, m.Name)
		}
		if paths[m.MountPath] {
			c.reportf("%s: two volumes mounted at %s", where, m.MountPath)
		}
		paths[m.MountPath] = true
	}
}

// probePaths are the HTTP paths each image serves, by image name (without tag).
var probePaths = map[string][]string{
	"pbft": {"/healthz", "/readyz", "/metrics"},
	"nats": {"/healthz", "/varz", "/connz", "/routez"},
}

func imageName(image string) string {
	if i := strings.LastIndex(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image[strings.LastIndex(image, "/")+1:]
}

// containerPort resolves a named or numeric port of ctr.
func containerPort(ctr corev1.Container, port intOrString) (int32, bool) {
	for _, p := range ctr.Ports {
		if (port.named && p.Name == port.name) || (!port.named && p.ContainerPort == port.num) {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

type intOrString struct {
	named bool
	name  string
	num   int32
}

func (p intOrString) String() string {
	if p.named {
		return p.name
	}
	return fmt.Sprint(p.num)
}

func (c *checker) checkProbes(where string, ctr corev1.Container) {
	names := map[string]bool{}
	for _, p := range ctr.Ports {
		if p.Name != "" && names[p.Name] {
			c.reportf("%s: port name %q used twice", where, p.Name)
		}
		names[p.Name] = true
	}
	for kind, pr := range map[string]*corev1.Probe{"livenessProbe": ctr.LivenessProbe, "readinessProbe": ctr.ReadinessProbe, "startupProbe": ctr.StartupProbe} {
		if pr == nil {
			continue
		}
		var port intOrString
		switch {
		case pr.HTTPGet != nil:
			port = fromIntOrString(pr.HTTPGet.Port.String(), pr.HTTPGet.Port.IntVal, pr.HTTPGet.Port.Type == intstr.String)
			path, _, _ := strings.Cut(pr.HTTPGet.Path, "?")
			if known, ok := probePaths[imageName(ctr.Image)]; ok && !contains(known, path) {
				c.reportf("%s: %s path %q is not served by %s (serves %v)", where, kind, path, imageName(ctr.Image), known)
			}
		case pr.TCPSocket != nil:
			port = fromIntOrString(pr.TCPSocket.Port.String(), pr.TCPSocket.Port.IntVal, pr.TCPSocket.Port.Type == intstr.String)
		case pr.GRPC != nil:
			port = intOrString{num: pr.GRPC.Port}
		default:
			continue
		}
		if _, ok := containerPort(ctr, port); !ok {
			c.reportf("%s: %s port %s is not a port of the container", where, kind, port)
		}
	}
	if ctr.LivenessProbe == nil && ctr.ReadinessProbe == nil && len(ctr.Ports) > 0 {
		c.reportf("%s: serves ports but has no probes", where)
	}
}

func fromIntOrString(s string, n int32, isString bool) intOrString {
	if isString {
		return intOrString{named: true, name: s}
	}
	return intOrString{num: n}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
