package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/signet-dev/signet/pkg/admission"
	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
	"github.com/signet-dev/signet/test/fixtures"
	"github.com/signet-dev/signet/test/stack"
)

// judgedLabel marks the namespaces this suite's webhook configuration
// applies to, so other tests sharing the stack are never judged.
const judgedLabel = "signet-e2e"

// harness is the running webhook, registered with the stack's API server,
// plus what the tests sign and push.
type harness struct {
	env     *stack.Env
	cs      kubernetes.Interface
	c       client.Client
	root    string
	repo    string // registry/repository prefix owned by this run
	alias   string // KMS alias of the signing key
	exempt  string // a judged-looking namespace listed in --exempt-namespaces
	metrics string // the webhook's /metrics URL
	webhook *fixtures.Webhook
	// configName names this run's webhook configurations
	// (<configName>-validating, <configName>-mutating).
	configName string
	// hooks names the installed validating webhooks by the resource each
	// judges (pods, deployments, clusterimagepolicies, …), read from the
	// configuration the API server has: the suite expects what it will say.
	hooks map[string]string
}

var (
	harnessOnce sync.Once
	shared      *harness
	harnessErr  error
)

// setup starts one webhook for the package (the API server calls it over
// TLS at 127.0.0.1) and tears nothing down between tests: each test makes
// its own namespace and policy names.
func setup(t *testing.T) *harness {
	t.Helper()
	// Outside the Once: a skip (-short) or a missing stack ends this test
	// only, and every later test says the same instead of finding no harness.
	env := stack.Load(t)
	harnessOnce.Do(func() {
		harnessErr = fmt.Errorf("the e2e harness failed to start in an earlier test (see its failure)")
		shared, harnessErr = start(t, env)
	})
	if harnessErr != nil {
		t.Fatal(harnessErr)
	}
	return shared
}

func start(t *testing.T, env *stack.Env) (*harness, error) {
	h := &harness{env: env, exempt: fmt.Sprintf("e2e-exempt-%d", os.Getpid()), configName: fmt.Sprintf("signet-e2e-%d", os.Getpid())}
	var err error
	if h.root, err = filepath.Abs("../.."); err != nil {
		return nil, err
	}
	cfg := env.RESTConfig(t)
	if h.cs, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	if h.c, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return nil, err
	}
	if target.cluster {
		// The Helm release installed the CRD, the webhook and its
		// configurations; the suite only uses them.
		h.exempt = target.exempt
	} else if err := h.startLocal(t); err != nil {
		return nil, err
	}

	if h.hooks, err = installedHooks(context.Background(), h.cs, h.configName+"-validating"); err != nil {
		return nil, err
	}

	// A KMS key with an alias, and the repository this run pushes to.
	h.alias = fmt.Sprintf("alias/signet-e2e-%d", os.Getpid())
	if err := fixtures.CreateKMSAlias(context.Background(), h.alias); err != nil {
		return nil, err
	}
	h.repo = fmt.Sprintf("%s/e2e-%d", env.Registry, os.Getpid())
	return h, nil
}

// startLocal builds the webhook, runs it serving TLS on 127.0.0.1 and
// registers it with the local stack's API server.
func (h *harness) startLocal(t *testing.T) error {
	h.env.InstallCRD(t)
	bin, err := fixtures.WebhookBinary()
	if err != nil {
		return err
	}
	h.webhook, err = fixtures.StartWebhook(bin, h.env.Kubeconfig, filepath.Join(h.env.Dir, "logs", "e2e-webhook.log"),
		"--no-match-policy=allow",
		"--exempt-namespaces=kube-system,"+h.exempt,
		"--webhook-timeout=10s",
		"--mutating-webhook-configuration="+h.configName+"-mutating",
	)
	if err != nil {
		return err
	}
	h.metrics = h.webhook.MetricsURL
	return h.register(h.webhook.Port, h.webhook.CABundle)
}

// register points the API server at the webhook with the configurations
// pkg/admission generates (the ones config/ and the chart install), in
// judged namespaces only: the validating webhooks, the digest-pinning
// (mutating) webhooks, and the ClusterImagePolicy webhook for policies
// labelled judgedLabel=true (policies are cluster-scoped, so an
// objectSelector keeps other suites' policies away from this webhook).
func (h *harness) register(port int, caPEM []byte) error {
	judged := &metav1.LabelSelector{MatchLabels: map[string]string{judgedLabel: "true"}}
	vwc, mwc := admission.WebhookConfigurations(admission.ConfigurationOptions{
		Name: h.configName,
		Client: func(path string) admissionregistrationv1.WebhookClientConfig {
			url := fmt.Sprintf("https://127.0.0.1:%d%s", port, path)
			return admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caPEM}
		},
		NamespaceSelector: judged,
		PolicySelector:    judged,
		TimeoutSeconds:    10,
	})
	ctx := context.Background()
	if _, err := h.cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, vwc, metav1.CreateOptions{}); err != nil {
		return err
	}
	_, err := h.cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mwc, metav1.CreateOptions{})
	return err
}

// installedHooks reads the validating webhooks that judge each resource:
// locally from the configuration the suite registered (local, by name); in
// a cluster from those the Helm release installed (labelled with its
// instance name).
func installedHooks(ctx context.Context, cs kubernetes.Interface, local string) (map[string]string, error) {
	vwcs := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	var configs []admissionregistrationv1.ValidatingWebhookConfiguration
	if target.cluster {
		l, err := vwcs.List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + target.release})
		if err != nil {
			return nil, err
		}
		configs = l.Items
	} else {
		c, err := vwcs.Get(ctx, local, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		configs = append(configs, *c)
	}
	hooks := map[string]string{}
	for _, c := range configs {
		for _, w := range c.Webhooks {
			for _, r := range w.Rules {
				for _, res := range r.Resources {
					if strings.Contains(res, "/") {
						continue // a subresource is judged by its resource's webhook
					}
					if prev, ok := hooks[res]; ok && prev != w.Name {
						return nil, fmt.Errorf("%s: both %q and %q judge %s", c.Name, prev, w.Name, res)
					}
					hooks[res] = w.Name
				}
			}
		}
	}
	if len(hooks) == 0 {
		return nil, fmt.Errorf("no validating webhook is installed (cluster target: release %q; local: %s)", target.release, local)
	}
	return hooks, nil
}

// namespace makes a judged namespace with extra labels, removed after the test.
func (h *harness) namespace(t *testing.T, name string, labels map[string]string) string {
	t.Helper()
	l := map[string]string{judgedLabel: "true"}
	for k, v := range labels {
		l[k] = v
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}
	if name == "" {
		ns.GenerateName = "e2e-"
	}
	got, err := h.cs.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.cs.CoreV1().Namespaces().Delete(context.Background(), got.Name, metav1.DeleteOptions{}) })
	return got.Name
}

// push writes a random image under this run's repository and returns its
// tag reference and digest.
func (h *harness) push(t *testing.T, repoTag string) (string, string) {
	t.Helper()
	ref := h.repo + "/" + repoTag
	digest, err := fixtures.PushRandom(ref)
	if err != nil {
		t.Fatal(err)
	}
	return ref, digest
}

// sign signs ref@digest with the real cosign CLI through the KMS test server.
func (h *harness) sign(t *testing.T, ref, digest string) {
	t.Helper()
	repo := ref[:strings.LastIndex(ref, ":")]
	if err := fixtures.CosignSign(filepath.Join(h.root, "bin", "cosign"), h.alias, repo+"@"+digest); err != nil {
		t.Fatal(err)
	}
}

// policy applies a ClusterImagePolicy and waits until the webhook's store
// reports it compiled at this generation.
func (h *harness) policy(t *testing.T, p *v1alpha1.ClusterImagePolicy, wantReady metav1.ConditionStatus) {
	t.Helper()
	ctx := context.Background()
	if err := h.c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.c.Delete(context.Background(), p) })
	h.waitPolicy(t, p.Name, wantReady)
}

func (h *harness) waitPolicy(t *testing.T, name string, want metav1.ConditionStatus) *v1alpha1.ClusterImagePolicy {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := &v1alpha1.ClusterImagePolicy{}
		if err := h.c.Get(context.Background(), client.ObjectKey{Name: name}, got); err != nil {
			t.Fatal(err)
		}
		for _, c := range got.Status.Conditions {
			if c.Type == v1alpha1.ConditionReady && c.ObservedGeneration == got.Generation && c.Status == want {
				return got
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("policy %s: Ready did not become %s: %+v", name, want, got.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (h *harness) kmsPolicy(name, glob, alias string, mode v1alpha1.PolicyMode) *v1alpha1.ClusterImagePolicy {
	return &v1alpha1.ClusterImagePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.ClusterImagePolicySpec{
			Mode:        mode,
			Images:      []v1alpha1.ImageGlob{{Glob: glob}},
			Authorities: []v1alpha1.Authority{{Name: "ci-kms", Key: &v1alpha1.KeyAuthority{KMS: "awskms:///" + alias}}},
		},
	}
}

type warningCollector func(string)

func (w warningCollector) HandleWarningHeader(code int, agent string, text string) {
	if code == 299 {
		w(text)
	}
}

func mustClientset(t *testing.T, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}
