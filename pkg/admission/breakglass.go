package admission

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrladmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
)

// EventRecorder records Events on admitted objects: the recorder
// controller-runtime's manager gives (events.k8s.io/v1).
type EventRecorder interface {
	Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

// Event reason and action of a break-glass admission.
const (
	EventReasonBreakGlass = "BreakGlass"
	eventActionAdmit      = "Admit"
	// maxEventNote is the API server's limit on an Event's note.
	maxEventNote = 1024
)

// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// breakGlassOf reads the break-glass reason of obj from the metadata of
// the Pods it runs: a Pod's own annotations, a workload's Pod template's,
// so the Pods a workload creates carry the annotation to their own
// admission. The annotation on a workload's own metadata only is ignored,
// with a warning saying where it belongs. A reason that is empty or too
// short is an error: the request is refused.
func breakGlassOf(obj client.Object) (reason, warning string, err error) {
	annotations, path := podAnnotationsOf(obj)
	raw, ok := annotations[v1alpha1.BreakGlassAnnotation]
	if !ok {
		if _, own := obj.GetAnnotations()[v1alpha1.BreakGlassAnnotation]; own && path != "metadata.annotations" {
			warning = fmt.Sprintf("annotation %s on the %s itself is ignored: set it in %s, so the Pods it creates carry it too",
				v1alpha1.BreakGlassAnnotation, kindName(obj), path)
		}
		return "", warning, nil
	}
	reason, err = policy.BreakGlassReason(raw)
	if err != nil {
		return "", "", fmt.Errorf("annotation %s in %s: %w", v1alpha1.BreakGlassAnnotation, path, err)
	}
	return reason, "", nil
}

// podAnnotationsOf returns the annotations of the Pods obj runs and their
// field path, found beside the Pod spec that Kinds names.
func podAnnotationsOf(obj client.Object) (map[string]string, string) {
	for _, k := range Kinds {
		if _, ok := k.podSpec(obj); !ok {
			continue
		}
		meta := append(slices.Clone(k.SpecPath[:len(k.SpecPath)-1]), "metadata", "annotations")
		path := strings.Join(meta, ".")
		if len(meta) == 2 { // a Pod
			return obj.GetAnnotations(), path
		}
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return nil, path
		}
		annotations, _, _ := unstructured.NestedStringMap(u, meta...)
		return annotations, path
	}
	return nil, ""
}

func kindName(obj client.Object) string {
	if k := obj.GetObjectKind().GroupVersionKind().Kind; k != "" {
		return k
	}
	return "object"
}

// recordBreakGlass leaves the audit trail of an admission that break-glass
// allowed: a warning-level log line naming who asked and what ran, an
// Event on the object and the break-glass metric. A dry run is only logged.
func (j *Judge) recordBreakGlass(ctx context.Context, log logr.Logger, obj client.Object, reason string, images []policy.ImageDecision) {
	var refs, policies []string
	for _, id := range images {
		refs = append(refs, pinnedRef(id))
		for _, p := range id.BrokenGlass() {
			if !slices.Contains(policies, p) {
				policies = append(policies, p)
			}
		}
	}
	req, _ := ctrladmission.RequestFromContext(ctx)
	dryRun := req.DryRun != nil && *req.DryRun
	// controller-runtime's request logger already carries namespace, name
	// (empty for a generated name) and user; these keys do not repeat them.
	warn(log, "admitted by break-glass",
		"username", req.UserInfo.Username, "groups", req.UserInfo.Groups,
		"reason", reason, "policies", policies, "images", refs,
		"kind", kindName(obj), "objectName", obj.GetName(), "dryRun", dryRun)
	if dryRun {
		return
	}
	if j.Events != nil {
		j.Events.Eventf(obj, nil, corev1.EventTypeWarning, EventReasonBreakGlass, eventActionAdmit, "%s", breakGlassNote(reason, req.UserInfo.Username, policies, images))
	}
	if j.Recorder != nil {
		for _, p := range policies {
			j.Recorder.BrokeGlass(p, obj.GetNamespace())
		}
	}
}

// breakGlassNote is the Event's note: `Admitted by break-glass despite
// ClusterImagePolicy "prod", requested by alice with reason "INC-4711: …":
// image reg/app:v1@sha256:… (spec.containers[0].image).`
func breakGlassNote(reason, user string, policies []string, images []policy.ImageDecision) string {
	quoted := make([]string, len(policies))
	for i, p := range policies {
		quoted[i] = strconv.Quote(p)
	}
	var refs []string
	for _, id := range images {
		refs = append(refs, fmt.Sprintf("%s (%s)", pinnedRef(id), id.Path))
	}
	note := fmt.Sprintf("Admitted by break-glass despite ClusterImagePolicy %s, requested by %s with reason %q: image %s.",
		strings.Join(quoted, ", "), user, reason, strings.Join(refs, ", image "))
	if len(note) > maxEventNote {
		note = strings.ToValidUTF8(note[:maxEventNote-len("…")], "") + "…"
	}
	return note
}

// pinnedRef is the image as admitted: its reference with the digest judged.
func pinnedRef(id policy.ImageDecision) string {
	if id.Digest == "" || strings.Contains(id.Image, "@") {
		return id.Image
	}
	return id.Image + "@" + id.Digest
}

// warn logs at zap's warning level when the logger is zap's (the
// webhook's); logr has no warning level, so any other logger gets Info.
func warn(log logr.Logger, msg string, kv ...any) {
	if u, ok := log.GetSink().(zapr.Underlier); ok {
		u.GetUnderlying().Sugar().Warnw(msg, kv...)
		return
	}
	log.Info(msg, kv...)
}
