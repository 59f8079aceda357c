package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/signet-dev/signet/pkg/policy"
)

// Paths the digest-pinning (mutating) webhook is served on, one per
// Pod-bearing kind like the validators'.
const (
	PathPinPods                   = "/pin/pods"
	PathPinDeployments            = "/pin/deployments"
	PathPinReplicaSets            = "/pin/replicasets"
	PathPinStatefulSets           = "/pin/statefulsets"
	PathPinDaemonSets             = "/pin/daemonsets"
	PathPinJobs                   = "/pin/jobs"
	PathPinCronJobs               = "/pin/cronjobs"
	PathPinReplicationControllers = "/pin/replicationcontrollers"
)

// RegisterPinning serves the digest-pinning webhook for every Pod-bearing
// kind on srv. A nil j turns pinning off (--digest-pinning=false): the
// paths still answer, admitting without a patch, so a
// MutatingWebhookConfiguration left in place never stops Pods.
func RegisterPinning(srv webhook.Server, scheme *runtime.Scheme, j *Judge) {
	for _, path := range []string{
		PathPinPods, PathPinDeployments, PathPinReplicaSets, PathPinStatefulSets,
		PathPinDaemonSets, PathPinJobs, PathPinCronJobs, PathPinReplicationControllers,
	} {
		srv.Register(path, &admission.Webhook{Handler: NewPinner(scheme, j)})
	}
}

// Pinner is the digest-pinning webhook: it rewrites every image that a
// governing policy admitted by tag to "repo:tag@sha256:…" (the tag stays,
// for people), so the kubelet pulls exactly the manifest that was verified
// and a tag moved afterwards changes nothing.
//
// Mutating webhooks run before validating ones: the Pinner decides with
// the validators' Judge (same engine, same verdict cache), and the
// validating webhook that follows finds the verdict in the cache. The
// Pinner never denies: on any error it admits without a patch and leaves
// the decision to the validating webhook. Denied, warned, ungoverned and
// already-digested images are never touched.
type Pinner struct {
	judge   *Judge
	scheme  *runtime.Scheme
	decoder admission.Decoder
}

// NewPinner builds a Pinner deciding with j; nil j pins nothing.
func NewPinner(scheme *runtime.Scheme, j *Judge) *Pinner {
	return &Pinner{judge: j, scheme: scheme, decoder: admission.NewDecoder(scheme)}
}

// Handle implements admission.Handler.
func (p *Pinner) Handle(ctx context.Context, req admission.Request) admission.Response {
	log := logf.FromContext(ctx)
	pins, err := p.pins(ctx, req)
	if err == nil && len(pins) > 0 {
		var patched []byte
		if patched, err = setStrings(req.Object.Raw, pins); err == nil {
			if resp := admission.PatchResponseFromRaw(req.Object.Raw, patched); resp.Allowed {
				log.Info("images pinned to digests", "pinned", len(pins))
				return resp
			}
			err = fmt.Errorf("could not compute the patch")
		}
	}
	if err != nil {
		// The validating webhook decides; pinning only ever adds safety.
		log.Info("images not pinned", "error", err.Error())
	}
	return admission.Allowed("")
}

// pins returns the new value of each image field to pin, by field path.
func (p *Pinner) pins(ctx context.Context, req admission.Request) (map[string]string, error) {
	if p.judge == nil || req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return nil, nil
	}
	obj, err := p.decode(req, req.Object)
	if err != nil {
		return nil, err
	}
	spec, path, ok := PodSpecOf(obj)
	if !ok {
		return nil, nil
	}
	images := Images(spec, path)
	if req.Operation == admissionv1.Update {
		// As the validators: only new or changed images are judged.
		old, err := p.decode(req, req.OldObject)
		if err != nil {
			return nil, err
		}
		oldSpec, _, _ := PodSpecOf(old)
		images = ChangedImages(spec, oldSpec, path)
	}
	if len(images) == 0 || p.judge.Exempt[obj.GetNamespace()] {
		return nil, nil
	}
	d, err := p.judge.decide(ctx, obj, spec, images)
	if err != nil {
		return nil, err
	}
	pins := map[string]string{}
	for _, id := range d.Images {
		if pinnable(id) {
			pins[id.Path] = id.Image + "@" + id.Digest
		}
	}
	return pins, nil
}

// pinnable: admitted by the policies that govern it (not by the no-match
// policy, not with a warning), named by a tag that was resolved to the
// digest that was verified.
func pinnable(id policy.ImageDecision) bool {
	return id.Verdict == policy.VerdictAdmitted && !id.NoMatch && id.Digest != "" && id.Resolved
}

// decode reads raw as the request's kind.
func (p *Pinner) decode(req admission.Request, raw runtime.RawExtension) (client.Object, error) {
	gvk := schema.GroupVersionKind{Group: req.Kind.Group, Version: req.Kind.Version, Kind: req.Kind.Kind}
	o, err := p.scheme.New(gvk)
	if err != nil {
		return nil, err
	}
	obj, ok := o.(client.Object)
	if !ok {
		return nil, fmt.Errorf("%s is not an object", gvk)
	}
	if err := p.decoder.DecodeRaw(raw, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// setStrings sets string fields of a JSON object, each named by a field
// path as Images reports it ("spec.template.spec.containers[0].image").
// It edits the JSON as sent, not a re-encoded typed object, so fields this
// build of Signet does not know survive and the patch holds only the pins.
func setStrings(raw []byte, values map[string]string) ([]byte, error) {
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	for path, value := range values {
		if err := setString(doc, path, value); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return json.Marshal(doc)
}

func setString(doc any, path string, value string) error {
	var steps []any // string keys and int indexes
	for _, part := range strings.Split(path, ".") {
		key, index, indexed := strings.Cut(part, "[")
		steps = append(steps, key)
		if indexed {
			i, err := strconv.Atoi(strings.TrimSuffix(index, "]"))
			if err != nil {
				return err
			}
			steps = append(steps, i)
		}
	}
	node := doc
	for n, step := range steps {
		last := n == len(steps)-1
		switch s := step.(type) {
		case string:
			m, ok := node.(map[string]any)
			if !ok || m[s] == nil {
				return fmt.Errorf("no field %q", s)
			}
			if last {
				m[s] = value
				return nil
			}
			node = m[s]
		case int:
			l, ok := node.([]any)
			if !ok || s >= len(l) {
				return fmt.Errorf("no item %d", s)
			}
			if last {
				l[s] = value
				return nil
			}
			node = l[s]
		}
	}
	return nil
}
