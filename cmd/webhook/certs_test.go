package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/signet-dev/signet/pkg/admission"
	"github.com/signet-dev/signet/test/fixtures"
	"github.com/signet-dev/signet/test/stack"
)

// webhookBinary is this command, built once per test run.
func webhookBinary(t *testing.T) string {
	t.Helper()
	bin, err := fixtures.WebhookBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// replica is one webhook process with built-in certificates.
type replica struct {
	cmd   *exec.Cmd
	port  int
	ready string
	logs  *lockedBuffer
}

// startReplica runs a replica serving on port (0: any free port).
func startReplica(t *testing.T, kubeconfig string, port int, flags ...string) *replica {
	t.Helper()
	ports, err := fixtures.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	if port != 0 {
		ports[0] = port
	}
	r := &replica{port: ports[0], ready: fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[2]), logs: &lockedBuffer{}}
	r.cmd = exec.Command(webhookBinary(t), append([]string{
		"--kubeconfig=" + kubeconfig,
		fmt.Sprintf("--webhook-port=%d", ports[0]),
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", ports[1]),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", ports[2]),
	}, flags...)...)
	r.cmd.Stdout, r.cmd.Stderr = r.logs, r.logs
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.stop)
	if err := fixtures.WaitOK(r.ready); err != nil {
		t.Fatalf("replica on port %d not ready: %v\n%s", r.port, err, r.logs)
	}
	return r
}

func (r *replica) stop() {
	_ = r.cmd.Process.Kill()
	_, _ = r.cmd.Process.Wait()
}

// servedCert is the leaf certificate the replica presents, verified against
// pool for the host the API server dials.
func (r *replica) servedCert(pool *x509.CertPool) (*x509.Certificate, error) {
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.port), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// TestBuiltinCertificates runs two replicas with built-in certificate
// management against the real API server. They must agree on one CA in one
// Secret, inject it into both webhook configurations, be callable by the API
// server, keep the CA across a restart, rotate without a single failed
// admission, and leave nothing behind after `webhook uninstall`.
func TestBuiltinCertificates(t *testing.T) {
	env := stack.Load(t)
	env.InstallCRD(t)
	cfg := env.RESTConfig(t)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	id := rand.String(6)
	ns, judged := "signet-certs-"+id, "signet-certs-judged-"+id
	vwcName, mwcName, secretName := "signet-certs-"+id, "signet-certs-pin-"+id, "webhook-cert"
	for _, n := range []string{ns, judged} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: n, Labels: map[string]string{"signet-certs-test": id}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, vwcName, metav1.DeleteOptions{})
		_ = cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, mwcName, metav1.DeleteOptions{})
		for _, n := range []string{ns, judged} {
			_ = cs.CoreV1().Namespaces().Delete(ctx, n, metav1.DeleteOptions{})
		}
	})
	replicaA := createConfigurations(t, cs, id, judged, vwcName, mwcName)
	flags := []string{"--namespace=" + ns, "--cert-secret=" + secretName, "--cert-dns-names=127.0.0.1",
		"--validating-webhook-configuration=" + vwcName, "--mutating-webhook-configuration=" + mwcName,
		"--ca-validity=45s", "--cert-validity=30s"}
	a := startReplica(t, env.Kubeconfig, replicaA, flags...)
	b := startReplica(t, env.Kubeconfig, 0, flags...)

	secret := func() *corev1.Secret {
		t.Helper()
		s, err := cs.CoreV1().Secrets(ns).Get(ctx, secretName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	first := secret()
	cas := certsIn(t, first.Data["ca.crt"])
	if len(cas) != 1 {
		t.Fatalf("two replicas starting together made %d CAs, want 1", len(cas))
	}
	if refs := first.OwnerReferences; len(refs) != 1 || refs[0].Kind != "ValidatingWebhookConfiguration" || refs[0].Name != vwcName {
		t.Fatalf("Secret owner references = %+v, want the validating configuration", refs)
	}
	assertInjected(t, cs, vwcName, mwcName, first.Data["ca.crt"])
	for _, r := range []*replica{a, b} {
		if _, err := r.servedCert(pool(first.Data["ca.crt"])); err != nil {
			t.Fatalf("replica on %d does not serve a certificate from the Secret's CA: %v", r.port, err)
		}
	}

	// The API server calls the webhook with the injected bundle: the
	// admission carries Signet's no-match warning (failurePolicy is Fail, so
	// a TLS failure would refuse the Pod instead).
	admit := podCreator(t, cfg, judged)
	if err := admit(); err != nil {
		t.Fatalf("API server could not call the webhook with the injected CA: %v", err)
	}

	// A restart (a rolling upgrade) keeps the CA.
	b.stop()
	b = startReplica(t, env.Kubeconfig, 0, flags...)
	if got := secret().Data["ca.crt"]; !bytes.Equal(got, first.Data["ca.crt"]) {
		t.Fatal("restarting a replica replaced the CA")
	}

	// Admissions keep flowing while the CA rotates (renewed when 15 of its
	// 45 seconds remain): not one may fail.
	var failures, successes atomic.Int64
	var lastFailure atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if err := admit(); err != nil {
				failures.Add(1)
				lastFailure.Store(err.Error())
			} else {
				successes.Add(1)
			}
		}
	}()
	oldCA := cas[0]
	var rotated *corev1.Secret
	deadline := time.Now().Add(90 * time.Second)
	for rotated == nil && time.Now().Before(deadline) {
		if s := secret(); !certsIn(t, s.Data["ca.crt"])[0].Equal(oldCA) {
			rotated = s
		} else {
			time.Sleep(500 * time.Millisecond)
		}
	}
	if rotated == nil {
		t.Fatal("the CA was not renewed within 90s")
	}
	bundle := certsIn(t, rotated.Data["ca.crt"])
	if len(bundle) != 2 || !bundle[1].Equal(oldCA) {
		t.Fatalf("after rotation the bundle has %d CAs; want the new one first and the old one still trusted", len(bundle))
	}
	newCA := bundle[0]
	// Every replica moves to a certificate signed by the new CA.
	for _, r := range []*replica{a, b} {
		var leaf *x509.Certificate
		for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(300 * time.Millisecond) {
			if c, err := r.servedCert(pool(rotated.Data["ca.crt"])); err == nil && c.CheckSignatureFrom(newCA) == nil {
				leaf = c
				break
			}
		}
		if leaf == nil {
			t.Fatalf("replica on %d still serves a certificate from the old CA\n%s", r.port, r.logs)
		}
	}
	// Admissions against the new certificate: wait for five more to succeed
	// (or any to fail) rather than for a fixed time.
	served := successes.Load()
	for end := time.Now().Add(30 * time.Second); successes.Load() < served+5 && failures.Load() == 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("no admissions against the new certificate within 30s")
		}
	}
	close(stop)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d admissions failed during the CA rotation; last: %v", n, lastFailure.Load())
	}
	if n := successes.Load(); n < 20 {
		t.Fatalf("only %d admissions ran during the rotation; the check proves nothing", n)
	}
	t.Logf("%d admissions during the CA rotation, none failed", successes.Load())
	if err := admit(); err != nil {
		t.Fatalf("API server cannot call the webhook after the rotation: %v", err)
	}

	// Uninstall: the configurations go, and the garbage collector takes the
	// Secret with them.
	out, err := exec.Command(webhookBinary(t), "uninstall", "--kubeconfig="+env.Kubeconfig,
		"--validating-webhook-configuration="+vwcName, "--mutating-webhook-configuration="+mwcName).CombinedOutput()
	if err != nil {
		t.Fatalf("webhook uninstall: %v\n%s", err, out)
	}
	want := fmt.Sprintf("ValidatingWebhookConfiguration %s: deleted\nMutatingWebhookConfiguration %s: deleted\n", vwcName, mwcName)
	if string(out) != want {
		t.Fatalf("webhook uninstall printed %q, want %q", out, want)
	}
	a.stop()
	b.stop()
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		_, err := cs.CoreV1().Secrets(ns).Get(ctx, secretName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("certificate Secret still present 30s after its configuration was deleted (err %v)", err)
		}
	}
}

// createConfigurations registers a validating and a mutating configuration
// without a caBundle, judging only the test's labelled namespace, pointing at
// a port reserved for the first replica.
func createConfigurations(t *testing.T, cs kubernetes.Interface, id, judged, vwcName, mwcName string) int {
	t.Helper()
	ports, err := fixtures.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	url := func(path string) *string { s := fmt.Sprintf("https://127.0.0.1:%d%s", ports[0], path); return &s }
	fail, none := admissionregistrationv1.Fail, admissionregistrationv1.SideEffectClassNone
	timeout := int32(10)
	selector := &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": judged}}
	rules := []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
	}}
	ctx := context.Background()
	if _, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: vwcName},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "pods.certs-" + id + ".signet.dev", ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: url(admission.MustKind("pods").ValidatePath())},
			Rules: rules, FailurePolicy: &fail, SideEffects: &none, TimeoutSeconds: &timeout,
			NamespaceSelector: selector, AdmissionReviewVersions: []string{"v1"},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: mwcName},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name: "pods.pin-certs-" + id + ".signet.dev", ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: url(admission.MustKind("pods").PinPath())},
			Rules: rules, FailurePolicy: &fail, SideEffects: &none, TimeoutSeconds: &timeout,
			NamespaceSelector: selector, AdmissionReviewVersions: []string{"v1"},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return ports[0]
}

// podCreator returns a function that creates a Pod in ns with dry-run and
// fails unless the webhook answered (its no-match warning came back).
func podCreator(t *testing.T, cfg *rest.Config, ns string) func() error {
	t.Helper()
	var mu sync.Mutex
	var warnings []string
	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandler = warningFunc(func(msg string) { mu.Lock(); warnings = append(warnings, msg); mu.Unlock() })
	cs := kubernetes.NewForConfigOrDie(cfg)
	image := "registry.invalid/signet-certs@sha256:" + strings.Repeat("1", 64)
	want := "image " + image + " (spec.containers[0].image) is not governed by any ClusterImagePolicy. " +
		"No ClusterImagePolicy governs this image and unmatched images are allowed with a warning: add a policy whose images cover it."
	return func() error {
		mu.Lock()
		warnings = nil
		mu.Unlock()
		_, err := cs.CoreV1().Pods(ns).Create(context.Background(), &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "certs-"},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
		}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, w := range warnings {
			if w == want {
				return nil
			}
		}
		return fmt.Errorf("admitted without the webhook's warning (warnings %q): was the webhook called?", warnings)
	}
}

type warningFunc func(string)

func (f warningFunc) HandleWarningHeader(_ int, _ string, text string) { f(text) }

func assertInjected(t *testing.T, cs kubernetes.Interface, vwcName, mwcName string, bundle []byte) {
	t.Helper()
	ctx := context.Background()
	vwc, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, vwcName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mwc, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, mwcName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := vwc.Webhooks[0].ClientConfig.CABundle; !bytes.Equal(got, bundle) {
		t.Errorf("validating caBundle is not the Secret's ca.crt")
	}
	if got := mwc.Webhooks[0].ClientConfig.CABundle; !bytes.Equal(got, bundle) {
		t.Errorf("mutating caBundle is not the Secret's ca.crt")
	}
}

func certsIn(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return out
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

func pool(bundle []byte) *x509.CertPool {
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(bundle)
	return p
}
