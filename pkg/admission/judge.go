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
}

// judge decides images of obj; an error denies (the controller-runtime
// validator turns it into a 403 with its message), warnings are shown by
// kubectl either way.
func (j *Judge) judge(ctx context.Context, obj client.Object, images []policy.ImageRef) (admission.Warnings, error) {
	if len(images) == 0 || j.Exempt[obj.GetNamespace()] {
		return nil, nil
	}
	log := logf.FromContext(ctx)
	ctx, cancel := context.WithTimeout(ctx, j.VerifyTimeout)
	defer cancel()
	objCtx := policy.ObjectContext{Namespace: obj.GetNamespace(), Labels: obj.GetLabels()}
	if ns := obj.GetNamespace(); ns != "" {
		nsObj := &corev1.Namespace{}
		if err := j.Namespaces.Get(ctx, types.NamespacedName{Name: ns}, nsObj); err != nil {
			// Without labels, namespace selectors cannot be evaluated: fail closed.
			return nil, fmt.Errorf("Signet could not read namespace %q to apply ClusterImagePolicy namespace selectors: %v. This is a transient failure: retry", ns, err)
		}
		objCtx.NamespaceLabels = nsObj.Labels
	}
	begin := time.Now()
	d := j.Engine.Evaluate(ctx, j.Policies(), policy.Request{Images: images, Object: objCtx})
	log.Info("admission decided", "allowed", d.Allowed(), "images", len(images), "denied", len(d.Denials()), "warned", len(d.Warnings()), "duration", time.Since(begin))
	warnings := admission.Warnings(d.Warnings())
	if !d.Allowed() {
		// One line per denied image; kubectl prints it after "denied the request: ".
		return warnings, fmt.Errorf("%s", strings.Join(d.Denials(), "\n"))
	}
	return warnings, nil
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
	return v.Judge.judge(ctx, obj, Images(spec, path))
}

// ValidateUpdate implements admission.Validator.
func (v Validator[T]) ValidateUpdate(ctx context.Context, oldObj, newObj T) (admission.Warnings, error) {
	spec, path, ok := PodSpecOf(newObj)
	if !ok {
		return nil, nil
	}
	old, _, _ := PodSpecOf(oldObj)
	return v.Judge.judge(ctx, newObj, ChangedImages(spec, old, path))
}

// ValidateDelete implements admission.Validator.
func (Validator[T]) ValidateDelete(context.Context, T) (admission.Warnings, error) { return nil, nil }
