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
}

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
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
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
	return errors.Join(errs...)
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
