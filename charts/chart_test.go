package charts

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
)

// chartCase is one set of values the chart is rendered with. Every case is
// held to the invariants of checkRelease; check adds what the case is about.
type chartCase struct {
	name      string
	release   string
	namespace string
	values    string
	check     func(t *testing.T, r *rendered)
}

var chartCases = []chartCase{
	{
		name: "defaults", release: "signet", namespace: "signet-system",
		check: func(t *testing.T, r *rendered) {
			// The names the webhook's defaults and config/ use.
			for kind, name := range map[string]string{
				"Service": "signet-webhook", "ValidatingWebhookConfiguration": "signet-validating",
				"MutatingWebhookConfiguration": "signet-mutating", "Deployment": "signet",
			} {
				r.mustFind(t, kind, name)
			}
			args := containerArgs(t, deployment(t, r).Spec.Template.Spec.Containers[0])
			for flag, want := range map[string]string{
				"--cert-secret": "signet-webhook-cert", "--no-match-policy": "warn", "--digest-pinning": "true",
				"--exempt-namespaces": "kube-system,kube-public,kube-node-lease,signet-system",
				"--webhook-timeout":   "10s", "--shutdown-delay": "15s",
			} {
				if args[flag] != want {
					t.Errorf("%s=%q, want %q", flag, args[flag], want)
				}
			}
			spec := deployment(t, r).Spec.Template.Spec
			if spec.PriorityClassName != "system-cluster-critical" {
				t.Errorf("priorityClassName %q, want system-cluster-critical", spec.PriorityClassName)
			}
			if spec.HostNetwork {
				t.Error("hostNetwork is on by default")
			}
			want := map[string]corev1.UnsatisfiableConstraintAction{
				"kubernetes.io/hostname": corev1.DoNotSchedule, "topology.kubernetes.io/zone": corev1.ScheduleAnyway,
			}
			got := map[string]corev1.UnsatisfiableConstraintAction{}
			for _, c := range spec.TopologySpreadConstraints {
				got[c.TopologyKey] = c.WhenUnsatisfiable
				if c.MaxSkew != 1 || !slices.Contains(c.MatchLabelKeys, "pod-template-hash") {
					t.Errorf("spread over %s: maxSkew %d, matchLabelKeys %v; want 1 and pod-template-hash", c.TopologyKey, c.MaxSkew, c.MatchLabelKeys)
				}
			}
			if !cmp.Equal(got, want) {
				t.Errorf("topology spread %v, want %v", got, want)
			}
			if r.find("Role", "signet-cert") == nil {
				t.Error("no Role for the certificate Secret")
			}
			for _, kind := range []string{"ServiceMonitor", "NetworkPolicy", "ConfigMap", "Certificate", "Issuer"} {
				if len(r.ofKind(kind)) > 0 {
					t.Errorf("the defaults render a %s", kind)
				}
			}
			if vwc := r.mustFind(t, "ValidatingWebhookConfiguration", "signet-validating"); len(vwc.GetAnnotations()) > 0 {
				t.Errorf("built-in certificates, yet the configuration has annotations %v", vwc.GetAnnotations())
			}
		},
	},
	{
		name: "cert-manager", release: "signet", namespace: "signet-system",
		values: "certManager: {enabled: true}",
		check: func(t *testing.T, r *rendered) {
			for _, o := range r.ofKind("Role") {
				for _, rule := range decode[rbacv1.Role](t, o).Rules {
					if slices.Contains(rule.Resources, "secrets") {
						t.Errorf("cert-manager provides the Secret, yet Role %s grants Secret access: %+v", o.GetName(), rule)
					}
				}
			}
			serving := decode[certificate](t, r.mustFind(t, "Certificate", "signet-serving"))
			ca := decode[certificate](t, r.mustFind(t, "Certificate", "signet-ca"))
			if !ca.Spec.IsCA || ca.Spec.IssuerRef.Name != "signet-selfsigned" {
				t.Errorf("CA certificate: isCA %v, issuer %q; want a CA from signet-selfsigned", ca.Spec.IsCA, ca.Spec.IssuerRef.Name)
			}
			selfSigned := r.mustFind(t, "Issuer", "signet-selfsigned")
			if _, ok, _ := unstructured.NestedMap(selfSigned.Object, "spec", "selfSigned"); !ok {
				t.Error("Issuer signet-selfsigned is not self-signed")
			}
			caIssuer := r.mustFind(t, "Issuer", "signet-ca")
			if s, _, _ := unstructured.NestedString(caIssuer.Object, "spec", "ca", "secretName"); s != ca.Spec.SecretName {
				t.Errorf("CA Issuer uses Secret %q, the CA certificate is in %q", s, ca.Spec.SecretName)
			}
			if serving.Spec.IssuerRef.Name != "signet-ca" || serving.Spec.IssuerRef.Kind != "Issuer" {
				t.Errorf("serving certificate issued by %+v, want Issuer signet-ca", serving.Spec.IssuerRef)
			}
			if want := []string{"signet-webhook.signet-system.svc", "signet-webhook.signet-system.svc.cluster.local"}; !slices.Equal(serving.Spec.DNSNames, want) {
				t.Errorf("serving certificate names %v, want %v", serving.Spec.DNSNames, want)
			}
		},
	},
	{
		name: "cert-manager with an existing issuer", release: "signet", namespace: "signet-system",
		values: "certManager: {enabled: true, issuerRef: {name: corp-ca, kind: ClusterIssuer, group: cert-manager.io}}",
		check: func(t *testing.T, r *rendered) {
			if len(r.ofKind("Issuer")) > 0 || r.find("Certificate", "signet-ca") != nil {
				t.Errorf("an issuer is given, yet the chart makes its own CA: %v", r.names())
			}
			serving := decode[certificate](t, r.mustFind(t, "Certificate", "signet-serving"))
			if got := serving.Spec.IssuerRef; got != (issuerRef{Name: "corp-ca", Kind: "ClusterIssuer", Group: "cert-manager.io"}) {
				t.Errorf("serving certificate issuer %+v, want ClusterIssuer corp-ca", got)
			}
		},
	},
	{
		name: "digest pinning off", release: "signet", namespace: "signet-system",
		values: "digestPinning: false",
		check: func(t *testing.T, r *rendered) {
			if len(r.ofKind("MutatingWebhookConfiguration")) > 0 {
				t.Error("digest pinning is off, yet a MutatingWebhookConfiguration is rendered")
			}
		},
	},
	{
		name: "host network", release: "signet", namespace: "signet-system",
		values: "hostNetwork: true\nports: {webhook: 10443, metrics: 10080, health: 10081}",
		check: func(t *testing.T, r *rendered) {
			spec := deployment(t, r).Spec.Template.Spec
			if !spec.HostNetwork || spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
				t.Errorf("hostNetwork %v, dnsPolicy %q; want true and ClusterFirstWithHostNet", spec.HostNetwork, spec.DNSPolicy)
			}
			args := containerArgs(t, spec.Containers[0])
			if args["--webhook-port"] != "10443" || args["--metrics-bind-address"] != ":10080" || args["--health-probe-bind-address"] != ":10081" {
				t.Errorf("ports in args: %v", args)
			}
			if job := hookObject(t, r, "Job"); decode[batchv1.Job](t, job).Spec.Template.Spec.HostNetwork {
				t.Error("the uninstall Job needs no host network: it only calls the API server")
			}
		},
	},
	{
		name: "ServiceMonitor and NetworkPolicy", release: "signet", namespace: "signet-system",
		values: `
serviceMonitor: {enabled: true, labels: {release: kube-prometheus-stack}}
networkPolicy:
  enabled: true
  metricsFrom:
  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}
`,
		check: func(t *testing.T, r *rendered) {
			sm := r.mustFind(t, "ServiceMonitor", "signet")
			if sm.GetLabels()["release"] != "kube-prometheus-stack" {
				t.Errorf("ServiceMonitor labels %v lack serviceMonitor.labels", sm.GetLabels())
			}
		},
	},
	{
		name: "CRD not installed", release: "signet", namespace: "signet-system",
		values: "crds: {install: false}",
	},
	{
		name: "CRD not kept", release: "signet", namespace: "signet-system",
		values: "crds: {keep: false}",
	},
	{
		name: "OpenReports CRD installed", release: "signet", namespace: "signet-system",
		values: "crds: {openReports: true}",
	},
	{
		name: "OpenReports CRD installed, not kept", release: "signet", namespace: "signet-system",
		values: "crds: {openReports: true, keep: false}",
	},
	{
		name: "custom exempt namespaces", release: "prod", namespace: "security",
		values: `
exemptNamespaces: [kube-system, istio-system]
webhook:
  namespaceSelector:
    matchLabels: {signet.dev/enforce: "true"}
`,
		check: func(t *testing.T, r *rendered) {
			// A release name without "signet" gets it appended.
			r.mustFind(t, "Service", "prod-signet-webhook")
			args := containerArgs(t, deployment(t, r).Spec.Template.Spec.Containers[0])
			if got := args["--exempt-namespaces"]; got != "kube-system,istio-system,security" {
				t.Errorf("--exempt-namespaces=%s, want kube-system,istio-system,security", got)
			}
			// Only namespaces that opted in are judged.
			vwc := decode[admissionregistrationv1.ValidatingWebhookConfiguration](t, r.mustFind(t, "ValidatingWebhookConfiguration", "prod-signet-validating"))
			for _, w := range vwc.Webhooks {
				if w.NamespaceSelector == nil {
					continue
				}
				sel, err := metav1.LabelSelectorAsSelector(w.NamespaceSelector)
				if err != nil {
					t.Fatal(err)
				}
				if sel.Matches(labels.Set{"kubernetes.io/metadata.name": "default"}) ||
					!sel.Matches(labels.Set{"kubernetes.io/metadata.name": "default", "signet.dev/enforce": "true"}) {
					t.Errorf("%s: selector %s does not judge exactly the opted-in namespaces", w.Name, sel)
				}
			}
		},
	},
	{
		name: "IRSA role", release: "signet", namespace: "signet-system",
		values: `serviceAccount: {roleArn: "arn:aws:iam::123456789012:role/signet", annotations: {team: security}}`,
		check: func(t *testing.T, r *rendered) {
			sa := r.mustFind(t, "ServiceAccount", "signet")
			want := map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/signet", "team": "security"}
			if !cmp.Equal(sa.GetAnnotations(), want) {
				t.Errorf("ServiceAccount annotations %v, want %v", sa.GetAnnotations(), want)
			}
		},
	},
	{
		name: "tuned", release: "edge-signet", namespace: "edge",
		values: `
replicaCount: 3
image: {digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
webhook: {failurePolicy: Ignore, timeoutSeconds: 20, verifyTimeout: 15s}
shutdownDelaySeconds: 10
terminationGracePeriodSeconds: 45
noMatchPolicy: deny
cache: {verifiedTTL: 1h, deniedTTL: 1m, maxEntries: 5000}
log: {level: debug, encoder: console}
aws:
  region: eu-west-1
  signerRoots:
    pem: |
      -----BEGIN CERTIFICATE-----
      MIIB
      -----END CERTIFICATE-----
certificates: {caValidity: 8760h, certValidity: 720h}
priorityClassName: ""
podDisruptionBudget: {maxUnavailable: 2}
extraArgs: ["--pprof-bind-address=127.0.0.1:6060"]
extraEnv: [{name: HTTPS_PROXY, value: "http://proxy:3128"}]
uninstallHook: {enabled: false}
`,
		check: func(t *testing.T, r *rendered) {
			c := deployment(t, r).Spec.Template.Spec.Containers[0]
			if c.Image != "ghcr.io/signet-dev/signet-webhook@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" {
				t.Errorf("image %q: the digest must replace the tag", c.Image)
			}
			args := containerArgs(t, c)
			for flag, want := range map[string]string{
				"--verify-timeout": "15s", "--pprof-bind-address": "127.0.0.1:6060", "--ca-validity": "8760h", "--cert-validity": "720h",
				"--aws-signer-roots": "/etc/signet/aws-signer-roots/roots.pem",
			} {
				if args[flag] != want {
					t.Errorf("%s=%q, want %q", flag, args[flag], want)
				}
			}
			if env := envValue(c, "HTTPS_PROXY"); env != "http://proxy:3128" {
				t.Errorf("extraEnv HTTPS_PROXY=%q", env)
			}
			cm := decode[corev1.ConfigMap](t, r.mustFind(t, "ConfigMap", "edge-signet-aws-signer-roots"))
			if !strings.HasPrefix(cm.Data["roots.pem"], "-----BEGIN CERTIFICATE-----\n") {
				t.Errorf("roots ConfigMap holds %q", cm.Data["roots.pem"])
			}
			if mountedAt(t, deployment(t, r), "aws-signer-roots") != "/etc/signet/aws-signer-roots" {
				t.Error("the roots ConfigMap is not mounted where --aws-signer-roots points")
			}
			if deployment(t, r).Spec.Template.Annotations["checksum/aws-signer-roots"] == "" {
				t.Error("changing the roots would not restart the Pods: no checksum annotation")
			}
		},
	},
}

// TestChartRenders renders every case and holds it to the invariants.
func TestChartRenders(t *testing.T) {
	for _, tc := range chartCases {
		t.Run(tc.name, func(t *testing.T) {
			r := render(t, tc.release, tc.namespace, tc.values)
			checkRelease(t, r)
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

// TestChartRendersRepositoryValues: values files the repository installs
// the chart with (hack/kind/values.yaml for make e2e-kind) are accepted and
// hold to the same invariants.
func TestChartRendersRepositoryValues(t *testing.T) {
	files, err := filepath.Glob("../hack/*/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			checkRelease(t, render(t, "signet", "signet-system", string(raw)))
		})
	}
}

// checkRelease asserts what must hold for any values.
func checkRelease(t *testing.T, r *rendered) {
	checkDeployment(t, r)
	checkWebhookConfigurations(t, r)
	checkCRD(t, r)
	checkOpenReportsCRD(t, r)
	checkRBAC(t, r)
	checkCertificates(t, r)
	checkUninstallHook(t, r)
	checkOptionalObjects(t, r)
	for _, o := range r.objects {
		if ns := o.GetNamespace(); ns != "" && ns != r.namespace {
			t.Errorf("%s %s is in namespace %q, not the release's", o.GetKind(), o.GetName(), ns)
		}
	}
}
