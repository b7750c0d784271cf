// Package validate checks the Kubernetes manifests of deploy/k8s offline: it renders
// the kustomization, decodes every object strictly into its k8s.io/api type and checks
// that the pieces agree with each other and with the programs they run (the PBFT_
// variables of config.Settings, the NATS server's configuration parser).
//
// It is a separate module so that k8s.io/api and kustomize never enter the main module
// or the shipped binaries.
package validate

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Object is one decoded manifest.
type Object struct {
	APIVersion, Kind, Name, Namespace string
	// Obj is a pointer to the k8s.io/api type of Kind (*appsv1.StatefulSet, ...).
	Obj any
}

func (o Object) String() string { return o.Kind + "/" + o.Name }

// kinds maps apiVersion/kind to a constructor of its typed object. A kind missing here
// is reported, not ignored.
var kinds = map[string]func() any{
	"v1/Service":                         func() any { return new(corev1.Service) },
	"v1/ConfigMap":                       func() any { return new(corev1.ConfigMap) },
	"v1/Secret":                          func() any { return new(corev1.Secret) },
	"v1/ServiceAccount":                  func() any { return new(corev1.ServiceAccount) },
	"apps/v1/StatefulSet":                func() any { return new(appsv1.StatefulSet) },
	"apps/v1/Deployment":                 func() any { return new(appsv1.Deployment) },
	"batch/v1/Job":                       func() any { return new(batchv1.Job) },
	"policy/v1/PodDisruptionBudget":      func() any { return new(policyv1.PodDisruptionBudget) },
	"networking.k8s.io/v1/NetworkPolicy": func() any { return new(networkingv1.NetworkPolicy) },
}

// Render builds the kustomization in dir of fsys, as `kubectl kustomize dir` does, and
// returns the objects as a multi-document YAML stream, in kubectl's (legacy) order.
func Render(fsys filesys.FileSystem, dir string) ([]byte, error) {
	opts := krusty.MakeDefaultOptions()
	opts.Reorder = krusty.ReorderOptionLegacy
	k := krusty.MakeKustomizer(opts)
	m, err := k.Run(fsys, dir)
	if err != nil {
		return nil, err
	}
	return m.AsYaml()
}

// AdminDir is the kustomization of the administrator's Job, below the base.
const AdminDir = "admin"

// RenderAll renders the base in dir and its admin kustomization (the administrator's
// Job, applied apart when the membership changes) as one stream, so that the checks see
// every workload that may run.
func RenderAll(fsys filesys.FileSystem, dir string) ([]byte, error) {
	base, err := Render(fsys, dir)
	if err != nil {
		return nil, err
	}
	admin, err := Render(fsys, dir+"/"+AdminDir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", AdminDir, err)
	}
	return append(append(base, "---\n"...), admin...), nil
}

// SplitDocuments splits a YAML stream at its "---" separators, dropping empty documents.
func SplitDocuments(stream []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		if len(bytes.TrimSpace(cur.Bytes())) > 0 {
			docs = append(docs, bytes.Clone(cur.Bytes()))
		}
		cur.Reset()
	}
	for _, line := range bytes.SplitAfter(stream, []byte("\n")) {
		if t := bytes.TrimRight(line, " \t\r\n"); bytes.Equal(t, []byte("---")) {
			flush()
			continue
		}
		cur.Write(line)
	}
	flush()
	return docs
}

// Decode decodes one document strictly: unknown or duplicate fields and unknown kinds
// are errors.
func Decode(doc []byte) (Object, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return Object{}, fmt.Errorf("not a Kubernetes object: %w", err)
	}
	var meta struct {
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	_ = yaml.Unmarshal(doc, &meta)
	o := Object{APIVersion: tm.APIVersion, Kind: tm.Kind, Name: meta.Metadata.Name, Namespace: meta.Metadata.Namespace}
	mk, ok := kinds[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return o, fmt.Errorf("%s: unknown kind %s/%s", o, tm.APIVersion, tm.Kind)
	}
	o.Obj = mk()
	// Kubernetes' own decoding: field names match case-sensitively (encoding/json alone
	// would take "readonlyRootFilesystem" for readOnlyRootFilesystem), and unknown or
	// duplicate fields are errors.
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return o, fmt.Errorf("%s: %w", o, err)
	}
	strict, err := kjson.UnmarshalStrict(js, o.Obj)
	if err != nil {
		return o, fmt.Errorf("%s: %w", o, err)
	}
	if len(strict) > 0 {
		return o, fmt.Errorf("%s: %w", o, errors.Join(strict...))
	}
	return o, nil
}

// Load splits and decodes a YAML stream. It returns the objects that decoded and a
// problem for each one that did not.
func Load(stream []byte) ([]Object, []string) {
	var objs []Object
	var problems []string
	for _, doc := range SplitDocuments(stream) {
		o, err := Decode(doc)
		if err != nil {
			problems = append(problems, "decode: "+err.Error())
			continue
		}
		objs = append(objs, o)
	}
	return objs, problems
}

// Validate runs Load and every check on a YAML stream.
func Validate(stream []byte) []string {
	objs, problems := Load(stream)
	problems = append(problems, Check(objs)...)
	return problems
}

// Check runs every cross-object check and returns the problems found, sorted.
func Check(objs []Object) []string {
	c := &checker{objs: objs}
	defer c.cleanup()
	c.index()
	for _, w := range c.workloads {
		c.checkWorkload(w)
	}
	c.checkServices()
	c.checkPDBs()
	c.checkNATS()
	c.checkAdmin()
	for _, w := range c.workloads {
		for _, ctr := range w.tmpl.Spec.Containers {
			for i := range podCount(w) {
				c.checkKeysDir(w, ctr, w.podName(i))
			}
		}
	}
	c.checkNamespaces()
	sort.Strings(c.problems)
	return slices.Compact(c.problems)
}

// workload is a StatefulSet, a Deployment or a Job.
type workload struct {
	kind, name  string
	replicas    int32
	selector    *metav1.LabelSelector
	tmpl        corev1.PodTemplateSpec
	claims      []corev1.PersistentVolumeClaim
	serviceName string
	start       int32                        // a StatefulSet's first ordinal (spec.ordinals.start)
	configMaps  map[string]*corev1.ConfigMap // of the manifests, for configMapKeyRef
}

func (w *workload) String() string { return w.kind + "/" + w.name }

// podName is the name of the i-th pod of w, as far as it is predictable (StatefulSets:
// ordinals from spec.ordinals.start).
func (w *workload) podName(i int) string {
	if w.kind == "StatefulSet" {
		return fmt.Sprintf("%s-%d", w.name, int(w.start)+i)
	}
	return w.name + "-pod"
}

func (w *workload) containers() []corev1.Container {
	return append(append([]corev1.Container{}, w.tmpl.Spec.InitContainers...), w.tmpl.Spec.Containers...)
}

func (w *workload) volume(name string) *corev1.Volume {
	for i := range w.tmpl.Spec.Volumes {
		if w.tmpl.Spec.Volumes[i].Name == name {
			return &w.tmpl.Spec.Volumes[i]
		}
	}
	return nil
}

type checker struct {
	objs       []Object
	workloads  []*workload
	services   []*corev1.Service
	pdbs       []*policyv1.PodDisruptionBudget
	netpols    []*networkingv1.NetworkPolicy
	configMaps map[string]*corev1.ConfigMap
	problems   []string
	pods       map[string]*podFS // simulated pods, by workload/pod (podFiles)
	tmpDirs    []string
}

func (c *checker) reportf(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

func (c *checker) index() {
	c.configMaps = map[string]*corev1.ConfigMap{}
	for _, o := range c.objs {
		switch v := o.Obj.(type) {
		case *appsv1.StatefulSet:
			w := &workload{kind: "StatefulSet", name: v.Name, replicas: replicas(v.Spec.Replicas),
				selector: v.Spec.Selector, tmpl: v.Spec.Template, claims: v.Spec.VolumeClaimTemplates, serviceName: v.Spec.ServiceName}
			if v.Spec.Ordinals != nil {
				w.start = v.Spec.Ordinals.Start
			}
			c.workloads = append(c.workloads, w)
		case *appsv1.Deployment:
			c.workloads = append(c.workloads, &workload{kind: "Deployment", name: v.Name, replicas: replicas(v.Spec.Replicas),
				selector: v.Spec.Selector, tmpl: v.Spec.Template})
		case *batchv1.Job:
			// A Job selects its pods by a generated label: its template's labels stand in.
			c.workloads = append(c.workloads, &workload{kind: "Job", name: v.Name, replicas: 1,
				selector: &metav1.LabelSelector{MatchLabels: v.Spec.Template.Labels}, tmpl: v.Spec.Template})
		case *corev1.Service:
			c.services = append(c.services, v)
		case *policyv1.PodDisruptionBudget:
			c.pdbs = append(c.pdbs, v)
		case *networkingv1.NetworkPolicy:
			c.netpols = append(c.netpols, v)
		case *corev1.ConfigMap:
			c.configMaps[v.Name] = v
		}
	}
	for _, w := range c.workloads {
		w.configMaps = c.configMaps
	}
}

// podCount is the number of pods of w the checks simulate: a StatefulSet's replicas, one
// of any other workload.
func podCount(w *workload) int {
	if w.kind != "StatefulSet" || w.replicas < 1 {
		return 1
	}
	return int(w.replicas)
}

func replicas(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

func (c *checker) checkWorkload(w *workload) {
	sel, err := metav1.LabelSelectorAsSelector(w.selector)
	switch {
	case err != nil || w.selector == nil || sel.Empty():
		c.reportf("%s: selector missing or invalid: %v", w, err)
	case !selects(w.selector, w.tmpl.Labels):
		c.reportf("%s: selector %v does not match its pod template labels %v", w, w.selector.MatchLabels, w.tmpl.Labels)
	}
	if w.kind == "StatefulSet" {
		svc := c.service(w.serviceName)
		switch {
		case svc == nil:
			c.reportf("%s: serviceName %q names no Service", w, w.serviceName)
		case svc.Spec.ClusterIP != corev1.ClusterIPNone:
			c.reportf("%s: governing Service %q is not headless", w, w.serviceName)
		case !selectsMap(svc.Spec.Selector, w.tmpl.Labels):
			c.reportf("%s: governing Service %q does not select its pods", w, w.serviceName)
		}
	}
	pod := w.tmpl.Spec
	for _, v := range pod.Volumes {
		if v.ConfigMap != nil && c.configMaps[v.ConfigMap.Name] == nil {
			c.reportf("%s: volume %q: ConfigMap %q is not in the manifests", w, v.Name, v.ConfigMap.Name)
		}
	}
	for _, ctr := range w.containers() {
		where := fmt.Sprintf("%s container %q", w, ctr.Name)
		c.checkSecurity(where, pod.SecurityContext, ctr.SecurityContext)
		c.checkMounts(where, w, ctr)
		c.checkProbes(where, ctr)
		c.checkEnv(where, w, ctr)
		c.checkImagePull(where, ctr)
	}
	if len(pod.Containers) == 0 {
		c.reportf("%s: no containers", w)
	}
}

func (c *checker) service(name string) *corev1.Service {
	for _, s := range c.services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func selects(sel *metav1.LabelSelector, labels map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		return false
	}
	return s.Matches(labelSet(labels))
}

func selectsMap(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

type labelSet map[string]string

func (l labelSet) Has(k string) bool   { _, ok := l[k]; return ok }
func (l labelSet) Get(k string) string { return l[k] }
func (l labelSet) Lookup(k string) (string, bool) {
	v, ok := l[k]
	return v, ok
}

func (c *checker) checkServices() {
	for _, s := range c.services {
		var selected []*workload
		for _, w := range c.workloads {
			if selectsMap(s.Spec.Selector, w.tmpl.Labels) {
				selected = append(selected, w)
			}
		}
		if len(selected) == 0 {
			c.reportf("Service/%s: selector %v selects no workload", s.Name, s.Spec.Selector)
			continue
		}
		for _, sp := range s.Spec.Ports {
			target := intOrString{num: sp.Port}
			if tp := sp.TargetPort; tp.String() != "" && tp.String() != "0" {
				target = fromIntOrString(tp.String(), tp.IntVal, tp.Type == intstr.String)
			}
			for _, w := range selected {
				found := false
				for _, ctr := range w.tmpl.Spec.Containers {
					if _, ok := containerPort(ctr, target); ok {
						found = true
					}
				}
				if !found {
					c.reportf("Service/%s: port %q targets %s, which no container of %s exposes", s.Name, sp.Name, target, w)
				}
			}
		}
	}
}

func (c *checker) checkPDBs() {
	for _, p := range c.pdbs {
		var selected []*workload
		for _, w := range c.workloads {
			if selects(p.Spec.Selector, w.tmpl.Labels) {
				selected = append(selected, w)
			}
		}
		if len(selected) == 0 {
			c.reportf("PodDisruptionBudget/%s: selector selects no workload's pods", p.Name)
			continue
		}
		for _, w := range selected {
			if !selects(p.Spec.Selector, w.tmpl.Labels) || !selectorCovers(p.Spec.Selector, w.selector) {
				c.reportf("PodDisruptionBudget/%s: selector does not match the selector of %s", p.Name, w)
			}
			ids := pbftNodeIDs(w)
			if len(ids) == 0 || p.Spec.MaxUnavailable == nil {
				continue
			}
			// A replica set of n tolerates f = (n-1)/3 faults: no more may be down at once.
			f := (len(ids) - 1) / 3
			if mu := p.Spec.MaxUnavailable; mu.Type != intstr.Int || mu.IntVal > int32(f) || mu.IntVal < 1 {
				c.reportf("PodDisruptionBudget/%s: maxUnavailable %s for %d replicas, want f = %d", p.Name, mu.String(), len(ids), f)
			}
		}
	}
}

// selectorCovers reports whether every label the workload selects on is also required
// by the PDB's selector with the same value, so that the PDB counts exactly the
// workload's pods.
func selectorCovers(pdb, wl *metav1.LabelSelector) bool {
	if pdb == nil || wl == nil {
		return false
	}
	for k, v := range pdb.MatchLabels {
		if wl.MatchLabels[k] != v {
			return false
		}
	}
	return true
}

// pbftNodeIDs returns PBFT_NODE_IDS of the workload's replica container (one with a
// PBFT_NODE_ID), resolved as in its first pod, if it has one.
func pbftNodeIDs(w *workload) []string {
	for _, ctr := range w.tmpl.Spec.Containers {
		if hasEnv(ctr, "PBFT_NODE_ID") {
			return splitList(resolveEnv(w, ctr, w.podName(0))["PBFT_NODE_IDS"])
		}
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
