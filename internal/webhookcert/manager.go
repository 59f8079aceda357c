// Package webhookcert gives the webhook its serving certificate without
// cert-manager. Every replica runs a Manager; they share one Secret holding a
// CA and a serving certificate, so restarts and `helm upgrade` keep the CA,
// and they converge through the API server's optimistic concurrency rather
// than leader election.
//
// The Manager keeps the CA bundle of Signet's webhook configurations
// current, serves the certificate from memory (no files, so a read-only root
// filesystem is fine), and renews both when a third of their lifetime
// remains. A renewed CA is added to the bundle beside the old one, and a
// replica switches to a certificate only after that certificate's CA has
// been in every configuration for propagationDelay, so the API server never
// meets a certificate it cannot verify.
package webhookcert

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// propagationDelay is how long a CA must have been in the webhook
// configurations before a replica serves a certificate it signed: the API
// server's webhook clients pick configuration changes up from a watch.
const propagationDelay = 2 * time.Second

// Config says where the certificate lives and whom it serves.
type Config struct {
	Client kubernetes.Interface
	// Namespace and Secret name the shared Secret.
	Namespace, Secret string
	// Hosts are the serving certificate's DNS names or IP addresses.
	Hosts []string
	// Validating (required) and Mutating (optional) name the webhook
	// configurations whose caBundle is kept current. The Secret is owned by
	// the validating one, so deleting Signet's configurations also removes
	// the CA.
	Validating, Mutating string
	CAValidity           time.Duration
	CertValidity         time.Duration
	Log                  logr.Logger
	// Now is the clock; tests may replace it.
	Now func() time.Time
}

// Manager issues, injects, rotates and serves the certificate.
type Manager struct {
	cfg Config

	served  atomic.Pointer[tls.Certificate]
	lastErr atomic.Pointer[error]

	mu sync.Mutex
	// injectedAt is when this replica first saw a CA (by fingerprint) in
	// every configuration's caBundle.
	injectedAt map[string]time.Time
}

// New checks cfg and returns a Manager that serves nothing until Start has
// done its first round.
func New(cfg Config) (*Manager, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("webhookcert: no Kubernetes client")
	case cfg.Namespace == "" || cfg.Secret == "":
		return nil, errors.New("webhookcert: the Secret needs a namespace and a name")
	case len(cfg.Hosts) == 0:
		return nil, errors.New("webhookcert: the certificate needs at least one host name")
	case cfg.Validating == "":
		return nil, errors.New("webhookcert: the validating webhook configuration must be named")
	case cfg.CertValidity <= 0 || cfg.CAValidity < cfg.CertValidity:
		return nil, fmt.Errorf("webhookcert: validity CA %s, certificate %s: the CA must outlive the certificate", cfg.CAValidity, cfg.CertValidity)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Manager{cfg: cfg, injectedAt: map[string]time.Time{}}, nil
}

// GetCertificate is the TLS server's certificate source.
func (m *Manager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := m.served.Load(); c != nil {
		return c, nil
	}
	return nil, errors.New("signet: serving certificate not ready yet")
}

// Ready is a readiness check: a valid certificate is being served and its CA
// is in the webhook configurations. A later failure to reach the API server
// does not make a replica unready while its certificate is still valid.
func (m *Manager) Ready(*http.Request) error {
	if c := m.served.Load(); c != nil && m.cfg.Now().Before(c.Leaf.NotAfter) {
		return nil
	}
	if err := m.lastErr.Load(); err != nil {
		return fmt.Errorf("no serving certificate: %w", *err)
	}
	return errors.New("no serving certificate yet: waiting for the CA bundle to reach the webhook configurations")
}

// NeedLeaderElection is false: every replica serves, so every replica
// needs a certificate.
func (m *Manager) NeedLeaderElection() bool { return false }

// checkInterval is how often the certificate is checked: often enough that
// renewal (at a third of the lifetime) is never late, at most once a minute.
func (m *Manager) checkInterval() time.Duration {
	return min(max(m.cfg.CertValidity/10, time.Second), time.Minute)
}

// Start runs until ctx ends, retrying failures with backoff.
func (m *Manager) Start(ctx context.Context) error {
	backoff := time.Second
	for {
		next, err := m.sync(ctx)
		if err != nil {
			m.lastErr.Store(&err)
			m.cfg.Log.Error(err, "webhook certificate", "retryIn", backoff)
			next, backoff = backoff, min(backoff*2, m.checkInterval())
		} else {
			m.lastErr.Store(nil)
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(next):
		}
	}
}

// sync does one round: make the Secret current, make the configurations
// trust its CA, then serve its certificate once that trust has propagated.
// It returns when to look again.
func (m *Manager) sync(ctx context.Context) (time.Duration, error) {
	owner, err := m.cfg.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, m.cfg.Validating, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		// Without the configuration there is nobody to serve, and creating
		// the Secret now would resurrect it during an uninstall.
		return 0, fmt.Errorf("reading ValidatingWebhookConfiguration %s: %w: install it with Signet (Helm chart or config/), "+
			"or point --validating-webhook-configuration at the name it has", m.cfg.Validating, err)
	}
	if err != nil {
		return 0, fmt.Errorf("reading ValidatingWebhookConfiguration %s: %w", m.cfg.Validating, err)
	}
	mat, err := m.ensureSecret(ctx, owner)
	if err != nil {
		return 0, err
	}
	bundle := mat.bundlePEM()
	if err := m.inject(ctx, owner, bundle); err != nil {
		return 0, err
	}

	now := m.cfg.Now()
	ca := fingerprint(mat.cas[0])
	m.mu.Lock()
	seen, ok := m.injectedAt[ca]
	if !ok {
		seen = now
		m.injectedAt[ca] = now
	}
	m.mu.Unlock()
	next := m.checkInterval()
	if cur := m.served.Load(); cur == nil || !bytes.Equal(cur.Leaf.Raw, mat.cert.Raw) {
		if wait := seen.Add(propagationDelay).Sub(now); wait > 0 {
			return wait, nil
		}
		m.served.Store(mat.tls)
		m.cfg.Log.Info("serving certificate", "ca", ca, "notAfter", mat.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return next, nil
}

// ensureSecret reads the Secret and writes it back when the CA or the
// certificate must change. Replicas racing here lose with a conflict and
// adopt the winner's material on the next attempt.
func (m *Manager) ensureSecret(ctx context.Context, owner *admissionregistrationv1.ValidatingWebhookConfiguration) (*material, error) {
	secrets := m.cfg.Client.CoreV1().Secrets(m.cfg.Namespace)
	name := m.cfg.Namespace + "/" + m.cfg.Secret
	for attempt := 0; ; attempt++ {
		sec, err := secrets.Get(ctx, m.cfg.Secret, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			sec = nil
		case err != nil:
			return nil, fmt.Errorf("reading Secret %s: %w", name, err)
		}
		mat, changed, err := m.renew(sec)
		if err != nil {
			return nil, err
		}
		ref := ownerRef(owner)
		if sec != nil && !hasOwner(sec, ref) {
			changed = true
		}
		if !changed {
			return mat, nil
		}
		data, err := mat.data()
		if err != nil {
			return nil, err
		}
		if sec == nil {
			sec = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: m.cfg.Secret, Namespace: m.cfg.Namespace}}
		}
		if !hasOwner(sec, ref) {
			sec.OwnerReferences = append(sec.OwnerReferences, ref)
		}
		if sec.Labels == nil {
			sec.Labels = map[string]string{}
		}
		sec.Labels["app.kubernetes.io/managed-by"] = "signet-webhook"
		if sec.Annotations == nil {
			sec.Annotations = map[string]string{}
		}
		sec.Annotations["signet.dev/ca-not-after"] = mat.cas[0].NotAfter.UTC().Format(time.RFC3339)
		sec.Annotations["signet.dev/cert-not-after"] = mat.cert.NotAfter.UTC().Format(time.RFC3339)
		sec.Type = corev1.SecretTypeOpaque
		sec.Data = data
		if sec.ResourceVersion == "" {
			_, err = secrets.Create(ctx, sec, metav1.CreateOptions{})
		} else {
			_, err = secrets.Update(ctx, sec, metav1.UpdateOptions{})
		}
		if (apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)) && attempt < 5 {
			continue // another replica wrote first: read its material
		}
		if err != nil {
			return nil, fmt.Errorf("writing Secret %s: %w", name, err)
		}
		m.cfg.Log.Info("certificate Secret written", "secret", name, "ca", fingerprint(mat.cas[0]),
			"trustedCAs", len(mat.cas), "caNotAfter", sec.Annotations["signet.dev/ca-not-after"],
			"certNotAfter", sec.Annotations["signet.dev/cert-not-after"])
		return mat, nil
	}
}

// renew returns the material the Secret should hold and whether that
// differs from what it holds.
func (m *Manager) renew(sec *corev1.Secret) (*material, bool, error) {
	now := m.cfg.Now()
	var mat *material
	var trusted []*x509.Certificate // CAs replicas may still serve from
	if sec != nil && len(sec.Data) > 0 {
		var err error
		if mat, err = parseMaterial(sec.Data); err != nil {
			m.cfg.Log.Info("certificate Secret unusable, starting a new CA", "secret", m.cfg.Namespace+"/"+m.cfg.Secret, "reason", err.Error())
			// A lost or mismatched key still leaves readable CA
			// certificates: keep trusting them, or replicas serving
			// from them would be refused until they catch up.
			trusted, _ = parseCerts(sec.Data[keyCABundle])
		} else {
			trusted = mat.cas
		}
	}
	changed := false
	if mat == nil || !now.Before(mat.cas[0].NotAfter) || needsRenewal(mat.cas[0], now, m.cfg.CAValidity) {
		ca, key, err := newCA(now, m.cfg.CAValidity)
		if err != nil {
			return nil, false, err
		}
		// The old CAs stay trusted until they expire (pruned below).
		mat, changed = &material{cas: append([]*x509.Certificate{ca}, trusted...), caKey: key}, true
	}
	kept := mat.cas[:1]
	for _, c := range mat.cas[1:] {
		if now.Before(c.NotAfter) {
			kept = append(kept, c)
		}
	}
	if len(kept) != len(mat.cas) {
		mat.cas, changed = kept, true
	}
	if !mat.certServes(m.cfg.Hosts, now, m.cfg.CertValidity) {
		if err := mat.issue(m.cfg.Hosts, now, m.cfg.CertValidity); err != nil {
			return nil, false, err
		}
		changed = true
	}
	return mat, changed, nil
}

// inject sets caBundle on every webhook of Signet's configurations.
func (m *Manager) inject(ctx context.Context, vwc *admissionregistrationv1.ValidatingWebhookConfiguration, bundle []byte) error {
	changed := false
	for i := range vwc.Webhooks {
		if !bytes.Equal(vwc.Webhooks[i].ClientConfig.CABundle, bundle) {
			vwc.Webhooks[i].ClientConfig.CABundle, changed = bundle, true
		}
	}
	api := m.cfg.Client.AdmissionregistrationV1()
	if changed {
		if _, err := api.ValidatingWebhookConfigurations().Update(ctx, vwc, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("injecting the CA bundle into ValidatingWebhookConfiguration %s: %w", vwc.Name, err)
		}
		m.cfg.Log.Info("CA bundle injected", "validatingWebhookConfiguration", vwc.Name)
	}
	if m.cfg.Mutating == "" {
		return nil
	}
	mwc, err := api.MutatingWebhookConfigurations().Get(ctx, m.cfg.Mutating, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading MutatingWebhookConfiguration %s: %w", m.cfg.Mutating, err)
	}
	changed = false
	for i := range mwc.Webhooks {
		if !bytes.Equal(mwc.Webhooks[i].ClientConfig.CABundle, bundle) {
			mwc.Webhooks[i].ClientConfig.CABundle, changed = bundle, true
		}
	}
	if changed {
		if _, err := api.MutatingWebhookConfigurations().Update(ctx, mwc, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("injecting the CA bundle into MutatingWebhookConfiguration %s: %w", mwc.Name, err)
		}
		m.cfg.Log.Info("CA bundle injected", "mutatingWebhookConfiguration", mwc.Name)
	}
	return nil
}

// ownerRef ties the Secret to the validating configuration: the garbage
// collector removes the CA when Signet's configurations are deleted.
func ownerRef(owner *admissionregistrationv1.ValidatingWebhookConfiguration) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion: "admissionregistration.k8s.io/v1",
		Kind:       "ValidatingWebhookConfiguration",
		Name:       owner.Name,
		UID:        owner.UID,
	}
}

func hasOwner(sec *corev1.Secret, ref metav1.OwnerReference) bool {
	for _, r := range sec.OwnerReferences {
		if r.UID == ref.UID {
			return true
		}
	}
	return false
}
