package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/signet-dev/signet/pkg/policy"
)

// Options is the webhook's whole configuration. Flags bind to it; Validate
// runs before anything starts, so a bad flag fails at once with a message
// instead of as a crash-looping Pod.
type Options struct {
	Kubeconfig             string
	WebhookPort            int
	CertDir                string
	MetricsBindAddress     string
	HealthProbeBindAddress string
	// NoMatchPolicy defaults to warn: installing Signet must not stop
	// Pods that no policy covers yet; admins switch to deny once their
	// policies cover every registry they run images from.
	NoMatchPolicy policy.NoMatchPolicy
	// ExemptNamespaces are never judged. The webhook's own namespace is
	// added so Signet can always restart itself.
	ExemptNamespaces []string
	// AWSSignerRoots, when set, is a PEM file whose certificates replace the
	// embedded AWS Signer roots (air-gapped rotation, tests).
	AWSSignerRoots string
	// VerifyTimeout bounds one admission's verification. Zero derives it
	// from the API server's webhook timeout minus a margin, so Signet
	// answers with its own message before the API server gives up.
	VerifyTimeout time.Duration
	// WebhookTimeout is the timeoutSeconds of the webhook configurations;
	// VerifyTimeout's default is derived from it.
	WebhookTimeout time.Duration
	// DigestPinning serves the mutating webhook that rewrites images
	// verified by tag to repo:tag@digest, so the kubelet pulls exactly what
	// was verified. On by default.
	DigestPinning bool

	// Namespace is the webhook's own namespace ($POD_NAMESPACE), where the
	// built-in certificate management keeps its Secret.
	Namespace string
	// CertManagement is builtin (Signet creates its CA and serving
	// certificate, injects the CA bundle and rotates both) or external
	// (tls.crt/tls.key in CertDir come from elsewhere, e.g. cert-manager).
	CertManagement CertManagement
	// CertSecret names the Secret in Namespace holding the CA and serving
	// certificate; every replica shares it.
	CertSecret string
	// CertDNSNames are the serving certificate's names: the Service's
	// <svc>.<ns>.svc and <svc>.<ns>.svc.cluster.local.
	CertDNSNames []string
	// ValidatingWebhookConfiguration and MutatingWebhookConfiguration name
	// the configurations whose caBundle the built-in management keeps
	// current. The mutating one may be empty (digest pinning off).
	ValidatingWebhookConfiguration string
	MutatingWebhookConfiguration   string
	// CAValidity and CertValidity are the lifetimes of the CA and the
	// serving certificate; each is renewed when a third of it remains.
	CAValidity   time.Duration
	CertValidity time.Duration

	// AuditInterval is how often continuous validation re-judges every
	// running Pod's images; 0 turns it off.
	AuditInterval time.Duration
	// AuditExempt reports the Pods of exempt namespaces (as audit-only);
	// false leaves them out.
	AuditExempt bool
	// AuditLease names the Lease in Namespace that elects the one replica
	// that audits; empty audits on every replica (a single replica only).
	AuditLease string

	// ShutdownDelay is how long the webhook keeps answering after SIGTERM
	// while reporting not-ready, so the Service stops sending it requests
	// before it stops listening.
	ShutdownDelay time.Duration

	// Cache bounds the verdict cache (see policy.CacheOptions).
	CacheVerifiedTTL time.Duration
	CacheDeniedTTL   time.Duration
	CacheMaxEntries  int
	// RevocationTTL keeps an AWS Signer revocation answer; it is the
	// longest a revoked signing job can still be admitted.
	RevocationTTL time.Duration

	// Limits on what one request, and the process, may cost.
	// MaxImagesPerRequest: distinct images one object may name; a request
	// over it is refused at once, with no registry or AWS call.
	MaxImagesPerRequest int
	// MaxConcurrentVerifications: verifications (cache misses) running at
	// once in the process; others wait within their admission's deadline.
	MaxConcurrentVerifications int
	// RegistryMaxConnsPerHost: connections to one registry host.
	RegistryMaxConnsPerHost int

	// PprofBindAddress serves net/http/pprof; "0" (default) disables it.
	PprofBindAddress string
}

// CertManagement says who provides the serving certificate.
type CertManagement string

const (
	// CertBuiltin: the webhook manages its own CA and certificate.
	CertBuiltin CertManagement = "builtin"
	// CertExternal: the files in --cert-dir are provided (cert-manager).
	CertExternal CertManagement = "external"
)

// verifyMargin is kept for decoding, the response and the network, so the
// API server receives Signet's answer, not its own timeout.
const verifyMargin = 2 * time.Second

// verifyTimeout is --verify-timeout, or --webhook-timeout minus the margin.
func (o *Options) verifyTimeout() time.Duration {
	if o.VerifyTimeout > 0 {
		return o.VerifyTimeout
	}
	if d := o.WebhookTimeout - verifyMargin; d > time.Second {
		return d
	}
	return time.Second
}

// DefaultExemptNamespaces are the system namespaces no policy should be
// able to lock up.
var DefaultExemptNamespaces = []string{"kube-system", "kube-public", "kube-node-lease"}

// NewOptions returns the defaults. POD_NAMESPACE (set by the Helm chart
// through the downward API) names the webhook's own namespace.
func NewOptions() *Options {
	exempt := append([]string(nil), DefaultExemptNamespaces...)
	ns := os.Getenv("POD_NAMESPACE")
	if ns != "" {
		exempt = append(exempt, ns)
	}
	return &Options{
		WebhookPort:            9443,
		CertDir:                "/tmp/k8s-webhook-server/serving-certs",
		MetricsBindAddress:     ":8080",
		HealthProbeBindAddress: ":8081",
		NoMatchPolicy:          policy.NoMatchWarn,
		WebhookTimeout:         10 * time.Second,
		ExemptNamespaces:       exempt,
		DigestPinning:          true,

		Namespace:                      ns,
		CertManagement:                 CertBuiltin,
		CertSecret:                     "signet-webhook-cert",
		CertDNSNames:                   serviceDNSNames("signet-webhook", ns),
		ValidatingWebhookConfiguration: "signet-validating",
		MutatingWebhookConfiguration:   "signet-mutating",
		CAValidity:                     5 * 365 * 24 * time.Hour,
		CertValidity:                   365 * 24 * time.Hour,

		AuditInterval: 10 * time.Minute,
		AuditExempt:   true,
		AuditLease:    "signet-audit",

		CacheVerifiedTTL: 10 * time.Minute,
		CacheDeniedTTL:   30 * time.Second,
		CacheMaxEntries:  20000,
		RevocationTTL:    10 * time.Minute,

		MaxImagesPerRequest:        256,
		MaxConcurrentVerifications: 64,
		RegistryMaxConnsPerHost:    32,

		PprofBindAddress: "0",
	}
}

// BindFlags registers the stable flag names on fs.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "Path to a kubeconfig. Empty: in-cluster configuration, else $KUBECONFIG.")
	fs.IntVar(&o.WebhookPort, "webhook-port", o.WebhookPort, "Port the admission webhook serves HTTPS on.")
	fs.StringVar(&o.CertDir, "cert-dir", o.CertDir, "Folder holding tls.crt and tls.key; rotated files are picked up without a restart.")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", o.MetricsBindAddress, "Address of the Prometheus metrics endpoint; \"0\" disables it.")
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", o.HealthProbeBindAddress, "Address of /healthz and /readyz.")
	fs.Func("no-match-policy", "What to do with images no ClusterImagePolicy governs: allow, warn or deny (default warn).", func(s string) error {
		o.NoMatchPolicy = policy.NoMatchPolicy(s)
		return nil
	})
	fs.Func("exempt-namespaces", "Comma-separated namespaces never judged (default: kube-system,kube-public,kube-node-lease and $POD_NAMESPACE).", func(s string) error {
		o.ExemptNamespaces = splitList(s)
		return nil
	})
	fs.StringVar(&o.AWSSignerRoots, "aws-signer-roots", o.AWSSignerRoots, "PEM file whose certificates replace the embedded AWS Signer root certificates.")
	fs.DurationVar(&o.VerifyTimeout, "verify-timeout", o.VerifyTimeout, "Time one admission may spend verifying; 0 derives it from --webhook-timeout minus 2s.")
	fs.BoolVar(&o.DigestPinning, "digest-pinning", o.DigestPinning, "Serve the mutating webhook that pins images verified by tag to repo:tag@digest; false leaves images as written.")
	fs.DurationVar(&o.WebhookTimeout, "webhook-timeout", o.WebhookTimeout, "The timeoutSeconds of Signet's webhook configurations (the API server's limit).")

	fs.StringVar(&o.Namespace, "namespace", o.Namespace, "The webhook's own namespace, holding the certificate Secret (default $POD_NAMESPACE).")
	fs.Func("cert-management", "Who provides the serving certificate: builtin (Signet creates, injects and rotates it) or external (files in --cert-dir, e.g. from cert-manager). Default builtin.", func(s string) error {
		o.CertManagement = CertManagement(s)
		return nil
	})
	fs.StringVar(&o.CertSecret, "cert-secret", o.CertSecret, "Secret in --namespace holding the built-in CA and serving certificate.")
	fs.Func("cert-dns-names", "Comma-separated names of the built-in serving certificate: the webhook Service's <svc>.<ns>.svc names (IP addresses are accepted too).", func(s string) error {
		o.CertDNSNames = splitList(s)
		return nil
	})
	fs.StringVar(&o.ValidatingWebhookConfiguration, "validating-webhook-configuration", o.ValidatingWebhookConfiguration, "ValidatingWebhookConfiguration whose caBundle the built-in certificate management keeps current.")
	fs.StringVar(&o.MutatingWebhookConfiguration, "mutating-webhook-configuration", o.MutatingWebhookConfiguration, "MutatingWebhookConfiguration whose caBundle is kept current; empty when digest pinning is not installed.")
	fs.DurationVar(&o.CAValidity, "ca-validity", o.CAValidity, "Lifetime of the built-in CA; renewed when a third remains, the old CA stays trusted until it expires.")
	fs.DurationVar(&o.CertValidity, "cert-validity", o.CertValidity, "Lifetime of the built-in serving certificate; renewed when a third remains.")
	fs.DurationVar(&o.ShutdownDelay, "shutdown-delay", o.ShutdownDelay, "After SIGTERM, report not-ready but keep answering this long before shutting down, so in-flight and already-routed admissions finish.")
	fs.DurationVar(&o.AuditInterval, "audit-interval", o.AuditInterval, "How often continuous validation re-judges the images of every running Pod at the digest it runs; 0 turns it off.")
	fs.BoolVar(&o.AuditExempt, "audit-exempt-namespaces", o.AuditExempt, "Report the Pods of exempt namespaces too (marked audit-only); false leaves them out.")
	fs.StringVar(&o.AuditLease, "audit-lease", o.AuditLease, "Lease in --namespace electing the one replica that runs continuous validation; empty runs it on every replica.")
	fs.DurationVar(&o.CacheVerifiedTTL, "cache-verified-ttl", o.CacheVerifiedTTL, "How long a verified image digest stays cached.")
	fs.DurationVar(&o.CacheDeniedTTL, "cache-denied-ttl", o.CacheDeniedTTL, "How long any other verdict (denied, failed, verified with warnings) stays cached.")
	fs.IntVar(&o.CacheMaxEntries, "cache-max-entries", o.CacheMaxEntries, "Most verdicts kept; the least recently used goes first.")
	fs.DurationVar(&o.RevocationTTL, "revocation-ttl", o.RevocationTTL, "How long an AWS Signer revocation answer is kept: the longest a revoked signing job can still be admitted (a verdict never outlives it).")
	fs.IntVar(&o.MaxImagesPerRequest, "max-images-per-request", o.MaxImagesPerRequest, "Most distinct images one object may name; an object naming more is refused at once, before any registry call.")
	fs.IntVar(&o.MaxConcurrentVerifications, "max-concurrent-verifications", o.MaxConcurrentVerifications, "Most verifications running at once in the process; others wait within their admission's deadline, then get a 503 \"Signet is busy\".")
	fs.IntVar(&o.RegistryMaxConnsPerHost, "registry-max-conns-per-host", o.RegistryMaxConnsPerHost, "Most connections to one registry host; requests beyond it wait for a free one.")
	fs.StringVar(&o.PprofBindAddress, "pprof-bind-address", o.PprofBindAddress, "Address of net/http/pprof; \"0\" disables it.")
}

// Validate reports every invalid option at once.
func (o *Options) Validate() error {
	var errs []error
	if o.WebhookPort < 1 || o.WebhookPort > 65535 {
		errs = append(errs, fmt.Errorf("--webhook-port %d: must be between 1 and 65535", o.WebhookPort))
	}
	if o.CertDir == "" {
		errs = append(errs, errors.New("--cert-dir: must not be empty"))
	}
	if err := o.NoMatchPolicy.Validate(); err != nil {
		errs = append(errs, err)
	}
	for _, ns := range o.ExemptNamespaces {
		if ns == "" || strings.ContainsAny(ns, " /") {
			errs = append(errs, fmt.Errorf("--exempt-namespaces: %q is not a namespace name", ns))
		}
	}
	if o.AWSSignerRoots != "" {
		if _, err := os.Stat(o.AWSSignerRoots); err != nil {
			errs = append(errs, fmt.Errorf("--aws-signer-roots: %w", err))
		}
	}
	if o.WebhookTimeout < time.Second || o.WebhookTimeout > 30*time.Second {
		errs = append(errs, fmt.Errorf("--webhook-timeout %s: must be between 1s and 30s, as the API server allows", o.WebhookTimeout))
	}
	if o.VerifyTimeout < 0 {
		errs = append(errs, fmt.Errorf("--verify-timeout %s: must not be negative", o.VerifyTimeout))
	}
	errs = append(errs, o.validateCerts()...)
	if o.RevocationTTL <= 0 {
		errs = append(errs, fmt.Errorf("--revocation-ttl %s: must be positive", o.RevocationTTL))
	}
	if o.AuditInterval < 0 {
		errs = append(errs, fmt.Errorf("--audit-interval %s: must not be negative (0 turns continuous validation off)", o.AuditInterval))
	}
	if o.AuditInterval > 0 && o.AuditLease != "" && o.Namespace == "" {
		errs = append(errs, fmt.Errorf("--audit-lease %s: needs --namespace (or $POD_NAMESPACE) to hold the Lease; or set --audit-lease= to run continuous validation without election (one replica only), or --audit-interval=0", o.AuditLease))
	}
	if o.ShutdownDelay < 0 {
		errs = append(errs, fmt.Errorf("--shutdown-delay %s: must not be negative", o.ShutdownDelay))
	}
	if o.CacheVerifiedTTL <= 0 || o.CacheDeniedTTL <= 0 {
		errs = append(errs, fmt.Errorf("--cache-verified-ttl %s, --cache-denied-ttl %s: must be positive", o.CacheVerifiedTTL, o.CacheDeniedTTL))
	}
	if o.CacheMaxEntries < 1 {
		errs = append(errs, fmt.Errorf("--cache-max-entries %d: must be at least 1", o.CacheMaxEntries))
	}
	for _, l := range []struct {
		flag string
		v    int
	}{
		{"--max-images-per-request", o.MaxImagesPerRequest},
		{"--max-concurrent-verifications", o.MaxConcurrentVerifications},
		{"--registry-max-conns-per-host", o.RegistryMaxConnsPerHost},
	} {
		if l.v < 1 {
			errs = append(errs, fmt.Errorf("%s %d: must be at least 1", l.flag, l.v))
		}
	}
	return errors.Join(errs...)
}

// serviceDNSNames are the names the API server uses for a Service
// reference: <svc>.<ns>.svc (and the cluster-domain form some clients use).
func serviceDNSNames(svc, ns string) []string {
	if ns == "" {
		return nil
	}
	return []string{svc + "." + ns + ".svc", svc + "." + ns + ".svc.cluster.local"}
}

// minCertValidity keeps rotation sane: shorter lifetimes would rotate
// faster than replicas can pick the new certificate up.
const minCertValidity = 30 * time.Second

func (o *Options) validateCerts() []error {
	switch o.CertManagement {
	case CertExternal:
		return nil
	case CertBuiltin:
	default:
		return []error{fmt.Errorf("--cert-management %q: must be builtin or external", o.CertManagement)}
	}
	var errs []error
	if o.Namespace == "" {
		errs = append(errs, errors.New("--cert-management=builtin needs --namespace (or $POD_NAMESPACE) for its Secret"))
	}
	if o.CertSecret == "" {
		errs = append(errs, errors.New("--cert-secret: must not be empty with --cert-management=builtin"))
	}
	if len(o.CertDNSNames) == 0 {
		errs = append(errs, errors.New("--cert-dns-names: name the webhook Service (<svc>.<ns>.svc) with --cert-management=builtin"))
	}
	if o.ValidatingWebhookConfiguration == "" {
		errs = append(errs, errors.New("--validating-webhook-configuration: must not be empty with --cert-management=builtin"))
	}
	if o.CertValidity < minCertValidity || o.CAValidity < minCertValidity {
		errs = append(errs, fmt.Errorf("--cert-validity %s, --ca-validity %s: must be at least %s", o.CertValidity, o.CAValidity, minCertValidity))
	} else if o.CertValidity > o.CAValidity {
		errs = append(errs, fmt.Errorf("--cert-validity %s: must not exceed --ca-validity %s", o.CertValidity, o.CAValidity))
	}
	return errs
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
