package webhookcert

import (
	"bytes"
	"context"
	"crypto/x509"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"

	"github.com/signet-dev/signet/test/stack"
)

// clock is a hand-driven time source.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

// world is one namespace and one validating configuration on the stack's
// API server, and a Manager over them with a hand-driven clock.
type world struct {
	t     *testing.T
	cs    kubernetes.Interface
	ns    string
	vwc   string
	clock *clock
}

func newWorld(t *testing.T) *world {
	env := stack.Load(t)
	cs := kubernetes.NewForConfigOrDie(env.RESTConfig(t))
	id := rand.String(6)
	w := &world{t: t, cs: cs, ns: "webhookcert-" + id, vwc: "webhookcert-" + id, clock: &clock{now: time.Now()}}
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().Namespaces().Delete(ctx, w.ns, metav1.DeleteOptions{})
		_ = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, w.vwc, metav1.DeleteOptions{})
	})
	return w
}

// createConfiguration registers a configuration that never matches
// anything (no rules), so it judges nothing while the Manager injects it.
func (w *world) createConfiguration() {
	url, none := "https://127.0.0.1:1/never", admissionregistrationv1.SideEffectClassNone
	if _, err := w.cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(context.Background(), &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: w.vwc},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "never.webhookcert.signet.dev", ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url},
			SideEffects: &none, AdmissionReviewVersions: []string{"v1"},
		}},
	}, metav1.CreateOptions{}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) manager(hosts ...string) *Manager {
	m, err := New(Config{
		Client: w.cs, Namespace: w.ns, Secret: "cert", Hosts: hosts, Validating: w.vwc,
		CAValidity: 30 * 24 * time.Hour, CertValidity: 3 * 24 * time.Hour,
		Log: testr.New(w.t), Now: w.clock.Now,
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return m
}

// settle syncs until the manager serves (it waits out propagationDelay on
// the hand-driven clock) and returns the Secret's material.
func (w *world) settle(m *Manager) *material {
	w.t.Helper()
	for i := 0; i < 3; i++ {
		wait, err := m.sync(context.Background())
		if err != nil {
			w.t.Fatal(err)
		}
		if wait < propagationDelay {
			break
		}
		w.clock.now = w.clock.now.Add(wait)
	}
	sec, err := w.cs.CoreV1().Secrets(w.ns).Get(context.Background(), "cert", metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	mat, err := parseMaterial(sec.Data)
	if err != nil {
		w.t.Fatalf("the Secret the manager wrote does not parse: %v", err)
	}
	vwc, err := w.cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(context.Background(), w.vwc, metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	if !bytes.Equal(vwc.Webhooks[0].ClientConfig.CABundle, mat.bundlePEM()) {
		w.t.Fatal("caBundle is not the Secret's ca.crt")
	}
	served, err := m.GetCertificate(nil)
	if err != nil {
		w.t.Fatal(err)
	}
	if !served.Leaf.Equal(mat.cert) {
		w.t.Fatal("the manager does not serve the Secret's certificate")
	}
	return mat
}

func TestNoConfigurationNoSecret(t *testing.T) {
	w := newWorld(t)
	m := w.manager("svc.ns.svc")
	_, err := m.sync(context.Background())
	want := `reading ValidatingWebhookConfiguration ` + w.vwc + `: validatingwebhookconfigurations.admissionregistration.k8s.io "` + w.vwc + `" not found: ` +
		`install it with Signet (Helm chart or config/), or point --validating-webhook-configuration at the name it has`
	if err == nil || err.Error() != want {
		t.Fatalf("sync = %v, want %q", err, want)
	}
	if _, err := w.cs.CoreV1().Secrets(w.ns).Get(context.Background(), "cert", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a Secret was created without a configuration to serve (err %v)", err)
	}
	if err := m.Ready(nil); err == nil {
		t.Fatal("ready without a certificate")
	}
}

func TestGarbageSecretIsReplaced(t *testing.T) {
	w := newWorld(t)
	w.createConfiguration()
	if _, err := w.cs.CoreV1().Secrets(w.ns).Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "cert"},
		Data:       map[string][]byte{"ca.crt": []byte("not a certificate"), "ca.key": {0, 1, 2}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mat := w.settle(w.manager("svc.ns.svc"))
	if len(mat.cas) != 1 || mat.cert.CheckSignatureFrom(mat.cas[0]) != nil {
		t.Fatal("the garbage Secret was not replaced by a fresh CA and certificate")
	}
}

// TestLostCAKeyKeepsTrust: when the CA key is gone, a new CA signs, but
// the old CA stays in the bundle, so replicas still serving its
// certificate are not refused while they catch up.
func TestLostCAKeyKeepsTrust(t *testing.T) {
	w := newWorld(t)
	w.createConfiguration()
	first := w.settle(w.manager("svc.ns.svc"))
	sec, err := w.cs.CoreV1().Secrets(w.ns).Get(context.Background(), "cert", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	delete(sec.Data, "ca.key")
	if _, err := w.cs.CoreV1().Secrets(w.ns).Update(context.Background(), sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	next := w.settle(w.manager("svc.ns.svc"))
	if len(next.cas) != 2 || next.cas[0].Equal(first.cas[0]) || !next.cas[1].Equal(first.cas[0]) {
		t.Fatalf("after losing the CA key the bundle holds %d CAs; want a new one first, then the old one", len(next.cas))
	}
}

func TestRenewalAndHosts(t *testing.T) {
	w := newWorld(t)
	w.createConfiguration()
	m := w.manager("svc.ns.svc", "127.0.0.1")
	first := w.settle(m)
	if got := first.cert.DNSNames; len(got) != 1 || got[0] != "svc.ns.svc" || len(first.cert.IPAddresses) != 1 {
		t.Fatalf("certificate names %v %v", got, first.cert.IPAddresses)
	}

	// New host names (a renamed Service): new certificate, same CA.
	renamed := w.settle(w.manager("svc2.ns.svc"))
	if !renamed.cas[0].Equal(first.cas[0]) || renamed.cert.Equal(first.cert) || renamed.cert.DNSNames[0] != "svc2.ns.svc" {
		t.Fatal("changing the host names must reissue the certificate under the same CA")
	}

	// Two of three days gone: the certificate is renewed, the CA is not.
	m = w.manager("svc2.ns.svc")
	w.clock.now = w.clock.now.Add(49 * time.Hour)
	renewed := w.settle(m)
	if !renewed.cas[0].Equal(first.cas[0]) || renewed.cert.Equal(renamed.cert) {
		t.Fatal("the serving certificate was not renewed at two thirds of its life, or the CA changed")
	}

	// Two thirds of the CA's 30 days gone: a new CA signs, the old one stays
	// trusted, and this replica keeps serving its old certificate until the
	// new CA has been in the configuration for propagationDelay.
	w.clock.now = first.cas[0].NotAfter.Add(-9 * 24 * time.Hour)
	before, _ := m.GetCertificate(nil)
	wait, err := m.sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if now, _ := m.GetCertificate(nil); wait != propagationDelay || !now.Leaf.Equal(before.Leaf) {
		t.Fatalf("switched to the new CA's certificate before the bundle propagated (wait %s)", wait)
	}
	w.clock.now = w.clock.now.Add(wait)
	rotated := w.settle(m)
	if len(rotated.cas) != 2 || rotated.cas[0].Equal(first.cas[0]) || !rotated.cas[1].Equal(first.cas[0]) {
		t.Fatalf("after CA renewal the bundle holds %d CAs; want the new one first, then the old one", len(rotated.cas))
	}
	if _, err := rotated.cert.Verify(x509.VerifyOptions{Roots: pool(rotated.cas[0]), DNSName: "svc2.ns.svc", CurrentTime: w.clock.now}); err != nil {
		t.Fatalf("the new certificate does not verify under the new CA: %v", err)
	}

	// Once the old CA has expired it leaves the bundle.
	w.clock.now = first.cas[0].NotAfter.Add(time.Minute)
	pruned := w.settle(m)
	if len(pruned.cas) != 1 || !pruned.cas[0].Equal(rotated.cas[0]) {
		t.Fatalf("the expired CA was not dropped: %d CAs", len(pruned.cas))
	}
}

func pool(c *x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c)
	return p
}
