package admission

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	ctrladmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
)

// PathClusterImagePolicies is where the ClusterImagePolicy validating
// webhook is served.
const PathClusterImagePolicies = "/validate/clusterimagepolicies"

// RegisterPolicyValidator serves the ClusterImagePolicy validating webhook on srv.
func RegisterPolicyValidator(srv webhook.Server, scheme *runtime.Scheme, v PolicyValidator) {
	srv.Register(PathClusterImagePolicies, ctrladmission.WithValidator[*v1alpha1.ClusterImagePolicy](scheme, v))
}

// PolicyValidator checks a ClusterImagePolicy by compiling it exactly as
// the policy store will: what the CRD's CEL rules cannot check (glob
// syntax, PEM that does not parse, a secretRef to a missing Secret or key)
// is rejected with field errors; an authority that is only unavailable now
// (a KMS key that cannot be fetched) admits the policy with a warning, as
// the store will retry it.
type PolicyValidator struct {
	NewVerifier policy.VerifierFactory
	ReadSecret  policy.SecretReader
	// Timeout bounds compiling (KMS and Secret reads), within the API
	// server's webhook timeout.
	Timeout time.Duration
}

var clusterImagePolicyKind = v1alpha1.GroupVersion.WithKind("ClusterImagePolicy").GroupKind()

// ValidateCreate implements ctrladmission.Validator.
func (v PolicyValidator) ValidateCreate(ctx context.Context, cip *v1alpha1.ClusterImagePolicy) (ctrladmission.Warnings, error) {
	return v.validate(ctx, cip)
}

// ValidateUpdate implements ctrladmission.Validator. An update that leaves the
// spec alone (labels, finalizers) is not checked: it changes nothing the
// store compiles, and must stay possible while, say, a Secret is missing.
func (v PolicyValidator) ValidateUpdate(ctx context.Context, oldObj, newObj *v1alpha1.ClusterImagePolicy) (ctrladmission.Warnings, error) {
	if equality.Semantic.DeepEqual(oldObj.Spec, newObj.Spec) {
		return nil, nil
	}
	return v.validate(ctx, newObj)
}

// ValidateDelete implements ctrladmission.Validator.
func (PolicyValidator) ValidateDelete(context.Context, *v1alpha1.ClusterImagePolicy) (ctrladmission.Warnings, error) {
	return nil, nil
}

func (v PolicyValidator) validate(ctx context.Context, cip *v1alpha1.ClusterImagePolicy) (ctrladmission.Warnings, error) {
	ctx, cancel := context.WithTimeout(ctx, v.Timeout)
	defer cancel()
	p, errs := policy.Compile(ctx, cip, v.NewVerifier, v.ReadSecret)
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(clusterImagePolicyKind, cip.Name, errs)
	}
	if p.NotReady == nil {
		return nil, nil
	}
	// One warning per unavailable authority.
	causes := []error{p.NotReady}
	if joined, ok := p.NotReady.(interface{ Unwrap() []error }); ok {
		causes = joined.Unwrap()
	}
	var warnings ctrladmission.Warnings
	for _, err := range causes {
		warnings = append(warnings, fmt.Sprintf("ClusterImagePolicy %q is not ready: %s. Images it governs are denied until Signet can load the authority; it keeps retrying (kubectl describe clusterimagepolicy %s shows the reason).",
			cip.Name, strings.TrimRight(err.Error(), ". "), cip.Name))
	}
	return warnings, nil
}
