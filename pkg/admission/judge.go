package admission

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/signet-dev/signet/pkg/policy"
)

// Judge decides the images of admission requests with the policy engine.
type Judge struct {
	Engine *policy.Engine
	// Policies returns the policies in force (the store's snapshot).
	Policies func() []*policy.Policy
	// Namespaces reads namespace labels for policies' namespace selectors.
	Namespaces client.Reader
	// Exempt namespaces are never judged.
	Exempt map[string]bool
	// VerifyTimeout bounds one admission's verification, so Signet answers
	// with its own message before the API server gives up on the webhook.
	VerifyTimeout time.Duration
	// PullSecrets reads Pods' imagePullSecrets and service accounts for
	// registry credentials (an uncached reader: Secrets are not watched).
	// Nil: only Signet's own credentials are used.
	PullSecrets client.Reader
	// Recorder counts decisions (the metrics package); nil counts nothing.
	Recorder Recorder

	// keychains shares pull secrets read for one admission with the next
	// ones from the same namespace and service account.
	keychains keychains
}

// Recorder is told every decision the Judge makes.
type Recorder interface {
	Decided(policy.Decision)
}

// judge decides images of obj; an error denies (the controller-runtime
// validator turns it into a 403 with its message), warnings are shown by
// kubectl either way.
func (j *Judge) judge(ctx context.Context, obj client.Object, spec *corev1.PodSpec, images []policy.ImageRef) (admission.Warnings, error) {
	if len(images) == 0 || j.Exempt[obj.GetNamespace()] {
		return nil, nil
	}
	log := logf.FromContext(ctx)
	begin := time.Now()
	d, err := j.decide(ctx, obj, spec, images)
	if err != nil {
		return nil, err
	}
	if j.Recorder != nil {
		j.Recorder.Decided(d)
	}
	log.Info("admission decided", "allowed", d.Allowed(), "images", len(images), "denied", len(d.Denials()), "warned", len(d.Warnings()), "duration", time.Since(begin))
	warnings := admission.Warnings(d.Warnings())
	if !d.Allowed() {
		// One line per denied image; kubectl prints it after "denied the request: ".
		return warnings, fmt.Errorf("%s", strings.Join(d.Denials(), "\n"))
	}
	return warnings, nil
}

// decide evaluates images of obj within VerifyTimeout. The validators and
// the pinning webhook both decide through it, with the same engine and
// verdict cache: whichever runs second is answered from the cache.
func (j *Judge) decide(ctx context.Context, obj client.Object, spec *corev1.PodSpec, images []policy.ImageRef) (policy.Decision, error) {
	ctx, cancel := context.WithTimeout(ctx, j.VerifyTimeout)
	defer cancel()
	objCtx := policy.ObjectContext{Namespace: obj.GetNamespace(), Labels: obj.GetLabels()}
	if ns := obj.GetNamespace(); ns != "" {
		nsObj := &corev1.Namespace{}
		if err := j.Namespaces.Get(ctx, types.NamespacedName{Name: ns}, nsObj); err != nil {
			// Without labels, namespace selectors cannot be evaluated: fail closed.
			return policy.Decision{}, fmt.Errorf("Signet could not read namespace %q to apply ClusterImagePolicy namespace selectors: %v. This is a transient failure: retry", ns, err)
		}
		objCtx.NamespaceLabels = nsObj.Labels
	}
	return j.Engine.Evaluate(ctx, j.Policies(), policy.Request{
		Images: images, Object: objCtx, Keychain: pullSecretKeychain(&j.keychains, j.PullSecrets, obj.GetNamespace(), spec),
	}), nil
}

// Validator judges one Pod-bearing kind T (Pod, Deployment, …): CREATE
// judges every image, UPDATE the images that changed (including ephemeral
// containers added by `kubectl debug`), DELETE nothing.
type Validator[T client.Object] struct {
	Judge *Judge
}

// ValidateCreate implements admission.Validator.
func (v Validator[T]) ValidateCreate(ctx context.Context, obj T) (admission.Warnings, error) {
	spec, path, ok := PodSpecOf(obj)
	if !ok {
		return nil, nil
	}
	return v.Judge.judge(ctx, obj, spec, Images(spec, path))
}

// ValidateUpdate implements admission.Validator.
func (v Validator[T]) ValidateUpdate(ctx context.Context, oldObj, newObj T) (admission.Warnings, error) {
	spec, path, ok := PodSpecOf(newObj)
	if !ok {
		return nil, nil
	}
	old, _, _ := PodSpecOf(oldObj)
	return v.Judge.judge(ctx, newObj, spec, ChangedImages(spec, old, path))
}

// ValidateDelete implements admission.Validator.
func (Validator[T]) ValidateDelete(context.Context, T) (admission.Warnings, error) { return nil, nil }
