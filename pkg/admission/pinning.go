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
	ctrladmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/signet-dev/signet/pkg/policy"
)

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
	decoder ctrladmission.Decoder
}

// NewPinner builds a Pinner deciding with j; nil j pins nothing.
func NewPinner(scheme *runtime.Scheme, j *Judge) *Pinner {
	return &Pinner{judge: j, scheme: scheme, decoder: ctrladmission.NewDecoder(scheme)}
}

// Handle implements ctrladmission.Handler.
func (p *Pinner) Handle(ctx context.Context, req ctrladmission.Request) ctrladmission.Response {
	log := logf.FromContext(ctx)
	pins, err := p.pins(ctx, req)
	if err == nil && len(pins) > 0 {
		var patched []byte
		if patched, err = setStrings(req.Object.Raw, pins); err == nil {
			if resp := ctrladmission.PatchResponseFromRaw(req.Object.Raw, patched); resp.Allowed {
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
	return ctrladmission.Allowed("")
}

// pins returns the new value of each image field to pin, by field path.
func (p *Pinner) pins(ctx context.Context, req ctrladmission.Request) (map[string]string, error) {
	if p.judge == nil || req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return nil, nil
	}
	obj, err := p.decode(req, req.Object)
	if err != nil {
		return nil, err
	}
	var old client.Object
	if req.Operation == admissionv1.Update {
		if old, err = p.decode(req, req.OldObject); err != nil {
			return nil, err
		}
	}
	spec, images := p.judge.toJudge(obj, old)
	if len(images) == 0 {
		return nil, nil
	}
	// The validating webhook refuses a bad reason; the pinner pins what
	// the validator will admit, so a broken glass is pinned too.
	reason, _, err := breakGlassOf(obj)
	if err != nil {
		return nil, err
	}
	d, err := p.judge.decide(ctx, obj, spec, images, reason)
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

// pinnable: governed by a policy (not decided by the no-match policy), not
// denied, and named by a tag that was resolved to the digest judged. A
// Warn-mode failure does not prevent the pin: what was judged is what runs.
func pinnable(id policy.ImageDecision) bool {
	return id.Verdict != policy.VerdictDenied && !id.NoMatch && id.Digest != "" && id.Resolved
}

// enforcedTag: an image that Enforce policies admitted while it is named
// by a tag only. With pinning installed it should have arrived pinned; the
// validator does not admit the tag, which could point elsewhere by the time
// the kubelet pulls.
func enforcedTag(id policy.ImageDecision) bool {
	return pinnable(id) && len(id.Enforcers()) > 0
}

// notPinned denies an enforced tag that digest pinning left unpinned (the
// pinning webhook timed out, or the tag moved between the two webhooks).
func notPinned(id policy.ImageDecision) string {
	judged := "verified"
	if id.Verdict == policy.VerdictBreakGlass {
		judged = "admitted by break-glass"
	}
	return fmt.Sprintf("image %s (%s) is governed by %s and was %s at digest %s, but it arrives named by tag only: Signet's digest-pinning webhook did not pin it, and the tag could point to another digest when the kubelet pulls. Retry, or name the image by digest: %s@%s",
		id.Image, id.Path, enforcers(id), judged, id.Digest, id.Image, id.Digest)
}

// tagMayMove warns about an enforced tag when digest pinning is off.
func tagMayMove(id policy.ImageDecision) string {
	if id.Verdict == policy.VerdictBreakGlass {
		return fmt.Sprintf("image %s (%s) was admitted by break-glass at digest %s despite %s, but digest pinning is off and the tag can move: the kubelet may later pull another digest. Name the image by digest (%s@%s) or install Signet's digest pinning",
			id.Image, id.Path, id.Digest, enforcers(id), id.Image, id.Digest)
	}
	return fmt.Sprintf("image %s (%s) was verified at digest %s by %s, but digest pinning is off and the tag can move: the kubelet may later pull a digest nobody verified. Name the image by digest (%s@%s) or install Signet's digest pinning",
		id.Image, id.Path, id.Digest, enforcers(id), id.Image, id.Digest)
}

func enforcers(id policy.ImageDecision) string {
	names := id.Enforcers()
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = strconv.Quote(n)
	}
	return "Enforce ClusterImagePolicy " + strings.Join(quoted, ", ")
}

// decode reads raw as the request's kind.
func (p *Pinner) decode(req ctrladmission.Request, raw runtime.RawExtension) (client.Object, error) {
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
