// Package admission turns Kubernetes admission requests for Pods and the
// workloads that create them into policy decisions, and decisions into
// admission responses. It talks to no registry or AWS itself: the policy
// engine and its verifiers do.
package admission

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	ctrladmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/workload"
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
	// Ready reports whether Signet can judge at all (its policy snapshot is
	// compiled); nil is always ready. Until it is, requests get 503.
	Ready func(context.Context) error
	// Pinning reports whether digest pinning is installed for a kind: the
	// pinning webhook is served and its MutatingWebhookConfiguration calls
	// it. Nil: not installed.
	Pinning func(Kind) bool
	// Recorder counts decisions (the metrics package); nil counts nothing.
	Recorder Recorder
	// Events records an Event on every object admitted by break-glass;
	// nil records none.
	Events EventRecorder

	// keychains shares pull secrets read for one admission with the next
	// ones from the same namespace and service account.
	keychains keychains
}

// Recorder is told every decision the Judge makes, and every request it
// could not decide because Signet itself failed.
type Recorder interface {
	Decided(policy.Decision)
	Failed(reason string)
	// BrokeGlass counts an object admitted by break-glass despite a policy.
	BrokeGlass(policy, namespace string)
}

// Reasons Signet could not decide (the metrics' error reasons).
const (
	FailedNotReady  = "not_ready"
	FailedNamespace = "namespace_read"
	FailedBusy      = "busy"
)

// unavailable is Signet's own failure, never the image's: 503 Service
// Unavailable with what failed and a retry hint, which controller-runtime
// sends as the API status instead of a 403 denial.
func (j *Judge) unavailable(reason, msg string) error {
	if j.Recorder != nil {
		j.Recorder.Failed(reason)
	}
	return apierrors.NewServiceUnavailable(msg + ". This is Signet's failure, not the image's: retry; if it persists, check Signet's logs (kubectl -n <signet namespace> logs deploy/signet)")
}

// toJudge returns the images this request needs judged, with the Pod spec
// that holds them: every image on CREATE (old nil), the new or changed ones
// on UPDATE (an unchanged image was judged when it was set), none for an
// exempt namespace or an object that runs no Pods. The validators and the
// pinner both ask it, so they always judge the same images.
func (j *Judge) toJudge(obj, old client.Object) (*corev1.PodSpec, []policy.ImageRef) {
	if j.Exempt[obj.GetNamespace()] {
		return nil, nil
	}
	spec, path, ok := PodSpecOf(obj)
	if !ok {
		return nil, nil
	}
	if old == nil {
		return spec, workload.Images(spec, path)
	}
	oldSpec, _, ok := PodSpecOf(old)
	if !ok {
		return spec, workload.Images(spec, path)
	}
	return spec, workload.ChangedImages(spec, oldSpec, path)
}

// judge decides the images obj needs judged (see toJudge); a denial is an
// error the controller-runtime validator turns into a 403 with its message,
// Signet's own failures are 503s, and warnings are shown by kubectl either way.
func (j *Judge) judge(ctx context.Context, obj, old client.Object) (ctrladmission.Warnings, error) {
	spec, images := j.toJudge(obj, old)
	if len(images) == 0 {
		return nil, nil
	}
	log := logf.FromContext(ctx)
	begin := time.Now()
	reason, misplaced, err := breakGlassOf(obj)
	if err != nil {
		return nil, err // a denial: the request asked for break-glass without a reason
	}
	d, err := j.decide(ctx, obj, spec, images, reason)
	if err != nil {
		return nil, err
	}
	pinned := j.Pinning != nil && j.pinningInstalled(obj)
	warnings, denials := d.Warnings(), d.Denials()
	if misplaced != "" {
		warnings = append(warnings, misplaced)
	}
	if d.Allowed() {
		for _, id := range d.Images {
			if !enforcedTag(id) {
				continue
			}
			if pinned {
				denials = append(denials, notPinned(id))
			} else {
				warnings = append(warnings, tagMayMove(id))
			}
		}
	}
	if j.Recorder != nil {
		j.Recorder.Decided(d)
	}
	if broken := d.BreakGlass(); len(broken) > 0 && len(denials) == 0 {
		j.recordBreakGlass(ctx, log, obj, reason, broken)
	}
	log.Info("admission decided", "allowed", len(denials) == 0, "images", len(images), "denied", len(denials), "warned", len(warnings), "duration", time.Since(begin))
	if len(denials) > 0 {
		// One line per denied image; kubectl prints it after "denied the request: ".
		return warnings, fmt.Errorf("%s", strings.Join(denials, "\n"))
	}
	return warnings, nil
}

// pinningInstalled reports whether obj's kind has digest pinning installed.
func (j *Judge) pinningInstalled(obj client.Object) bool {
	for _, k := range Kinds {
		if _, ok := k.podSpec(obj); ok {
			return j.Pinning(k)
		}
	}
	return false
}

// decide evaluates images of obj within VerifyTimeout. The validators and
// the pinning webhook both decide through it, with the same engine and
// verdict cache: whichever runs second is answered from the cache.
// reason is the object's break-glass reason ("" for none).
func (j *Judge) decide(ctx context.Context, obj client.Object, spec *corev1.PodSpec, images []policy.ImageRef, reason string) (policy.Decision, error) {
	ctx, cancel := context.WithTimeout(ctx, j.VerifyTimeout)
	defer cancel()
	if j.Ready != nil {
		if err := j.Ready(ctx); err != nil {
			return policy.Decision{}, j.unavailable(FailedNotReady, fmt.Sprintf("Signet is not ready to judge images: %v", err))
		}
	}
	objCtx := policy.ObjectContext{Namespace: obj.GetNamespace(), Labels: obj.GetLabels()}
	if ns := obj.GetNamespace(); ns != "" {
		nsObj := &corev1.Namespace{}
		if err := j.Namespaces.Get(ctx, types.NamespacedName{Name: ns}, nsObj); err != nil {
			// Without labels, namespace selectors cannot be evaluated: fail closed.
			return policy.Decision{}, j.unavailable(FailedNamespace, fmt.Sprintf("Signet could not read namespace %q to apply ClusterImagePolicy namespace selectors: %v", ns, err))
		}
		objCtx.NamespaceLabels = nsObj.Labels
	}
	kc, kcID := pullSecretKeychain(&j.keychains, j.PullSecrets, obj.GetNamespace(), spec)
	d := j.Engine.Evaluate(ctx, j.Policies(), policy.Request{Images: images, Object: objCtx, Keychain: kc, KeychainID: kcID, BreakGlass: reason})
	if busy := d.Busy(); busy != "" && !d.Allowed() {
		return policy.Decision{}, j.unavailable(FailedBusy, busy)
	}
	return d, nil
}

// Validator judges one Pod-bearing kind T (Pod, Deployment, …): CREATE
// judges every image, UPDATE the images that changed (including ephemeral
// containers added by `kubectl debug`), DELETE nothing.
type Validator[T client.Object] struct {
	Judge *Judge
}

// ValidateCreate implements ctrladmission.Validator.
func (v Validator[T]) ValidateCreate(ctx context.Context, obj T) (ctrladmission.Warnings, error) {
	return v.Judge.judge(ctx, obj, nil)
}

// ValidateUpdate implements ctrladmission.Validator.
func (v Validator[T]) ValidateUpdate(ctx context.Context, oldObj, newObj T) (ctrladmission.Warnings, error) {
	return v.Judge.judge(ctx, newObj, oldObj)
}

// ValidateDelete implements ctrladmission.Validator.
func (Validator[T]) ValidateDelete(context.Context, T) (ctrladmission.Warnings, error) {
	return nil, nil
}
