// Command webhook is Signet's admission webhook: a controller-runtime
// manager serving the admission endpoints over TLS, with health probes and
// Prometheus metrics. This file only wires flags to components.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	// The image has no CA bundle file: Go's embedded Mozilla roots are the fallback for AWS and registry TLS.
	reportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	_ "golang.org/x/crypto/x509roots/fallback"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	buildinfo "github.com/signet-dev/signet/internal/version"
	"github.com/signet-dev/signet/internal/webhookcert"
	"github.com/signet-dev/signet/pkg/admission"
	admissionmetrics "github.com/signet-dev/signet/pkg/admission/metrics"
	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
	"github.com/signet-dev/signet/pkg/policy/store"
	"github.com/signet-dev/signet/pkg/policy/verify"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "signet webhook: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "uninstall" {
		return uninstall(args[1:])
	}
	opts := NewOptions()
	zapOpts := zap.Options{}
	fs := flag.NewFlagSet("webhook", flag.ContinueOnError)
	opts.BindFlags(fs)
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := opts.Validate(); err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	// Continuous validation writes OpenReports Reports when that CRD is installed.
	if err := reportsv1alpha1.Install(scheme); err != nil {
		return err
	}
	cfg, err := restConfig(opts.Kubeconfig)
	if err != nil {
		return err
	}
	certs, err := certManager(cfg, opts)
	if err != nil {
		return err
	}
	serverOpts := webhook.Options{Port: opts.WebhookPort, CertDir: opts.CertDir}
	if certs != nil {
		// Built-in certificates are served from memory; otherwise the
		// server watches CertDir and serves rotated files without a restart.
		serverOpts.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.GetCertificate = certs.GetCertificate }}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: opts.MetricsBindAddress},
		HealthProbeBindAddress: opts.HealthProbeBindAddress,
		PprofBindAddress:       opts.PprofBindAddress,
		WebhookServer:          webhook.NewServer(serverOpts),
		// The validators watch only Signet's own MutatingWebhookConfiguration
		// (RBAC grants it by name), to know whether pinning is installed.
		Cache: ctrlcache.Options{ByObject: map[client.Object]ctrlcache.ByObject{
			&admissionregistrationv1.MutatingWebhookConfiguration{}: {
				Field: fields.OneTermEqualSelector("metadata.name", opts.MutatingWebhookConfiguration),
			},
		}},
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	ctx, draining := shutdownContext(opts.ShutdownDelay)
	// Signet's metrics sit on controller-runtime's registry, beside its
	// webhook latency metrics, on --metrics-bind-address.
	metrics, err := admissionmetrics.New(ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	verifiers, err := verify.New(ctx, verify.Config{AWSSignerRoots: opts.AWSSignerRoots, RevocationTTL: opts.RevocationTTL, UserAgent: "signet-webhook/" + buildinfo.Of(version),
		ObserveRegistry: metrics.ObserveRegistry, ObserveAWS: metrics.ObserveAWS, RegistryMaxConnsPerHost: opts.RegistryMaxConnsPerHost})
	if err != nil {
		return err
	}
	cache := policy.NewVerdictCache(policy.CacheOptions{
		PositiveTTL:   opts.CacheVerifiedTTL,
		NegativeTTL:   opts.CacheDeniedTTL,
		MaxEntries:    opts.CacheMaxEntries,
		MaxConcurrent: opts.MaxConcurrentVerifications,
	})
	if err := metrics.Collect(cache, verifiers.Revocations); err != nil {
		return err
	}
	policies := store.New(mgr.GetClient(), mgr.GetAPIReader(), verifiers.Factory(), cache)
	if err := policies.SetupWithManager(mgr); err != nil {
		return err
	}
	if err := mgr.Add(manager.RunnableFunc(verifiers.Start)); err != nil {
		return err
	}
	judge := &admission.Judge{
		Engine: &policy.Engine{
			Cache:     cache,
			Resolver:  verifiers.Registry,
			NoMatch:   opts.NoMatchPolicy,
			Observer:  metrics,
			MaxImages: opts.MaxImagesPerRequest,
		},
		Policies:      func() []*policy.Policy { return policies.Snapshot().Policies },
		Namespaces:    mgr.GetClient(),
		Exempt:        toSet(opts.ExemptNamespaces),
		VerifyTimeout: opts.verifyTimeout(),
		PullSecrets:   mgr.GetAPIReader(),
		Recorder:      metrics,
		Events:        mgr.GetEventRecorder("signet-webhook"),
		Ready:         policiesReady(policies),
	}
	if opts.DigestPinning && opts.MutatingWebhookConfiguration != "" {
		judge.Pinning = admission.PinningInstalled(mgr.GetClient(), opts.MutatingWebhookConfiguration)
	}
	if err := addAudit(mgr, cfg, opts, judge.Engine, judge.Policies, metrics.RegistryRequests); err != nil {
		return err
	}
	registerWebhooks(mgr.GetWebhookServer(), scheme, opts, judge, admission.PolicyValidator{
		NewVerifier: verifiers.Factory(),
		ReadSecret:  store.SecretReader(mgr.GetAPIReader()),
		Timeout:     opts.verifyTimeout(),
	})

	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	// Ready only once the webhook server answers TLS and every policy is
	// compiled: a new replica never admits against an empty policy set.
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("policies", func(req *http.Request) error { return policies.Synced(req.Context()) }); err != nil {
		return err
	}
	if certs != nil {
		if err := mgr.Add(certs); err != nil {
			return err
		}
		if err := mgr.AddReadyzCheck("certificates", certs.Ready); err != nil {
			return err
		}
	}
	// During --shutdown-delay the replica reports not-ready, so it leaves
	// the Service's endpoints while it still answers.
	if err := mgr.AddReadyzCheck("shutdown", func(*http.Request) error {
		if draining.Load() {
			return errors.New("shutting down")
		}
		return nil
	}); err != nil {
		return err
	}
	log.Info("starting", "version", buildinfo.Of(version), "webhookPort", opts.WebhookPort, "certManagement", opts.CertManagement, "noMatchPolicy", opts.NoMatchPolicy, "exemptNamespaces", opts.ExemptNamespaces, "digestPinning", opts.DigestPinning, "auditInterval", opts.AuditInterval)
	return mgr.Start(ctx)
}

// policiesReady reports whether the policy store has compiled every policy
// once. It latches: a policy edited later is served from the previous
// snapshot while it recompiles, rather than failing admissions meanwhile.
func policiesReady(s *store.Store) func(context.Context) error {
	var synced atomic.Bool
	return func(ctx context.Context) error {
		if synced.Load() {
			return nil
		}
		if err := s.Synced(ctx); err != nil {
			return fmt.Errorf("its ClusterImagePolicies are not all compiled yet (%w)", err)
		}
		synced.Store(true)
		return nil
	}
}

// registerWebhooks serves the admission endpoints: the validators, the
// ClusterImagePolicy validator and the pinning webhook, which with
// --digest-pinning=false admits everything unchanged.
func registerWebhooks(srv webhook.Server, scheme *runtime.Scheme, opts *Options, j *admission.Judge, pv admission.PolicyValidator) {
	admission.Register(srv, scheme, j)
	admission.RegisterPolicyValidator(srv, scheme, pv)
	pin := j
	if !opts.DigestPinning {
		pin = nil
	}
	admission.RegisterPinning(srv, scheme, pin)
}

// certManager returns the built-in certificate manager, or nil when the
// certificate comes from --cert-dir.
func certManager(cfg *rest.Config, opts *Options) (*webhookcert.Manager, error) {
	if opts.CertManagement != CertBuiltin {
		return nil, nil
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return webhookcert.New(webhookcert.Config{
		Client:       cs,
		Namespace:    opts.Namespace,
		Secret:       opts.CertSecret,
		Hosts:        opts.CertDNSNames,
		Validating:   opts.ValidatingWebhookConfiguration,
		Mutating:     opts.MutatingWebhookConfiguration,
		CAValidity:   opts.CAValidity,
		CertValidity: opts.CertValidity,
		Log:          ctrl.Log.WithName("certificates"),
	})
}

// shutdownContext is cancelled --shutdown-delay after the first SIGTERM or
// SIGINT; until then draining is true and the webhook keeps answering. A
// second signal exits at once.
func shutdownContext(delay time.Duration) (context.Context, *atomic.Bool) {
	ctx, cancel := context.WithCancel(context.Background())
	draining := &atomic.Bool{}
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, os.Interrupt)
	go func() {
		<-signals
		draining.Store(true)
		ctrl.Log.WithName("setup").Info("signal received: draining before shutdown", "shutdownDelay", delay)
		select {
		case <-time.After(delay):
		case <-signals:
			os.Exit(1)
		}
		cancel()
		<-signals
		os.Exit(1)
	}()
	return ctx, draining
}

func toSet(list []string) map[string]bool {
	set := map[string]bool{}
	for _, s := range list {
		set[s] = true
	}
	return set
}

// restConfig honours --kubeconfig, then the usual in-cluster / $KUBECONFIG chain.
func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, err
		}
		// As ctrl.GetConfig does: no client-side rate limit (the API
		// server's priority and fairness governs), so reading a Pod's pull
		// secrets never queues behind client-go's default 5 requests/s.
		if cfg.QPS == 0 {
			cfg.QPS = -1
		}
		return cfg, nil
	}
	return ctrl.GetConfig()
}
