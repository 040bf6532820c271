package kubernetes

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/eventproc/eventproc/event/httpapi"
	"github.com/eventproc/eventproc/event/processor"
	"github.com/eventproc/eventproc/event/pubsub"
	"github.com/eventproc/eventproc/event/sink"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// The objects the manifests must hold, by name.
const (
	sinkName = "eventproc" // Deployment, its container, Service, PDB, HPA
	procName = "proc"      // Deployment and its container
)

// overlays are the renderings checked, with what differs between them.
var overlays = []struct {
	name, dir        string
	sinkMin, sinkMax int32 // the sink autoscaler's bounds
	nats, tls        bool
}{
	{name: "base", dir: "base", sinkMin: 2, sinkMax: 4},
	{name: "single", dir: "overlays/single", sinkMin: 1, sinkMax: 1},
	{name: "scaled", dir: "overlays/scaled", sinkMin: 3, sinkMax: 10, nats: true, tls: true},
}

// TestManifests renders the base and every overlay, decodes each object
// strictly into its k8s.io/api type and checks what the sink and the
// processor need of it.
func TestManifests(t *testing.T) {
	flags := readmeFlags(t)
	procPort := procDefaultPort(t)
	for _, o := range overlays {
		t.Run(o.name, func(t *testing.T) {
			objs, err := render(o.dir)
			if err != nil {
				t.Fatal(err)
			}
			m := decode(t, objs)
			m.checkSelectors(t)
			m.checkScaling(t, o.sinkMin, o.sinkMax)
			for _, d := range m.deployments {
				checkPod(t, d)
			}
			sinkC := m.container(t, sinkName, sinkName)
			m.checkSink(t, flags, sinkC)
			m.checkProc(t, procPort)
			m.checkRoutes(t, sinkC, procPort)

			nats := envValue(sinkC, "EVENTPROC_NATS_URL")
			if want := map[bool]string{true: "nats://nats:4222"}[o.nats]; nats != want {
				t.Errorf("EVENTPROC_NATS_URL %q, want %q", nats, want)
			}
			checkTLS(t, flags, m.deployments[sinkName], sinkC, o.tls)
		})
	}
}

// manifests is one rendering, decoded, by kind and name.
type manifests struct {
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	pdbs        map[string]*policyv1.PodDisruptionBudget
	hpas        map[string]*autoscalingv2.HorizontalPodAutoscaler
}

// decode decodes every object into its type; unknown kinds, unknown
// fields and duplicate names fail.
func decode(t *testing.T, objs []object) manifests {
	t.Helper()
	m := manifests{map[string]*appsv1.Deployment{}, map[string]*corev1.Service{}, map[string]*corev1.ConfigMap{},
		map[string]*policyv1.PodDisruptionBudget{}, map[string]*autoscalingv2.HorizontalPodAutoscaler{}}
	for _, o := range objs {
		name := nameOf(o)
		var err error
		switch gvk := fmt.Sprintf("%v %v", o["apiVersion"], o["kind"]); gvk {
		case "apps/v1 Deployment":
			err = decodeInto(o, m.deployments, name)
		case "v1 Service":
			err = decodeInto(o, m.services, name)
		case "v1 ConfigMap":
			err = decodeInto(o, m.configMaps, name)
		case "policy/v1 PodDisruptionBudget":
			err = decodeInto(o, m.pdbs, name)
		case "autoscaling/v2 HorizontalPodAutoscaler":
			err = decodeInto(o, m.hpas, name)
		default:
			err = fmt.Errorf("unexpected kind %s (add it to decode)", gvk)
		}
		if err != nil {
			t.Errorf("%v %q: %v", o["kind"], name, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return m
}

// decodeInto decodes o strictly into a new T stored in into[name].
func decodeInto[T any](o object, into map[string]*T, name string) error {
	if name == "" {
		return fmt.Errorf("no metadata.name")
	}
	if _, dup := into[name]; dup {
		return fmt.Errorf("defined twice")
	}
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	v := new(T)
	if err := dec.Decode(v); err != nil {
		return err
	}
	into[name] = v
	return nil
}

func (m manifests) container(t *testing.T, deployment, name string) *corev1.Container {
	t.Helper()
	d := m.deployments[deployment]
	if d == nil {
		t.Fatalf("no Deployment %q", deployment)
	}
	for i, c := range d.Spec.Template.Spec.Containers {
		if c.Name == name {
			return &d.Spec.Template.Spec.Containers[i]
		}
	}
	t.Fatalf("Deployment %q has no container %q", deployment, name)
	return nil
}

// selects reports whether every label of sel is in labels.
func selects(sel, labels map[string]string) bool {
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

// selected returns the names of the Deployments whose pods sel selects.
func (m manifests) selected(sel map[string]string) []string {
	var names []string
	for name, d := range m.deployments {
		if selects(sel, d.Spec.Template.Labels) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// checkSelectors checks that every Deployment selects its own pods, and
// every Service and PodDisruptionBudget the pods of exactly one
// Deployment, on ports those pods have.
func (m manifests) checkSelectors(t *testing.T) {
	t.Helper()
	for name, d := range m.deployments {
		if d.Spec.Selector == nil || len(d.Spec.Selector.MatchExpressions) > 0 || !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
			t.Errorf("Deployment %q: selector %v does not select its pod labels %v", name, d.Spec.Selector, d.Spec.Template.Labels)
		}
		if got := m.selected(d.Spec.Template.Labels); len(got) != 1 {
			t.Errorf("Deployment %q: its pod labels are those of Deployments %v", name, got)
		}
	}
	for name, s := range m.services {
		targets := m.selected(s.Spec.Selector)
		if len(targets) != 1 {
			t.Errorf("Service %q: selector %v selects the pods of Deployments %v, want one", name, s.Spec.Selector, targets)
			continue
		}
		pod := m.deployments[targets[0]].Spec.Template.Spec
		for _, p := range s.Spec.Ports {
			if containerPort(pod, p.TargetPort.String()) == 0 {
				t.Errorf("Service %q port %q: target port %s is no port of Deployment %q", name, p.Name, p.TargetPort.String(), targets[0])
			}
		}
	}
	for name, p := range m.pdbs {
		if p.Spec.Selector == nil || len(m.selected(p.Spec.Selector.MatchLabels)) != 1 {
			t.Errorf("PodDisruptionBudget %q: selector %v selects no single Deployment's pods", name, p.Spec.Selector)
		}
		if p.Spec.MaxUnavailable == nil && p.Spec.MinAvailable == nil {
			t.Errorf("PodDisruptionBudget %q: neither maxUnavailable nor minAvailable", name)
		}
	}
	if s := m.services["proc-headless"]; s == nil || s.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Error("no headless Service proc-headless (clusterIP: None) for the sinks' dns:/// targets")
	}
}

// containerPort returns the number of the port of pod's containers named,
// or numbered, port; 0 when there is none.
func containerPort(pod corev1.PodSpec, port string) int32 {
	for _, c := range pod.Containers {
		for _, p := range c.Ports {
			if p.Name == port || strconv.Itoa(int(p.ContainerPort)) == port {
				return p.ContainerPort
			}
		}
	}
	return 0
}

// checkScaling checks the sink's autoscaler and disruption budget.
func (m manifests) checkScaling(t *testing.T, minReplicas, maxReplicas int32) {
	t.Helper()
	for name, h := range m.hpas {
		ref := h.Spec.ScaleTargetRef
		d := m.deployments[ref.Name]
		if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || d == nil {
			t.Errorf("HorizontalPodAutoscaler %q: target %s %s %q is no Deployment here", name, ref.APIVersion, ref.Kind, ref.Name)
			continue
		}
		if d.Spec.Replicas != nil {
			t.Errorf("Deployment %q has replicas: %d, and HorizontalPodAutoscaler %q scales it: leave replicas out, or every apply resets it",
				ref.Name, *d.Spec.Replicas, name)
		}
		cpu := false
		for _, metric := range h.Spec.Metrics {
			cpu = cpu || metric.Type == autoscalingv2.ResourceMetricSourceType && metric.Resource != nil && metric.Resource.Name == corev1.ResourceCPU
		}
		if !cpu {
			t.Errorf("HorizontalPodAutoscaler %q: no CPU metric", name)
		}
	}
	h := m.hpas[sinkName]
	switch {
	case h == nil:
		t.Errorf("no HorizontalPodAutoscaler %q", sinkName)
	case h.Spec.ScaleTargetRef.Name != sinkName:
		t.Errorf("HorizontalPodAutoscaler %q scales %q, want the sink", sinkName, h.Spec.ScaleTargetRef.Name)
	case h.Spec.MinReplicas == nil || *h.Spec.MinReplicas != minReplicas || h.Spec.MaxReplicas != maxReplicas:
		t.Errorf("sink autoscaler: min %v, max %d; want %d and %d", h.Spec.MinReplicas, h.Spec.MaxReplicas, minReplicas, maxReplicas)
	}
	if p := m.pdbs[sinkName]; p == nil || !selects(p.Spec.Selector.MatchLabels, m.deployments[sinkName].Spec.Template.Labels) {
		t.Errorf("no PodDisruptionBudget %q for the sink's pods", sinkName)
	}
}

// checkPod checks what every pod needs: non-root, read-only, no
// privileges, resources.
func checkPod(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	pod := d.Spec.Template.Spec
	psc := pod.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("Deployment %q: mounts a service account token it has no use for", d.Name)
	}
	for _, c := range pod.Containers {
		where := fmt.Sprintf("Deployment %q container %q", d.Name, c.Name)
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("%s: no securityContext", where)
			continue
		}
		if !isTrue(sc.RunAsNonRoot, psc.RunAsNonRoot) {
			t.Errorf("%s: runAsNonRoot is not true", where)
		}
		if uid := first(sc.RunAsUser, psc.RunAsUser); uid == nil || *uid == 0 {
			t.Errorf("%s: runAsUser %v, want the image's non-root user", where, uid)
		}
		if !isTrue(sc.ReadOnlyRootFilesystem) {
			t.Errorf("%s: readOnlyRootFilesystem is not true", where)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: allowPrivilegeEscalation is not false", where)
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("%s: privileged", where)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			t.Errorf("%s: capabilities %v, want drop ALL and add none", where, sc.Capabilities)
		}
		if sp := first(sc.SeccompProfile, psc.SeccompProfile); sp == nil || sp.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: seccompProfile %v, want RuntimeDefault", where, sp)
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, okReq := c.Resources.Requests[r]
			limit, okLimit := c.Resources.Limits[r]
			switch {
			case !okReq || !okLimit:
				t.Errorf("%s: %s request %v, limit %v; want both", where, r, c.Resources.Requests, c.Resources.Limits)
			case req.Cmp(limit) > 0:
				t.Errorf("%s: %s request %s above its limit %s", where, r, req.String(), limit.String())
			}
		}
		// GOMEMLIMIT: the runtime's soft limit is the container's limit.
		var memLimit *corev1.EnvVar
		for i, e := range c.Env {
			if e.Name == "GOMEMLIMIT" {
				memLimit = &c.Env[i]
			}
		}
		if memLimit == nil || memLimit.ValueFrom == nil || memLimit.ValueFrom.ResourceFieldRef == nil ||
			memLimit.ValueFrom.ResourceFieldRef.Resource != "limits.memory" ||
			memLimit.ValueFrom.ResourceFieldRef.ContainerName != c.Name {
			t.Errorf("%s: GOMEMLIMIT %v, want it from this container's limits.memory", where, memLimit)
		}
	}
}

func isTrue(bs ...*bool) bool {
	b := first(bs...)
	return b != nil && *b
}

// first returns the first non-nil value: a container's setting before its pod's.
func first[T any](vs ...*T) *T {
	for _, v := range vs {
		if v != nil {
			return v
		}
	}
	return nil
}

// checkSink checks the sink's ports, probes, memory and shutdown against
// its flags (defaults from the README table, which TestREADMEFlags keeps
// equal to the flag set) and its HTTP handler.
func (m manifests) checkSink(t *testing.T, flags map[string]flagInfo, c *corev1.Container) {
	t.Helper()
	d := m.deployments[sinkName]
	for _, p := range []struct{ name, flag string }{{"http", "http-addr"}, {"grpc", "grpc-addr"}} {
		_, port, err := net.SplitHostPort(setting(t, c, flags, p.flag))
		if err != nil {
			t.Fatalf("--%s: %v", p.flag, err)
		}
		if got := containerPort(d.Spec.Template.Spec, p.name); strconv.Itoa(int(got)) != port {
			t.Errorf("sink container port %q: %d, want %s (--%s)", p.name, got, port, p.flag)
		}
		svc := m.services[sinkName]
		if svc == nil || !slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool {
			return sp.Name == p.name && sp.TargetPort.String() == p.name
		}) {
			t.Errorf("Service %q has no port %q to the sink's port %q", sinkName, p.name, p.name)
		}
	}
	if !strings.HasPrefix(c.Image, "eventproc/eventproc:") {
		t.Errorf("sink image %q, want eventproc/eventproc (make image)", c.Image)
	}

	// The probes, against the sink's HTTP handler: liveness answers 200
	// whatever the processors do; readiness 200 only when routes are up.
	for _, p := range []struct {
		kind  string
		probe *corev1.Probe
		want  map[bool]int // route ready → status
	}{
		{"liveness", c.LivenessProbe, map[bool]int{true: 200, false: 200}},
		{"readiness", c.ReadinessProbe, map[bool]int{true: 200, false: 503}},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("sink %s probe: %v, want an HTTP GET", p.kind, p.probe)
			continue
		}
		get := p.probe.HTTPGet
		if get.Port.String() != "http" {
			t.Errorf("sink %s probe on port %s, want the port named http", p.kind, get.Port.String())
		}
		for ready, want := range p.want {
			h, err := httpapi.New(fakeBackend{ready: ready}, httpapi.Options{})
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, get.Path, nil))
			if rec.Code != want {
				t.Errorf("sink %s probe GET %s with routes ready=%v: %d, want %d", p.kind, get.Path, ready, rec.Code, want)
			}
		}
	}

	// GOMEMLIMIT applies only while --memory-budget is not given.
	if v := setting(t, c, nil, "memory-budget"); v != "" {
		t.Errorf("--memory-budget or EVENTPROC_MEMORY_BUDGET is %q: GOMEMLIMIT would not apply", v)
	}

	// Shutdown: preStop pause, then --shutdown-delay and --shutdown-grace,
	// within the grace period.
	grace := parseDuration(t, setting(t, c, flags, "shutdown-delay")) + parseDuration(t, setting(t, c, flags, "shutdown-grace"))
	checkGrace(t, d, c, grace)
}

// checkGrace checks that the pod's termination grace period covers the
// preStop pause and the program's own shutdown grace, with a margin.
func checkGrace(t *testing.T, d *appsv1.Deployment, c *corev1.Container, shutdownGrace time.Duration) {
	t.Helper()
	var pause time.Duration
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		if c.Lifecycle.PreStop.Exec != nil {
			t.Errorf("%s: preStop exec: the image has no shell or sleep binary; use the sleep action", c.Name)
		}
		if s := c.Lifecycle.PreStop.Sleep; s != nil {
			pause = time.Duration(s.Seconds) * time.Second
		}
	}
	period := 30 * time.Second // the default
	if p := d.Spec.Template.Spec.TerminationGracePeriodSeconds; p != nil {
		period = time.Duration(*p) * time.Second
	}
	if period <= pause+shutdownGrace {
		t.Errorf("Deployment %q: terminationGracePeriodSeconds %v, want above the preStop pause %v plus the shutdown grace %v",
			d.Name, period, pause, shutdownGrace)
	}
}

// checkProc checks the processor's port, probes and shutdown.
func (m manifests) checkProc(t *testing.T, port int32) {
	t.Helper()
	d := m.deployments[procName]
	c := m.container(t, procName, procName)
	if got := containerPort(d.Spec.Template.Spec, "grpc"); got != port {
		t.Errorf("proc container port grpc: %d, want %d (proc --addr)", got, port)
	}
	for kind, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.GRPC == nil || p.GRPC.Port != port {
			t.Errorf("proc %s probe %v, want gRPC health on port %d", kind, p, port)
		}
	}
	if !strings.HasPrefix(c.Image, "eventproc/proc:") {
		t.Errorf("proc image %q, want eventproc/proc (make image)", c.Image)
	}
	grace := processor.DefaultShutdownGrace
	if v := envValue(c, "PROC_SHUTDOWN_GRACE"); v != "" {
		grace = parseDuration(t, v)
	}
	checkGrace(t, d, c, grace)
}

// checkRoutes checks that the routes reach processors: every dns:///
// target names a headless Service whose pods listen on its port.
func (m manifests) checkRoutes(t *testing.T, c *corev1.Container, procPort int32) {
	t.Helper()
	routes := envValue(c, "EVENTPROC_ROUTES")
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef != nil && m.configMaps[from.ConfigMapRef.Name] != nil {
			routes = cmp(routes, m.configMaps[from.ConfigMapRef.Name].Data["EVENTPROC_ROUTES"])
		}
	}
	if routes == "" {
		t.Fatal("the sink has no routes (EVENTPROC_ROUTES, in its env or a ConfigMap it reads)")
	}
	for _, spec := range strings.FieldsFunc(routes, func(r rune) bool { return r == ';' || r == ' ' || r == '\n' }) {
		route, err := sink.ParseRoute(spec)
		if err != nil {
			t.Errorf("route %q: %v", spec, err)
			continue
		}
		for _, target := range route.Targets {
			hostPort, ok := strings.CutPrefix(target, "dns:///")
			if !ok {
				t.Errorf("route %q: target %q is not dns:///: in a cluster, name a headless Service", spec, target)
				continue
			}
			host, port, _ := net.SplitHostPort(hostPort)
			s := m.services[host]
			if s == nil || s.Spec.ClusterIP != corev1.ClusterIPNone {
				t.Errorf("route %q: %q is no headless Service here", spec, host)
				continue
			}
			for _, dep := range m.selected(s.Spec.Selector) {
				if got := containerPort(m.deployments[dep].Spec.Template.Spec, port); got == 0 || got != procPort {
					t.Errorf("route %q: the pods of %q (Deployment %q) do not listen on %s", spec, host, dep, port)
				}
			}
		}
	}
}

// cmp returns the first non-empty string.
func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// checkTLS checks the TLS patch: a Secret mounted as a directory (so that
// its updates arrive), the certificate settings in it, named as the
// sink's flags name them (the README's table), and HTTPS probes.
func checkTLS(t *testing.T, flags map[string]flagInfo, d *appsv1.Deployment, c *corev1.Container, want bool) {
	t.Helper()
	for flag, env := range map[string]string{"tls-cert": "EVENTPROC_TLS_CERT", "tls-key": "EVENTPROC_TLS_KEY"} {
		if flags[flag].env != env {
			t.Errorf("--%s is set by %q, the manifests use %q", flag, flags[flag].env, env)
		}
	}
	cert, key := envValue(c, "EVENTPROC_TLS_CERT"), envValue(c, "EVENTPROC_TLS_KEY")
	if !want {
		if cert != "" || key != "" {
			t.Errorf("TLS settings without the TLS patch: %q, %q", cert, key)
		}
		return
	}
	var mount *corev1.VolumeMount
	for i, vm := range c.VolumeMounts {
		if vm.Name == "tls" {
			mount = &c.VolumeMounts[i]
		}
	}
	if mount == nil || mount.SubPath != "" || !mount.ReadOnly {
		t.Fatalf("TLS volume mount %v, want the volume tls, read-only, without subPath (updates never reach a subPath)", mount)
	}
	vol := slices.IndexFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == "tls" })
	if vol < 0 || d.Spec.Template.Spec.Volumes[vol].Secret == nil || d.Spec.Template.Spec.Volumes[vol].Secret.SecretName != "eventproc-tls" {
		t.Errorf("no volume tls from the Secret eventproc-tls")
	}
	for name, file := range map[string]string{"EVENTPROC_TLS_CERT": cert, "EVENTPROC_TLS_KEY": key} {
		if path.Dir(file) != mount.MountPath {
			t.Errorf("%s %q, want a file in %s", name, file, mount.MountPath)
		}
	}
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		if p.HTTPGet.Scheme != corev1.URISchemeHTTPS {
			t.Errorf("probe of %s over %s with TLS on, want HTTPS", p.HTTPGet.Path, p.HTTPGet.Scheme)
		}
	}
}

// envValue is the value of c's variable name, "" when unset.
func envValue(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// flagInfo is one row of the README's flags table.
type flagInfo struct{ env, def string }

// readmeFlags reads the sink's flags table from the README.
func readmeFlags(t *testing.T) map[string]flagInfo {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `--([a-z0-9-]+)[^`]*` \\| `([A-Z0-9_]+)` \\| (?:`([^`]*)`|—) \\|")
	flags := make(map[string]flagInfo)
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		flags[m[1]] = flagInfo{env: m[2], def: m[3]}
	}
	for _, f := range []string{"http-addr", "grpc-addr", "shutdown-delay", "shutdown-grace", "memory-budget"} {
		if _, ok := flags[f]; !ok {
			t.Fatalf("README.md: no --%s in the flags table", f)
		}
	}
	return flags
}

// setting returns the sink's value of flag: from its arguments, else its
// variable, else the default (none when flags is nil).
func setting(t *testing.T, c *corev1.Container, flags map[string]flagInfo, flag string) string {
	t.Helper()
	args := append(slices.Clone(c.Command), c.Args...)
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+flag+"="); ok {
			return v
		}
		if a == "--"+flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	env := "EVENTPROC_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
	if v := envValue(c, env); v != "" {
		return v
	}
	return flags[flag].def
}

// parseDuration parses a duration as the programs do: Go's syntax or seconds.
func parseDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	if d, err := time.ParseDuration(s); err == nil {
		return d
	}
	secs, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("duration %q: %v", s, err)
	}
	return time.Duration(secs * float64(time.Second))
}

// procDefaultPort reads the default of proc's --addr from proc/config.go
// (proc is a main package; its flag set cannot be imported).
func procDefaultPort(t *testing.T) int32 {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../../proc/config.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var addr string
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) < 3 {
			return true
		}
		if name, ok := call.Args[1].(*ast.BasicLit); ok && name.Value == `"addr"` {
			if def, ok := call.Args[2].(*ast.BasicLit); ok {
				addr, _ = strconv.Unquote(def.Value)
			}
		}
		return true
	})
	_, port, err := net.SplitHostPort(addr)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil {
		t.Fatalf("proc/config.go: no default HOST:PORT for the addr flag (found %q)", addr)
	}
	return int32(n)
}

// fakeBackend is a sink whose one route is ready or not.
type fakeBackend struct{ ready bool }

func (fakeBackend) Send(context.Context, *eventv1.SendRequest) (*eventv1.SendResponse, error) {
	return nil, status.Error(codes.Unavailable, "test backend")
}

func (fakeBackend) SubscribeEvents(context.Context, []eventv1.Type, string) (*pubsub.Subscription, error) {
	return nil, status.Error(codes.Unavailable, "test backend")
}

func (b fakeBackend) Status() []sink.RouteStatus {
	return []sink.RouteStatus{{Type: "TYPE_HELLO", Ready: b.ready}}
}

// TestNATSValues checks the NATS Helm chart values of the scaled overlay:
// a three-node cluster with JetStream on disk, which the sinks reach as
// nats://nats:4222 (the chart's Service is named after the release, nats).
func TestNATSValues(t *testing.T) {
	b, err := os.ReadFile("overlays/scaled/nats-values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Config struct {
			Cluster struct {
				Enabled  bool `json:"enabled"`
				Replicas int  `json:"replicas"`
			} `json:"cluster"`
			JetStream struct {
				Enabled   bool `json:"enabled"`
				FileStore struct {
					Enabled bool `json:"enabled"`
					PVC     struct {
						Enabled bool   `json:"enabled"`
						Size    string `json:"size"`
					} `json:"pvc"`
				} `json:"fileStore"`
				MemoryStore struct {
					Enabled bool `json:"enabled"`
				} `json:"memoryStore"`
			} `json:"jetstream"`
		} `json:"config"`
		PodTemplate map[string]any `json:"podTemplate"`
	}
	if err := yaml.UnmarshalStrict(b, &v); err != nil {
		t.Fatal(err)
	}
	c := v.Config
	if !c.Cluster.Enabled || c.Cluster.Replicas != 3 || !c.JetStream.Enabled || !c.JetStream.FileStore.Enabled || !c.JetStream.FileStore.PVC.Enabled {
		t.Errorf("nats-values.yaml: %+v; want a cluster of 3 with JetStream on persistent volumes", c)
	}
	if keys := slices.Sorted(maps.Keys(v.PodTemplate)); !slices.Equal(keys, []string{"topologySpreadConstraints"}) {
		t.Errorf("nats-values.yaml podTemplate: %v", keys)
	}
}
