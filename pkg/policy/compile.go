package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
)

// Policy is a ClusterImagePolicy compiled for evaluation: globs compiled,
// selectors parsed, every authority bound to its Verifier. It is immutable
// once built and shared by concurrent evaluations.
type Policy struct {
	Name        string
	Generation  int64
	Mode        v1alpha1.PolicyMode
	Globs       []*Glob
	Authorities []Authority
	// BreakGlass: objects annotated with a break-glass reason are admitted
	// despite failing this policy (spec.breakGlass.allowed).
	BreakGlass bool

	namespaceSelector labels.Selector // nil: every namespace
	objectSelector    labels.Selector // nil: every object

	// NotReady, when set, says why the policy cannot be enforced as
	// written (e.g. its KMS key could not be fetched). Images it governs
	// are denied with this reason: the policy fails closed.
	NotReady error
}

// Authority is one compiled authority of a policy.
type Authority struct {
	Name     string
	Verifier Verifier
}

// Describe names the authority for denials: `"ci-kms" (awskms:///alias/cosign)`.
func (a Authority) Describe() string {
	return fmt.Sprintf("%q (%s)", a.Name, a.Verifier.Describe())
}

// VerifierFactory builds the Verifier for one authority of a policy.
// secretData is the PEM read from the authority's secretRef, when it has
// one (reading Secrets is the caller's business, so the domain stays free
// of Kubernetes clients). Return an *InvalidAuthorityError for what is
// wrong in the policy itself (unparsable PEM); any other error means the
// authority is unavailable for now (a KMS key that cannot be fetched).
type VerifierFactory func(ctx context.Context, a v1alpha1.Authority, secretData []byte) (Verifier, error)

// InvalidAuthorityError says the authority's spec is wrong, as a field error.
type InvalidAuthorityError struct {
	Field string // relative to the authority, e.g. "key.data"
	Value any
	Msg   string
}

func (e *InvalidAuthorityError) Error() string { return e.Msg }

// SecretReader reads one key of one Secret; nil when no policy uses secretRef.
type SecretReader func(ctx context.Context, namespace, name, key string) ([]byte, error)

// Compile turns a ClusterImagePolicy into a Policy. Field errors report
// what the CRD's own validation cannot check (glob syntax, PEM that does
// not parse, selectors, missing Secrets). The Policy is returned even then,
// with NotReady set: it governs the images its valid globs match and denies
// them, so a broken policy fails closed. An authority that is only
// unavailable (a KMS key that cannot be read) also sets NotReady.
func Compile(ctx context.Context, cip *v1alpha1.ClusterImagePolicy, newVerifier VerifierFactory, readSecret SecretReader) (*Policy, field.ErrorList) {
	spec := field.NewPath("spec")
	p := &Policy{Name: cip.Name, Generation: cip.Generation, Mode: cip.Spec.Mode}
	if p.Mode == "" {
		p.Mode = v1alpha1.ModeEnforce
	}
	p.BreakGlass = cip.Spec.BreakGlass != nil && cip.Spec.BreakGlass.Allowed
	var errs field.ErrorList
	for i, g := range cip.Spec.Images {
		glob, err := CompileGlob(g.Glob)
		if err != nil {
			errs = append(errs, field.Invalid(spec.Child("images").Index(i).Child("glob"), g.Glob, err.Error()))
			continue
		}
		p.Globs = append(p.Globs, glob)
	}
	if m := cip.Spec.Match; m != nil {
		var err *field.Error
		p.namespaceSelector, err = selector(m.NamespaceSelector, spec.Child("match", "namespaceSelector"))
		if err != nil {
			errs = append(errs, err)
		}
		p.objectSelector, err = selector(m.ObjectSelector, spec.Child("match", "objectSelector"))
		if err != nil {
			errs = append(errs, err)
		}
	}
	var unavailable []error
	for i, a := range cip.Spec.Authorities {
		path := spec.Child("authorities").Index(i)
		if a.Static != nil {
			// Decided here, not by a scheme's factory: the webhook and the
			// CLI answer static authorities identically, with no I/O.
			p.Authorities = append(p.Authorities, Authority{Name: a.Name, Verifier: StaticVerifier{Action: a.Static.Action, Message: a.Static.Message}})
			continue
		}
		var secret []byte
		if a.Key != nil && a.Key.SecretRef != nil {
			ref := a.Key.SecretRef
			if readSecret == nil {
				errs = append(errs, field.InternalError(path.Child("key", "secretRef"), errors.New("no Secret reader configured")))
				continue
			}
			data, err := readSecret(ctx, ref.Namespace, ref.Name, ref.Key)
			if err != nil {
				// A missing Secret or key is a policy error: it will not fix itself.
				errs = append(errs, field.Invalid(path.Child("key", "secretRef"), fmt.Sprintf("%s/%s[%s]", ref.Namespace, ref.Name, ref.Key), err.Error()))
				continue
			}
			secret = data
		}
		v, err := newVerifier(ctx, a, secret)
		var invalid *InvalidAuthorityError
		switch {
		case errors.As(err, &invalid):
			fp := path
			for _, f := range strings.Split(invalid.Field, ".") {
				fp = fp.Child(f)
			}
			errs = append(errs, field.Invalid(fp, invalid.Value, invalid.Msg))
			continue
		case err != nil:
			unavailable = append(unavailable, fmt.Errorf("authority %q: %w", a.Name, err))
			continue
		}
		p.Authorities = append(p.Authorities, Authority{Name: a.Name, Verifier: v})
	}
	if len(errs) > 0 {
		p.NotReady = errs.ToAggregate()
		return p, errs
	}
	p.NotReady = errors.Join(unavailable...)
	return p, nil
}

func selector(s *metav1.LabelSelector, path *field.Path) (labels.Selector, *field.Error) {
	if s == nil {
		return nil, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return nil, field.Invalid(path, s, err.Error())
	}
	return sel, nil
}

// Governs reports whether the policy applies to an image repository in an
// object with the given labels and namespace labels.
func (p *Policy) Governs(repository string, obj ObjectContext) bool {
	if p.namespaceSelector != nil && !p.namespaceSelector.Matches(labels.Set(obj.NamespaceLabels)) {
		return false
	}
	if p.objectSelector != nil && !p.objectSelector.Matches(labels.Set(obj.Labels)) {
		return false
	}
	for _, g := range p.Globs {
		if g.Match(repository) {
			return true
		}
	}
	return false
}

// ObjectContext is what policies' match selectors look at.
type ObjectContext struct {
	Namespace       string
	NamespaceLabels map[string]string
	Labels          map[string]string
}
