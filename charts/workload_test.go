package charts

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func deployment(t testing.TB, r *rendered) *appsv1.Deployment {
	t.Helper()
	return decode[appsv1.Deployment](t, r.mustFind(t, "Deployment", r.fullname(t)))
}

func checkDeployment(t *testing.T, r *rendered) {
	d := deployment(t, r)
	pod := d.Spec.Template
	if got, want := *d.Spec.Replicas, int32(r.integer(t, "replicaCount")); got != want {
		t.Errorf("replicas %d, want %d", got, want)
	}
	if _, set := r.release.Config["replicaCount"]; !set && *d.Spec.Replicas != 2 {
		t.Errorf("%d replicas by default, want 2", *d.Spec.Replicas)
	}
	selector, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || !selector.Matches(labels.Set(pod.Labels)) {
		t.Fatalf("the Deployment's selector %v does not select its Pods %v (%v)", d.Spec.Selector, pod.Labels, err)
	}
	if pod.Spec.PriorityClassName != r.str(t, "priorityClassName") {
		t.Errorf("priorityClassName %q, want %q", pod.Spec.PriorityClassName, r.str(t, "priorityClassName"))
	}
	if pod.Spec.HostNetwork != r.boolean(t, "hostNetwork") {
		t.Errorf("hostNetwork %v, want %v", pod.Spec.HostNetwork, r.boolean(t, "hostNetwork"))
	}
	if pod.Spec.ServiceAccountName != serviceAccountName(t, r) {
		t.Errorf("serviceAccountName %q, want %q", pod.Spec.ServiceAccountName, serviceAccountName(t, r))
	}
	keys := map[string]bool{}
	for _, c := range pod.Spec.TopologySpreadConstraints {
		keys[c.TopologyKey] = true
		sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
		if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
			t.Errorf("spread over %s counts Pods %v, not the webhook's (%v)", c.TopologyKey, c.LabelSelector, err)
		}
	}
	if !keys["kubernetes.io/hostname"] || !keys["topology.kubernetes.io/zone"] {
		t.Errorf("replicas spread over %v, want nodes and zones", keys)
	}
	checkRestricted(t, "Deployment", pod.Spec)
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	args := containerArgs(t, c)
	checkArgs(t, r, args)
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for name, path := range map[string]string{"webhook": "ports.webhook", "metrics": "ports.metrics", "health": "ports.health"} {
		if ports[name] != int32(r.integer(t, path)) {
			t.Errorf("container port %s = %d, want %s = %d", name, ports[name], path, r.integer(t, path))
		}
	}
	for probe, path := range map[*corev1.Probe]string{c.LivenessProbe: "/healthz", c.ReadinessProbe: "/readyz"} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != path || probe.HTTPGet.Port != intstr.FromString("health") {
			t.Errorf("no probe of %s on the health port: %+v", path, probe)
		}
	}
	// The root filesystem is read-only: the certificates and /tmp need volumes.
	if got := mountedAt(t, d, "certs"); got != args["--cert-dir"] {
		t.Errorf("the certificate volume is mounted at %q, --cert-dir is %q", got, args["--cert-dir"])
	}
	if got := mountedAt(t, d, "tmp"); got != "/tmp" {
		t.Errorf("tmp volume mounted at %q", got)
	}
	if ns := c.Env[0]; ns.Name != "POD_NAMESPACE" || ns.ValueFrom == nil || ns.ValueFrom.FieldRef == nil || ns.ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
		t.Errorf("POD_NAMESPACE is not the downward API's metadata.namespace: %+v", ns)
	}
	if got, want := envValue(c, "AWS_REGION"), r.str(t, "aws.region"); got != want {
		t.Errorf("AWS_REGION=%q, want aws.region %q", got, want)
	}
	// A stopping replica keeps answering for --shutdown-delay, then finishes
	// admissions of at most --webhook-timeout: all before it is killed.
	grace := time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	if delay, timeout := duration(t, args["--shutdown-delay"]), duration(t, args["--webhook-timeout"]); delay >= grace-timeout {
		t.Errorf("--shutdown-delay %s must be < terminationGracePeriodSeconds %s - --webhook-timeout %s", delay, grace, timeout)
	}
	if r.boolean(t, "podDisruptionBudget.enabled") {
		pdb := decode[policyv1.PodDisruptionBudget](t, r.mustFind(t, "PodDisruptionBudget", r.fullname(t)))
		if want := intstr.FromInt32(int32(r.integer(t, "podDisruptionBudget.maxUnavailable"))); pdb.Spec.MaxUnavailable == nil || *pdb.Spec.MaxUnavailable != want {
			t.Errorf("PDB maxUnavailable %v, want %v", pdb.Spec.MaxUnavailable, want)
		}
		if r.release.Config["podDisruptionBudget"] == nil && pdb.Spec.MaxUnavailable.IntValue() != 1 {
			t.Errorf("default PDB maxUnavailable %v, want 1", pdb.Spec.MaxUnavailable)
		}
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
			t.Errorf("the PDB does not select the webhook Pods: %v", pdb.Spec.Selector)
		}
	}
}

// checkRestricted asserts the "restricted" Pod Security Standard and
// resources on every container of spec.
func checkRestricted(t *testing.T, what string, spec corev1.PodSpec) {
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: Pod securityContext %+v, want runAsNonRoot, runAsUser 65532, seccomp RuntimeDefault", what, psc)
	}
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		sc := c.SecurityContext
		switch {
		case sc == nil:
			t.Errorf("%s container %s: no securityContext", what, c.Name)
		case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot, sc.RunAsUser == nil || *sc.RunAsUser != 65532:
			t.Errorf("%s container %s: not non-root 65532", what, c.Name)
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			t.Errorf("%s container %s: root filesystem writable", what, c.Name)
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Errorf("%s container %s: privilege escalation allowed", what, c.Name)
		case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
			t.Errorf("%s container %s: capabilities %+v, want drop ALL", what, c.Name, sc.Capabilities)
		case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
			t.Errorf("%s container %s: seccomp %+v", what, c.Name, sc.SeccompProfile)
		case sc.Privileged != nil && *sc.Privileged:
			t.Errorf("%s container %s: privileged", what, c.Name)
		}
		req, lim := c.Resources.Requests, c.Resources.Limits
		if req.Cpu().IsZero() || req.Memory().IsZero() || lim.Memory().IsZero() {
			t.Errorf("%s container %s: resources %+v, want cpu and memory requests and a memory limit", what, c.Name, c.Resources)
		}
		if !lim.Memory().IsZero() && lim.Memory().Cmp(*req.Memory()) < 0 {
			t.Errorf("%s container %s: memory limit below its request", what, c.Name)
		}
	}
}

// containerArgs maps each --flag=value argument to its value; a flag given
// twice, or an argument of another shape, fails the test.
func containerArgs(t testing.TB, c corev1.Container) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, a := range c.Args {
		if a == "uninstall" {
			out[a] = ""
			continue
		}
		k, v, ok := strings.Cut(a, "=")
		if !ok || !strings.HasPrefix(k, "--") {
			t.Errorf("container %s: argument %q is not --flag=value", c.Name, a)
			continue
		}
		if _, dup := out[k]; dup {
			t.Errorf("container %s: %s given twice", c.Name, k)
		}
		out[k] = v
	}
	return out
}

// checkArgs: the webhook's flags carry the values.
func checkArgs(t *testing.T, r *rendered, args map[string]string) {
	want := map[string]string{
		"--webhook-port":                 fmt.Sprint(r.integer(t, "ports.webhook")),
		"--metrics-bind-address":         fmt.Sprintf(":%d", r.integer(t, "ports.metrics")),
		"--health-probe-bind-address":    fmt.Sprintf(":%d", r.integer(t, "ports.health")),
		"--no-match-policy":              r.str(t, "noMatchPolicy"),
		"--exempt-namespaces":            strings.Join(exemptNamespaces(t, r), ","),
		"--digest-pinning":               fmt.Sprint(r.boolean(t, "digestPinning")),
		"--webhook-timeout":              fmt.Sprintf("%ds", r.integer(t, "webhook.timeoutSeconds")),
		"--shutdown-delay":               fmt.Sprintf("%ds", r.integer(t, "shutdownDelaySeconds")),
		"--cache-verified-ttl":           r.str(t, "cache.verifiedTTL"),
		"--cache-denied-ttl":             r.str(t, "cache.deniedTTL"),
		"--cache-max-entries":            fmt.Sprint(r.integer(t, "cache.maxEntries")),
		"--max-images-per-request":       fmt.Sprint(r.integer(t, "limits.maxImagesPerRequest")),
		"--max-concurrent-verifications": fmt.Sprint(r.integer(t, "limits.maxConcurrentVerifications")),
		"--registry-max-conns-per-host":  fmt.Sprint(r.integer(t, "limits.registryMaxConnsPerHost")),
		"--zap-log-level":                r.str(t, "log.level"),
		"--zap-encoder":                  r.str(t, "log.encoder"),
	}
	svc := r.fullname(t) + "-webhook"
	if r.boolean(t, "certManager.enabled") {
		want["--cert-management"] = "external"
		for _, f := range []string{"--cert-secret", "--cert-dns-names", "--validating-webhook-configuration", "--mutating-webhook-configuration"} {
			if _, ok := args[f]; ok {
				t.Errorf("%s given with cert-manager", f)
			}
		}
	} else {
		want["--cert-management"] = "builtin"
		want["--cert-secret"] = r.fullname(t) + "-webhook-cert"
		want["--cert-dns-names"] = fmt.Sprintf("%s.%s.svc,%s.%s.svc.cluster.local", svc, r.namespace, svc, r.namespace)
		want["--validating-webhook-configuration"] = r.fullname(t) + "-validating"
		want["--mutating-webhook-configuration"] = ""
		if r.boolean(t, "digestPinning") {
			want["--mutating-webhook-configuration"] = r.fullname(t) + "-mutating"
		}
	}
	for flag, v := range want {
		got, ok := args[flag]
		if !ok || got != v {
			t.Errorf("%s=%q (given: %v), want %q", flag, got, ok, v)
		}
	}
	for _, path := range []string{"cache.verifiedTTL", "cache.deniedTTL"} {
		duration(t, r.str(t, path))
	}
}

// exemptNamespaces is what the chart must exempt: the value plus the release
// namespace, once each, in order.
func exemptNamespaces(t testing.TB, r *rendered) []string {
	t.Helper()
	out := r.strings(t, "exemptNamespaces")
	if !slices.Contains(out, r.namespace) {
		out = append(out, r.namespace)
	}
	return out
}

func serviceAccountName(t testing.TB, r *rendered) string {
	t.Helper()
	if n := r.str(t, "serviceAccount.name"); n != "" {
		return n
	}
	return r.fullname(t)
}

func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// mountedAt is the mount path of the volume named volume in the first container.
func mountedAt(t testing.TB, d *appsv1.Deployment, volume string) string {
	t.Helper()
	found := false
	for _, v := range d.Spec.Template.Spec.Volumes {
		found = found || v.Name == volume
	}
	if !found {
		t.Errorf("no volume %s", volume)
	}
	for _, m := range d.Spec.Template.Spec.Containers[0].VolumeMounts {
		if m.Name == volume {
			return m.MountPath
		}
	}
	return ""
}

func duration(t testing.TB, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Errorf("%q is not a Go duration: %v", s, err)
	}
	return d
}

// certificate is the part of cert-manager's Certificate the tests read.
type certificate struct {
	Spec struct {
		IsCA        bool      `json:"isCA"`
		SecretName  string    `json:"secretName"`
		DNSNames    []string  `json:"dnsNames"`
		IssuerRef   issuerRef `json:"issuerRef"`
		CommonName  string    `json:"commonName"`
		Duration    string    `json:"duration"`
		RenewBefore string    `json:"renewBefore"`
		Usages      []string  `json:"usages"`
		PrivateKey  struct {
			Algorithm      string `json:"algorithm"`
			Size           int    `json:"size"`
			RotationPolicy string `json:"rotationPolicy"`
		} `json:"privateKey"`
	} `json:"spec"`
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
}

type issuerRef struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	Group string `json:"group"`
}

// checkCertificates: with cert-manager, the Secret of the serving
// Certificate is what the webhook reads, for the Service's names.
func checkCertificates(t *testing.T, r *rendered) {
	d := deployment(t, r)
	var certs *corev1.Volume
	for i, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == "certs" {
			certs = &d.Spec.Template.Spec.Volumes[i]
		}
	}
	if certs == nil {
		t.Fatal("no certs volume")
	}
	if !r.boolean(t, "certManager.enabled") {
		if certs.EmptyDir == nil || len(r.ofKind("Certificate")) > 0 {
			t.Errorf("built-in certificates: want an emptyDir the webhook writes and no Certificate; got %+v, %v", certs.VolumeSource, r.names())
		}
		if len(r.ofKind("Secret")) > 0 {
			t.Error("the chart renders a Secret: an upgrade would replace the webhook's CA")
		}
		return
	}
	serving := decode[certificate](t, r.mustFind(t, "Certificate", r.fullname(t)+"-serving"))
	if certs.Secret == nil || certs.Secret.SecretName != serving.Spec.SecretName {
		t.Errorf("the certificate volume %+v is not the serving Certificate's Secret %q", certs.VolumeSource, serving.Spec.SecretName)
	}
	svc := r.fullname(t) + "-webhook"
	for _, name := range []string{svc + "." + r.namespace + ".svc", svc + "." + r.namespace + ".svc.cluster.local"} {
		if !slices.Contains(serving.Spec.DNSNames, name) {
			t.Errorf("serving certificate lacks the Service name %s: %v", name, serving.Spec.DNSNames)
		}
	}
}

// checkOptionalObjects: ServiceMonitor and NetworkPolicy exist when asked
// for, and reach the webhook Pods.
func checkOptionalObjects(t *testing.T, r *rendered) {
	pod := deployment(t, r).Spec.Template
	sm := r.find("ServiceMonitor", r.fullname(t))
	if (sm != nil) != r.boolean(t, "serviceMonitor.enabled") {
		t.Errorf("ServiceMonitor rendered: %v, serviceMonitor.enabled: %v", sm != nil, r.boolean(t, "serviceMonitor.enabled"))
	}
	if sm != nil {
		if sm.GetAPIVersion() != "monitoring.coreos.com/v1" {
			t.Errorf("ServiceMonitor apiVersion %s", sm.GetAPIVersion())
		}
		matchLabels, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
		var metrics []*corev1.Service
		for _, o := range r.ofKind("Service") {
			if labels.SelectorFromSet(matchLabels).Matches(labels.Set(o.GetLabels())) {
				metrics = append(metrics, decode[corev1.Service](t, o))
			}
		}
		if len(metrics) != 1 {
			t.Fatalf("the ServiceMonitor selects %d Services, want the metrics Service", len(metrics))
		}
		endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		port, _, _ := unstructured.NestedString(endpoints[0].(map[string]any), "port")
		ok := false
		for _, p := range metrics[0].Spec.Ports {
			ok = ok || (p.Name == port && p.TargetPort == intstr.FromString("metrics"))
		}
		if !ok || !labels.SelectorFromSet(metrics[0].Spec.Selector).Matches(labels.Set(pod.Labels)) {
			t.Errorf("the ServiceMonitor's port %q does not reach the webhook's metrics port through %s", port, metrics[0].Name)
		}
	}
	npObj := r.find("NetworkPolicy", r.fullname(t))
	if (npObj != nil) != r.boolean(t, "networkPolicy.enabled") {
		t.Errorf("NetworkPolicy rendered: %v, networkPolicy.enabled: %v", npObj != nil, r.boolean(t, "networkPolicy.enabled"))
	}
	if npObj == nil {
		return
	}
	np := decode[networkingv1.NetworkPolicy](t, npObj)
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
		t.Errorf("the NetworkPolicy does not select the webhook Pods: %v", np.Spec.PodSelector)
	}
	from := map[int]int{} // port -> number of peers (0: anyone)
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			from[p.Port.IntValue()] = len(rule.From)
		}
	}
	if n, ok := from[int(r.integer(t, "ports.webhook"))]; !ok || n != 0 {
		t.Errorf("the webhook port must be open to the API server, from anywhere: %+v", np.Spec.Ingress)
	}
	if n := from[int(r.integer(t, "ports.metrics"))]; n != len(r.val(t, "networkPolicy.metricsFrom").([]any)) || n == 0 {
		t.Errorf("the metrics port must be open to networkPolicy.metricsFrom only: %+v", np.Spec.Ingress)
	}
}
