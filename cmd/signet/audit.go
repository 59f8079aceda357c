package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/signet-dev/signet/pkg/audit"
	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
	"github.com/signet-dev/signet/pkg/policy/manifest"
	"github.com/signet-dev/signet/pkg/policy/store"
	"github.com/signet-dev/signet/pkg/policy/verify"
)

// auditOptions are the flags of `signet audit`. The defaults are the
// webhook's, so a one-off audit finds what continuous validation finds.
type auditOptions struct {
	kubeconfig, context string
	namespace           string
	policies            []string
	output              string
	noMatch             policy.NoMatchPolicy
	exempt              []string
	skipExempt          bool
	awsSignerRoots      string
	insecureRegistries  []string
	timeout             time.Duration
}

// defaultExempt are the webhook's default --exempt-namespaces (less its
// own namespace, which the CLI does not know).
var defaultExempt = []string{"kube-system", "kube-public", "kube-node-lease"}

func (o *auditOptions) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "Kubeconfig file (default $KUBECONFIG, then ~/.kube/config, then the in-cluster configuration).")
	fs.StringVar(&o.context, "context", "", "Kubeconfig context (default the current context).")
	fs.StringVar(&o.namespace, "namespace", "", "Audit the Pods of this namespace only (default every namespace).")
	fs.Func("policy", "ClusterImagePolicy YAML file, directory of YAML files, or - for stdin (repeatable); default the cluster's ClusterImagePolicies.", func(s string) error {
		o.policies = append(o.policies, s)
		return nil
	})
	fs.StringVar(&o.output, "output", formatText, "Output format: text or json.")
	fs.Func("no-match-policy", "What to do with images no policy governs, as the webhook's flag: allow, warn or deny (default warn, the webhook's default); under warn and deny they are violations.", func(s string) error {
		o.noMatch = policy.NoMatchPolicy(s)
		return nil
	})
	o.exempt = defaultExempt
	fs.Func("exempt-namespaces", "Comma-separated namespaces the webhook exempts (default kube-system,kube-public,kube-node-lease): their Pods are reported audit-only.", func(s string) error {
		o.exempt = nil
		for _, ns := range strings.Split(s, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				o.exempt = append(o.exempt, ns)
			}
		}
		return nil
	})
	fs.BoolVar(&o.skipExempt, "skip-exempt", false, "Leave the Pods of exempt namespaces out.")
	fs.StringVar(&o.awsSignerRoots, "aws-signer-roots", "", "PEM file whose certificates replace the embedded AWS Signer roots.")
	fs.Func("insecure-registry", "Registry host[:port] to reach over plain HTTP (repeatable; loopback always is).", func(s string) error {
		o.insecureRegistries = append(o.insecureRegistries, s)
		return nil
	})
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "Time allowed for the whole audit.")
}

func (o *auditOptions) validate(args []string) error {
	var errs []error
	if len(args) > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q: signet audit judges the cluster's Pods (use --namespace to audit one namespace)", args))
	}
	switch o.output {
	case formatText, formatJSON:
	default:
		errs = append(errs, fmt.Errorf("--output %q: must be text or json", o.output))
	}
	if o.noMatch == "" {
		o.noMatch = policy.NoMatchWarn
	}
	if err := o.noMatch.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout %s: must be positive", o.timeout))
	}
	return errors.Join(errs...)
}

// restConfig loads the kubeconfig as kubectl does: --kubeconfig, else
// $KUBECONFIG, else ~/.kube/config, else the in-cluster configuration.
func (o *auditOptions) restConfig() (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: o.context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	cfg.UserAgent = "signet-cli/" + buildVersion()
	return cfg, nil
}

func runAudit(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// The client's controller-runtime logging has nothing for a CLI's
	// user (errors are returned); unset, it warns on stderr after 30 s.
	logf.SetLogger(logr.Discard())
	o := &auditOptions{}
	fs := flag.NewFlagSet("signet audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.bind(fs)
	if err := fs.Parse(args); err != nil {
		return exitError // the flag package printed why
	}
	if err := o.validate(fs.Args()); err != nil {
		fmt.Fprintf(stderr, "signet audit: %v\n", err)
		return exitError
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	rep, err := o.audit(ctx, stdin, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "signet audit: %v\n", err)
		return exitError
	}
	if err := writeAudit(stdout, o.output, rep); err != nil {
		fmt.Fprintf(stderr, "signet audit: %v\n", err)
		return exitError
	}
	counts := stateCounts(rep)
	switch {
	case counts[audit.StateViolation] > 0:
		return exitDenied
	case counts[audit.StateUnverifiable] > 0:
		// Signet could not check them: neither a pass nor the images' fault.
		fmt.Fprintf(stderr, "signet audit: %s could not be checked (a registry or AWS did not answer): run again; if it persists, check that this machine reaches them\n", plural(counts[audit.StateUnverifiable], "image"))
		return exitError
	}
	return exitAdmitted
}

// audit runs one cycle of pkg/audit's Auditor over the cluster.
func (o *auditOptions) audit(ctx context.Context, stdin io.Reader, stderr io.Writer) (*audit.Report, error) {
	cfg, err := o.restConfig()
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("connecting to the cluster: %w", err)
	}
	var registryRequests atomic.Uint64
	verifiers, err := verify.New(ctx, verify.Config{
		AWSSignerRoots:     o.awsSignerRoots,
		InsecureRegistries: o.insecureRegistries,
		UserAgent:          "signet-cli/" + buildVersion(),
		ObserveRegistry:    func(string, int, error, time.Duration) { registryRequests.Add(1) },
	})
	if err != nil {
		return nil, err
	}
	policies, err := o.loadPolicies(ctx, c, verifiers.Factory(), stdin, stderr)
	if err != nil {
		return nil, err
	}
	a := &audit.Auditor{
		Engine: &policy.Engine{
			Cache:    policy.NewVerdictCache(policy.CacheOptions{}),
			Resolver: verifiers.Registry,
			NoMatch:  o.noMatch,
		},
		Policies:         func() []*policy.Policy { return policies },
		Reader:           c,
		Namespace:        o.namespace,
		Exempt:           map[string]bool{},
		SkipExempt:       o.skipExempt,
		RegistryRequests: registryRequests.Load,
	}
	for _, ns := range o.exempt {
		a.Exempt[ns] = true
	}
	return a.Cycle(ctx)
}

// loadPolicies compiles the --policy files (an invalid one is a usage
// error, as in verify) or else the cluster's ClusterImagePolicies, as the
// webhook's store compiles them: one that does not compile denies the
// images it governs, as it does in the cluster, and is named on stderr.
func (o *auditOptions) loadPolicies(ctx context.Context, c client.Client, factory policy.VerifierFactory, stdin io.Reader, stderr io.Writer) ([]*policy.Policy, error) {
	var out []*policy.Policy
	if len(o.policies) > 0 {
		pending := &manifest.Pending{}
		cips, sources, err := loadPolicies(ctx, o.policies, stdin, pending)
		if err == nil {
			err = pending.Check(ctx)
		}
		if err != nil {
			return nil, err
		}
		for _, cip := range cips {
			p, errs := policy.Compile(ctx, cip, factory, noSecrets)
			if len(errs) > 0 {
				return nil, fmt.Errorf("%s: ClusterImagePolicy %q is invalid: %w", sources[cip.Name], cip.Name, errs.ToAggregate())
			}
			out = append(out, p)
		}
		return out, nil
	}
	var l v1alpha1.ClusterImagePolicyList
	if err := c.List(ctx, &l); err != nil {
		return nil, fmt.Errorf("listing ClusterImagePolicies: %w", err)
	}
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].Name < l.Items[j].Name })
	for i := range l.Items {
		cip := &l.Items[i]
		p, errs := policy.Compile(ctx, cip, factory, store.SecretReader(c))
		if len(errs) > 0 {
			fmt.Fprintf(stderr, "signet audit: ClusterImagePolicy %q is invalid: %v (the images it governs are denied, as in the cluster)\n", cip.Name, errs.ToAggregate())
		}
		out = append(out, p)
	}
	return out, nil
}
