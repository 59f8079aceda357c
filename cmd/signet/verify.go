package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
	"github.com/signet-dev/signet/pkg/policy/manifest"
	"github.com/signet-dev/signet/pkg/policy/verify"
)

// verifyOptions are the flags of `signet verify`.
type verifyOptions struct {
	policies           []string
	output             string
	noMatch            policy.NoMatchPolicy
	awsSignerRoots     string
	insecureRegistries []string
	timeout            time.Duration
	// breakGlass is --break-glass's reason; breakGlassSet tells an empty
	// reason (refused) from no flag.
	breakGlass    string
	breakGlassSet bool
}

func (o *verifyOptions) bind(fs *flag.FlagSet) {
	fs.Func("policy", "ClusterImagePolicy YAML file, directory of YAML files, or - for stdin (repeatable).", func(s string) error {
		o.policies = append(o.policies, s)
		return nil
	})
	fs.StringVar(&o.output, "output", formatText, "Output format: text or json.")
	fs.Func("no-match-policy", "What to do with images no policy governs: allow, warn or deny (default deny).", func(s string) error {
		o.noMatch = policy.NoMatchPolicy(s)
		return nil
	})
	fs.StringVar(&o.awsSignerRoots, "aws-signer-roots", "", "PEM file whose certificates replace the embedded AWS Signer roots.")
	fs.Func("insecure-registry", "Registry host[:port] to reach over plain HTTP (repeatable; loopback always is).", func(s string) error {
		o.insecureRegistries = append(o.insecureRegistries, s)
		return nil
	})
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "Time allowed for the whole verification.")
	fs.Func("break-glass", "Judge as the cluster judges a workload annotated signet.dev/break-glass with this reason (at least 10 characters): images failing only policies that allow break-glass are admitted, with a warning.", func(s string) error {
		o.breakGlass, o.breakGlassSet = s, true
		return nil
	})
}

func (o *verifyOptions) validate(images []string) error {
	var errs []error
	if len(images) == 0 {
		errs = append(errs, errors.New("no IMAGE given"))
	}
	if len(o.policies) == 0 {
		errs = append(errs, errors.New("no --policy given: name the ClusterImagePolicy files the cluster uses"))
	}
	switch o.output {
	case formatText, formatJSON:
	default:
		errs = append(errs, fmt.Errorf("--output %q: must be text or json", o.output))
	}
	if o.noMatch == "" {
		o.noMatch = policy.NoMatchDeny
	}
	if err := o.noMatch.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout %s: must be positive", o.timeout))
	}
	if o.breakGlassSet {
		reason, err := policy.BreakGlassReason(o.breakGlass)
		if err != nil {
			errs = append(errs, fmt.Errorf("--break-glass: %w", err))
		}
		o.breakGlass = reason
	}
	return errors.Join(errs...)
}

func runVerify(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o := &verifyOptions{}
	fs := flag.NewFlagSet("signet verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.bind(fs)
	images, err := parseInterspersed(fs, args)
	if err != nil {
		return exitError // the flag package printed why
	}
	if err := o.validate(images); err != nil {
		fmt.Fprintf(stderr, "signet verify: %v\n", err)
		return exitError
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	// Three things are independent and each costs milliseconds: the AWS
	// configuration (the SDK parses AWS_CA_BUNDLE, if set), compiling the
	// CRD's CEL rules, and the registry and KMS reads. They overlap: the
	// configuration loads while the policy files are read, the CEL rules
	// compile in the background (manifest.NewSchema) and are checked after
	// the verification, whose verdict is printed only if they pass.
	type built struct {
		v   *verify.Verifiers
		err error
	}
	verifiersCh := make(chan built, 1)
	go func() {
		v, err := verify.New(ctx, verify.Config{
			AWSSignerRoots:     o.awsSignerRoots,
			InsecureRegistries: o.insecureRegistries,
			UserAgent:          "signet-cli/" + buildVersion(),
			// One run verifies a few images once: an unsigned image needs no
			// key, and a policy's key is read only for a signature to check.
			LazyKeys: true,
		})
		verifiersCh <- built{v, err}
	}()
	pending := &manifest.Pending{}
	// usage reports err, or the first policy the CEL rules refuse: a
	// policy the API server would refuse is the first thing to fix.
	usage := func(err error) int {
		if cerr := pending.Check(ctx); cerr != nil {
			err = cerr
		}
		fmt.Fprintf(stderr, "signet verify: %v\n", err)
		return exitError
	}

	cips, sources, err := loadPolicies(ctx, o.policies, stdin, pending)
	if err != nil {
		return usage(err)
	}
	b := <-verifiersCh
	if b.err != nil {
		return usage(b.err)
	}
	verifiers := b.v
	var policies []*policy.Policy
	for _, cip := range cips {
		p, errs := policy.Compile(ctx, cip, verifiers.Factory(), noSecrets)
		if len(errs) > 0 {
			return usage(fmt.Errorf("%s: ClusterImagePolicy %q is invalid: %w", sources[cip.Name], cip.Name, errs.ToAggregate()))
		}
		policies = append(policies, p)
	}
	engine := &policy.Engine{
		Cache:    policy.NewVerdictCache(policy.CacheOptions{}),
		Resolver: verifiers.Registry,
		NoMatch:  o.noMatch,
	}
	req := policy.Request{BreakGlass: o.breakGlass}
	for i, img := range images {
		req.Images = append(req.Images, policy.ImageRef{Path: fmt.Sprintf("args[%d]", i), Ref: img})
	}
	d := engine.Evaluate(ctx, policies, req)
	if err := pending.Check(ctx); err != nil {
		return usage(err)
	}
	if err := write(stdout, o.output, d); err != nil {
		fmt.Fprintf(stderr, "signet verify: %v\n", err)
		return exitError
	}
	if !d.Allowed() {
		return exitDenied
	}
	return exitAdmitted
}

// noSecrets: the CLI has no cluster to read Secrets from.
func noSecrets(_ context.Context, namespace, name, key string) ([]byte, error) {
	return nil, fmt.Errorf("the signet CLI cannot read Secret %s/%s: give the same PEM key as key.data in the policy file", namespace, name)
}

// parseInterspersed allows flags after IMAGE arguments, as users type them.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// loadPolicies reads every --policy: a file, a directory (its *.yaml and
// *.yml files, sorted), or - for standard input. sources names the file
// each policy came from. Their CEL rules are left to pending (see
// manifest.DecodeDeferred).
func loadPolicies(ctx context.Context, paths []string, stdin io.Reader, pending *manifest.Pending) (policies []*v1alpha1.ClusterImagePolicy, sources map[string]string, err error) {
	schema, err := manifest.NewSchema()
	if err != nil {
		return nil, nil, err
	}
	var out []*v1alpha1.ClusterImagePolicy
	seen := map[string]string{}
	add := func(source string, r io.Reader) error {
		ps, err := schema.DecodeDeferred(ctx, source, r, pending)
		if err != nil {
			return err
		}
		for _, p := range ps {
			if prev, ok := seen[p.Name]; ok {
				return fmt.Errorf("%s: ClusterImagePolicy %q is also defined in %s: policy names are unique in a cluster", source, p.Name, prev)
			}
			seen[p.Name] = source
		}
		out = append(out, ps...)
		return nil
	}
	for _, path := range paths {
		if path == "-" {
			if err := add("-", stdin); err != nil {
				return nil, nil, err
			}
			continue
		}
		files, err := policyFiles(path)
		if err != nil {
			return nil, nil, err
		}
		for _, f := range files {
			fh, err := os.Open(f)
			if err != nil {
				return nil, nil, err
			}
			err = add(f, fh)
			fh.Close()
			if err != nil {
				return nil, nil, err
			}
		}
	}
	if len(out) == 0 {
		return nil, nil, fmt.Errorf("no ClusterImagePolicy found in %s", strings.Join(paths, ", "))
	}
	return out, seen, nil
}

func policyFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--policy %s: %w", path, err)
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
			files = append(files, filepath.Join(path, e.Name()))
		}
	}
	sort.Strings(files)
	return files, nil
}
