package charts

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/signet-dev/signet/test/fixtures"
	"github.com/signet-dev/signet/test/stack"
)

// webhookBinary is cmd/webhook, built once per test run: the chart is
// tested against the binary its image runs.
func webhookBinary(t *testing.T) string {
	t.Helper()
	bin, err := fixtures.WebhookBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestWebhookAcceptsChartFlags runs the webhook binary with the arguments
// the chart renders: they must parse and pass its Options.Validate, so the
// first thing it fails on is the (missing) cluster, not a flag.
func TestWebhookAcceptsChartFlags(t *testing.T) {
	bin := webhookBinary(t)
	for _, tc := range []struct{ name, values string }{
		{"defaults", ""},
		{"cert-manager", "certManager: {enabled: true}"},
		{"digest pinning off", "digestPinning: false"},
		{"tuned", `
webhook: {timeoutSeconds: 30, verifyTimeout: 25s}
shutdownDelaySeconds: 5
terminationGracePeriodSeconds: 60
noMatchPolicy: deny
cache: {verifiedTTL: 1h30m, deniedTTL: 5s, maxEntries: 1}
log: {level: debug, encoder: console}
certificates: {caValidity: 87600h, certValidity: 2160h}
extraArgs: ["--pprof-bind-address=127.0.0.1:6060"]
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := render(t, "signet", "signet-system", tc.values)
			c := deployment(t, r).Spec.Template.Spec.Containers[0]
			kubeconfig := filepath.Join(t.TempDir(), "no-kubeconfig")
			cmd := exec.Command(bin, append(c.Args, "--kubeconfig="+kubeconfig)...)
			cmd.Env = append(os.Environ(), "POD_NAMESPACE="+r.namespace)
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), kubeconfig) {
				t.Errorf("webhook %s\nexited with %v, want it past its flags, failing on the missing kubeconfig:\n%s",
					strings.Join(c.Args, " "), err, out)
			}
		})
	}
}

// impersonating writes a kubeconfig for the stack that acts as the
// ServiceAccount ns/name, so the chart's RBAC is what the binary gets.
func impersonating(t *testing.T, env *stack.Env, ns, name string) string {
	t.Helper()
	kc, err := clientcmd.LoadFromFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, auth := range kc.AuthInfos {
		auth.Impersonate = "system:serviceaccount:" + ns + ":" + name
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkWebhookRunsWithChartRBAC runs the webhook binary with the
// Deployment's arguments, as the chart's ServiceAccount, until it is ready:
// the chart's ClusterRole and Role are enough for the policy store and the
// built-in certificate management (Secret created, CA injected). The two
// webhook configurations it injects into carry one webhook each that matches
// no request, so nothing running on the stack ever calls them; the uninstall
// check then deletes them.
func checkWebhookRunsWithChartRBAC(t *testing.T, env *stack.Env, c client.Client, r *rendered) {
	t.Helper()
	ctx := t.Context()
	fullname := r.fullname(t)
	ignore, none := admissionregistrationv1.Ignore, admissionregistrationv1.SideEffectClassNone
	never := []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{"never.signet.dev"}, APIVersions: []string{"v1"}, Resources: []string{"nothing"}},
	}}
	path := "/never"
	clientConfig := admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
		Namespace: r.namespace, Name: fullname + "-webhook", Path: &path}}
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Labels: map[string]string{"signet-chart-test": r.namespace}}
	}
	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: meta(fullname + "-validating"),
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{Name: "never.chart-test.signet.dev", ClientConfig: clientConfig, Rules: never,
			FailurePolicy: &ignore, SideEffects: &none, AdmissionReviewVersions: []string{"v1"}}}}
	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: meta(fullname + "-mutating"),
		Webhooks: []admissionregistrationv1.MutatingWebhook{{Name: "never.chart-test.signet.dev", ClientConfig: clientConfig, Rules: never,
			FailurePolicy: &ignore, SideEffects: &none, AdmissionReviewVersions: []string{"v1"}}}}
	for _, o := range []client.Object{validating, mutating} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := c.Delete(context.Background(), o); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("cleaning up %s: %v", o.GetName(), err)
			}
		})
	}

	ports, err := fixtures.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	pod := deployment(t, r).Spec.Template.Spec
	var args []string
	for _, a := range pod.Containers[0].Args {
		switch flag, _, _ := strings.Cut(a, "="); flag {
		case "--webhook-port", "--metrics-bind-address", "--health-probe-bind-address", "--cert-dir":
			continue // local ports and folder instead of the Pod's
		}
		args = append(args, a)
	}
	args = append(args, fmt.Sprintf("--webhook-port=%d", ports[0]),
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", ports[1]),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", ports[2]),
		"--cert-dir="+t.TempDir(), "--kubeconfig="+impersonating(t, env, r.namespace, pod.ServiceAccountName))
	logPath := filepath.Join(t.TempDir(), "webhook.log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(webhookBinary(t), args...)
	cmd.Env = append(os.Environ(), "POD_NAMESPACE="+r.namespace)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
	}()
	if err := fixtures.WaitOK(fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[2])); err != nil {
		out, _ := os.ReadFile(logPath)
		t.Fatalf("the webhook, run as the chart's ServiceAccount, did not become ready: %v\n%s", err, out)
	}

	var secret corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: r.namespace, Name: fullname + "-webhook-cert"}, &secret); err != nil {
		t.Fatalf("the certificate Secret: %v", err)
	}
	for _, k := range []string{"ca.crt", "tls.crt", "tls.key"} {
		if len(secret.Data[k]) == 0 {
			t.Errorf("the certificate Secret has no %s", k)
		}
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(validating), validating); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(mutating), mutating); err != nil {
		t.Fatal(err)
	}
	if len(validating.Webhooks[0].ClientConfig.CABundle) == 0 || len(mutating.Webhooks[0].ClientConfig.CABundle) == 0 {
		t.Errorf("the CA bundle was not injected into both configurations")
	}
}

// checkUninstallJob runs the uninstall hook's command as the hook's
// ServiceAccount (impersonated, with the RBAC applyRelease created): it
// deletes the release's two webhook configurations, which takes the
// certificate Secret with them, and may delete no other configuration.
func checkUninstallJob(t *testing.T, env *stack.Env, c client.Client, r *rendered) {
	t.Helper()
	ctx := t.Context()
	job := decode[batchv1.Job](t, hookObject(t, r, "Job"))
	fullname := r.fullname(t)
	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: fullname + "-validating"}}
	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: fullname + "-mutating"}}
	other := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: fullname + "-other"}}
	if err := c.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), other) })
	kubeconfig := impersonating(t, env, r.namespace, job.Spec.Template.Spec.ServiceAccountName)
	run := func(args ...string) (string, error) {
		out, err := exec.Command(webhookBinary(t), append(args, "--kubeconfig="+kubeconfig)...).CombinedOutput()
		return string(out), err
	}

	args := job.Spec.Template.Spec.Containers[0].Args
	if out, err := run(args...); err != nil {
		t.Fatalf("the uninstall hook's command %v failed as its ServiceAccount: %v\n%s", args, err, out)
	}
	for _, o := range []client.Object{validating, mutating} {
		if err := c.Get(ctx, client.ObjectKeyFromObject(o), o); !apierrors.IsNotFound(err) {
			t.Errorf("after the uninstall hook, %s still exists (%v)", o.GetName(), err)
		}
	}
	// Running it again (a retried Job) succeeds: nothing left to delete.
	if out, err := run(args...); err != nil {
		t.Errorf("a second run of the uninstall hook failed: %v\n%s", err, out)
	}
	out, err := run("uninstall", "--validating-webhook-configuration="+other.Name, "--mutating-webhook-configuration=")
	if err == nil || !strings.Contains(out, "forbidden") {
		t.Errorf("the uninstall hook's ServiceAccount deleted %s, which is not the release's: %v\n%s", other.Name, err, out)
	}
	// The garbage collector removes the certificate Secret the validating
	// configuration owned: uninstalling leaves no CA behind.
	secret := client.ObjectKey{Namespace: r.namespace, Name: fullname + "-webhook-cert"}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.Get(ctx, secret, &corev1.Secret{})
		if apierrors.IsNotFound(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("30s after the uninstall hook, the certificate Secret is still there (%v)", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
