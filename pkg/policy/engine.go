package policy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/sync/singleflight"

	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
)

// NoMatchPolicy decides images that no policy governs.
type NoMatchPolicy string

// The no-match policies.
const (
	NoMatchAllow NoMatchPolicy = "allow"
	NoMatchWarn  NoMatchPolicy = "warn"
	NoMatchDeny  NoMatchPolicy = "deny"
)

// Validate reports whether p is one of the no-match policies, with the
// message both the webhook's and the CLI's --no-match-policy flag print.
func (p NoMatchPolicy) Validate() error {
	switch p {
	case NoMatchAllow, NoMatchWarn, NoMatchDeny:
		return nil
	}
	return fmt.Errorf("--no-match-policy %q: must be allow, warn or deny", string(p))
}

// Resolver resolves a tag to the digest it points at now. Signatures bind
// digests, so a tag is resolved once per decision and the digest is what
// gets verified (and what admission pins).
type Resolver interface {
	Resolve(ctx context.Context, ref name.Reference, keychain authn.Keychain) (name.Digest, error)
}

// Engine decides whether images may run. The webhook and the CLI use the
// same Engine, so a pipeline's answer is the cluster's answer.
type Engine struct {
	Cache    *VerdictCache
	Resolver Resolver
	NoMatch  NoMatchPolicy
	// ParseOptions apply when parsing image references (e.g. insecure
	// registries for the CLI).
	ParseOptions []name.Option
	// Observer, when set, is told about every verification (metrics).
	Observer Observer
	// MaxImages bounds the distinct images one request may name (0: no
	// limit). A request over it is refused at once, before any registry
	// or AWS call: one object must not cost Signet unbounded work.
	MaxImages int

	// resolving shares a tag resolution among concurrent admissions of the
	// same tag (a rollout), so the registry sees one HEAD, not one per Pod.
	resolving singleflight.Group
}

// resolveTimeout bounds a shared tag resolution, which outlives the caller
// that started it so that the others still get its answer.
const resolveTimeout = 10 * time.Second

// ImageRef is one image of the object being judged.
type ImageRef struct {
	// Path is where the image is in the object, e.g.
	// "spec.containers[0].image"; it is reported in messages.
	Path string
	Ref  string
}

// Request is one thing to decide: the images of one object.
type Request struct {
	Images []ImageRef
	Object ObjectContext
	// Keychain adds request credentials (a Pod's pull secrets).
	Keychain authn.Keychain
	// BreakGlass is the request's break-glass reason, checked with
	// BreakGlassReason; "" when it gave none.
	BreakGlass string
	// KeychainID fingerprints Keychain (see Image.KeychainID); empty when
	// Keychain is nil.
	KeychainID string
}

// Evaluate decides every image of req under policies. Identical image
// references are resolved and verified once; verifications go through the
// shared verdict cache.
func (e *Engine) Evaluate(ctx context.Context, policies []*Policy, req Request) Decision {
	type work struct {
		once     sync.Once
		decision ImageDecision
	}
	byRef := map[string]*work{}
	for _, img := range req.Images {
		if byRef[img.Ref] == nil {
			byRef[img.Ref] = &work{}
		}
	}
	if e.MaxImages > 0 && len(byRef) > e.MaxImages {
		return Decision{Refused: fmt.Sprintf("the object names %d distinct images, more than the %d Signet judges in one request (--max-images-per-request): split the workload, or ask your cluster admin to raise the limit", len(byRef), e.MaxImages)}
	}
	var wg sync.WaitGroup
	for _, img := range req.Images {
		w := byRef[img.Ref]
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.once.Do(func() { w.decision = e.evaluateImage(ctx, policies, img.Ref, req) })
		}()
	}
	wg.Wait()
	d := Decision{}
	for _, img := range req.Images {
		id := byRef[img.Ref].decision
		id.Path = img.Path
		d.Images = append(d.Images, id)
	}
	return d
}

func (e *Engine) evaluateImage(ctx context.Context, policies []*Policy, ref string, req Request) ImageDecision {
	id := ImageDecision{Image: ref}
	parsed, err := ParseImage(ref, e.ParseOptions...)
	if err != nil {
		id.Verdict = VerdictDenied
		id.Cause = err.Error()
		id.Hint = hintBadRef
		return id
	}
	repo := Repository(parsed)
	var governing []*Policy
	for _, p := range policies {
		if p.Governs(repo, req.Object) {
			governing = append(governing, p)
		}
	}
	if len(governing) == 0 {
		id.NoMatch = true
		switch e.NoMatch {
		case NoMatchAllow:
			id.Verdict = VerdictAdmitted
		case NoMatchWarn:
			id.Verdict = VerdictWarned
		default:
			id.Verdict = VerdictDenied
		}
		return id
	}

	digest, err := e.resolve(ctx, parsed, req.Keychain, req.KeychainID)
	if err != nil && req.Keychain != nil && denied(err) {
		// The request's credentials were refused: Signet's own may read it.
		if d, ownErr := e.resolve(ctx, parsed, nil, ""); ownErr == nil || !denied(ownErr) {
			digest, err = d, ownErr
		}
	}
	if err != nil {
		// Nothing could be checked: every governing policy failed.
		var failed []PolicyResult
		for _, p := range governing {
			failed = append(failed, PolicyResult{Policy: p.Name, Mode: p.Mode})
		}
		id.Policies = failed // governing, none satisfied: reported and counted per policy
		id.Verdict = verdictOf(failed)
		id.Cause = err.Error()
		id.Transient, id.Hint = true, hintTransient
		var t interface{ Transient() bool }
		if errors.As(err, &t) && !t.Transient() {
			id.Transient, id.Hint = false, hintUnreadable
		}
		return id
	}
	id.Digest = digest.DigestStr()
	id.Resolved = parsed.String() != digest.String()
	img := Image{Ref: digest, Keychain: req.Keychain, KeychainID: req.KeychainID}
	for _, p := range governing {
		id.Policies = append(id.Policies, e.evaluatePolicy(ctx, p, img))
	}
	applyBreakGlass(id.Policies, governing, req.BreakGlass)
	var failed []PolicyResult
	for _, pr := range id.Policies {
		if !pr.Satisfied && !pr.BrokenGlass {
			failed = append(failed, pr)
		}
	}
	id.Verdict = withBreakGlass(verdictOf(failed), id.Policies)
	return id
}

// verdictOf: admitted when no policy failed; denied when an Enforce
// policy failed; warned when only Warn policies failed.
func verdictOf(failed []PolicyResult) Verdict {
	if len(failed) == 0 {
		return VerdictAdmitted
	}
	for _, f := range failed {
		if f.Mode != v1alpha1.ModeWarn {
			return VerdictDenied
		}
	}
	return VerdictWarned
}

// denied reports whether err says the registry refused the credentials.
func denied(err error) bool {
	var d interface{ Denied() bool }
	return errors.As(err, &d) && d.Denied()
}

func (e *Engine) resolve(ctx context.Context, ref name.Reference, kc authn.Keychain, kcID string) (name.Digest, error) {
	if d, ok := ref.(name.Digest); ok {
		return d, nil
	}
	if e.Resolver == nil {
		return name.Digest{}, fmt.Errorf("cannot resolve tag %q: no resolver", ref.Identifier())
	}
	// Shared only among the same credentials: one namespace's refused pull
	// secret must not fail another's resolution.
	ch := e.resolving.DoChan(ref.String()+"\x00"+kcID, func() (any, error) {
		work, cancel := context.WithTimeout(context.WithoutCancel(ctx), resolveTimeout)
		defer cancel()
		return e.Resolver.Resolve(work, ref, kc)
	})
	var d name.Digest
	var err error
	select {
	case res := <-ch:
		err = res.Err
		if err == nil {
			d = res.Val.(name.Digest)
		}
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		if ctx.Err() != nil {
			return name.Digest{}, fmt.Errorf("verification did not finish in time: the registry did not resolve tag %q", ref.Identifier())
		}
		return name.Digest{}, fmt.Errorf("could not resolve tag %q to a digest: %w", ref.Identifier(), err)
	}
	return d, nil
}

// evaluatePolicy checks the authorities in order until one verifies: ANY
// authority satisfies the policy.
func (e *Engine) evaluatePolicy(ctx context.Context, p *Policy, img Image) PolicyResult {
	pr := PolicyResult{Policy: p.Name, Mode: p.Mode}
	if p.NotReady != nil {
		pr.NotReady = p.NotReady.Error()
		return pr
	}
	for _, a := range p.Authorities {
		begin := time.Now()
		r, outcome := e.verify(ctx, a.Verifier, img)
		if e.Observer != nil {
			e.Observer.ObserveVerification(Scheme(a.Verifier), outcome, time.Since(begin))
		}
		pr.Authorities = append(pr.Authorities, AuthorityResult{Name: a.Name, Describe: a.Verifier.Describe(), Result: r, Cache: outcome})
		if r.Verified() {
			pr.Satisfied = true
			pr.SatisfiedBy = a.Name
			return pr
		}
	}
	return pr
}

// verify asks the cache for v's verdict on img. When the registry refused
// the request's credentials, Signet's own are tried before deciding: an
// expired pull secret must not deny an image Signet itself can read. The
// request's refusal stands only if Signet's credentials are refused too.
func (e *Engine) verify(ctx context.Context, v Verifier, img Image) (Result, Outcome) {
	r, outcome := e.Cache.Verify(ctx, v, img)
	if !r.RegistryDenied || img.Keychain == nil {
		return r, outcome
	}
	own, ownOutcome := e.Cache.Verify(ctx, v, Image{Ref: img.Ref})
	if own.RegistryDenied {
		return r, outcome
	}
	return own, ownOutcome
}
