package admission

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrladmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
)

// events records Eventf calls as "type reason action note".
type events struct{ got []string }

func (e *events) Eventf(regarding, _ runtime.Object, eventtype, reason, action, note string, args ...any) {
	o := regarding.(client.Object)
	e.got = append(e.got, fmt.Sprintf("%s/%s %s %s %s %s", o.GetNamespace(), o.GetName(), eventtype, reason, action, fmt.Sprintf(note, args...)))
}

// brokeGlass records Recorder.BrokeGlass as "policy/namespace".
type brokeGlass struct {
	failures
	got []string
}

func (b *brokeGlass) BrokeGlass(policy, namespace string) {
	b.got = append(b.got, policy+"/"+namespace)
}

const hotfixTag = "registry.test/hotfix:v1" // unsigned; governed by "hotfix", which allows break-glass

// breakGlassJudge is testJudge with a policy "hotfix" allowing break-glass.
func breakGlassJudge(t *testing.T) (*Judge, *events, *brokeGlass) {
	t.Helper()
	j := testJudge(t, signed())
	j.Engine.Resolver.(tagResolver)[hotfixTag] = digestUnsigned
	hotfix := &v1alpha1.ClusterImagePolicy{Spec: v1alpha1.ClusterImagePolicySpec{
		Images: []v1alpha1.ImageGlob{{Glob: "registry.test/hotfix"}}, BreakGlass: &v1alpha1.BreakGlass{Allowed: true},
		Authorities: []v1alpha1.Authority{{Name: "ci", Key: &v1alpha1.KeyAuthority{KMS: "awskms:///alias/ci"}}},
	}}
	hotfix.Name = "hotfix"
	p, errs := policy.Compile(context.Background(), hotfix, func(context.Context, v1alpha1.Authority, []byte) (policy.Verifier, error) { return signed(), nil }, nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	policies := append(j.Policies(), p)
	j.Policies = func() []*policy.Policy { return policies }
	ev, rec := &events{}, &brokeGlass{}
	j.Events, j.Recorder = ev, rec
	return j, ev, rec
}

func annotated(o client.Object, reason string) client.Object {
	o.SetAnnotations(map[string]string{v1alpha1.BreakGlassAnnotation: reason})
	return o
}

// TestBreakGlassThroughTheWebhook sends requests through controller-runtime's
// validating handler: the warning, the Event, the metric and the log line
// with the requesting user, and the refusals.
func TestBreakGlassThroughTheWebhook(t *testing.T) {
	const reason = "INC-4711: signer down"
	hotfixAt := hotfixTag + "@" + digestUnsigned
	noSig := `no valid signature from authority "ci" (test key): no signature found. Sign this digest in your pipeline with one of the policy's authorities.`
	podWarning := `image ` + hotfixAt + ` (spec.containers[0].image) admitted by break-glass despite ClusterImagePolicy "hotfix": ` + noSig
	// Pinning is off in these tests: the pinned digest is also in a warning.
	tagMoves := func(path string) string {
		return `image ` + hotfixTag + ` (` + path + `) was admitted by break-glass at digest ` + digestUnsigned + ` despite Enforce ClusterImagePolicy "hotfix", but digest pinning is off and the tag can move: the kubelet may later pull another digest. Name the image by digest (` + hotfixAt + `) or install Signet's digest pinning`
	}
	podNote := `Admitted by break-glass despite ClusterImagePolicy "hotfix", requested by alice with reason "INC-4711: signer down": image ` + hotfixAt + ` (spec.containers[0].image).`
	deployment := deploymentWith(hotfixTag)
	deployment.Spec.Template.Annotations = map[string]string{v1alpha1.BreakGlassAnnotation: reason}
	ownOnly := annotated(deploymentWith(hotfixTag), reason)

	tests := []struct {
		name     string
		obj      client.Object
		dryRun   bool
		allowed  bool
		message  string
		warnings []string
		events   []string
		counted  []string
		logged   bool
	}{
		{
			name: "Pod admitted by break-glass", obj: annotated(podWith("apps", corev1.PodSpec{Containers: containers(hotfixTag)}), reason),
			allowed: true, warnings: []string{podWarning, tagMoves("spec.containers[0].image")},
			events:  []string{"apps/p Warning BreakGlass Admit " + podNote},
			counted: []string{"hotfix/apps"}, logged: true,
		},
		{
			name: "Deployment admitted through its Pod template's annotation", obj: deployment,
			allowed:  true,
			warnings: []string{strings.Replace(podWarning, "spec.containers", "spec.template.spec.containers", 1), tagMoves("spec.template.spec.containers[0].image")},
			events:   []string{"apps/d Warning BreakGlass Admit " + strings.Replace(podNote, "spec.containers", "spec.template.spec.containers", 1)},
			counted:  []string{"hotfix/apps"}, logged: true,
		},
		{
			name: "dry run: warned and logged, no Event, not counted", obj: annotated(podWith("apps", corev1.PodSpec{Containers: containers(hotfixTag)}), reason), dryRun: true,
			allowed: true, warnings: []string{podWarning, tagMoves("spec.containers[0].image")}, logged: true,
		},
		{
			name: "annotation on the Deployment itself: ignored, with a warning", obj: ownOnly,
			message:  `image ` + hotfixAt + ` (spec.template.spec.containers[0].image) denied by ClusterImagePolicy "hotfix": ` + noSig,
			warnings: []string{"annotation signet.dev/break-glass on the Deployment itself is ignored: set it in spec.template.metadata.annotations, so the Pods it creates carry it too"},
		},
		{
			name: "a policy without opt-in ignores the annotation and says so", obj: annotated(podWith("apps", corev1.PodSpec{Containers: containers(unsignedTag)}), reason),
			message: `image ` + unsignedTag + `@` + digestUnsigned + ` (spec.containers[0].image) denied by ClusterImagePolicy "prod": ` + noSig +
				` Break-glass does not apply: ClusterImagePolicy "prod" does not allow it (spec.breakGlass.allowed is not true).`,
		},
		{
			name: "too short a reason is refused", obj: annotated(podWith("apps", corev1.PodSpec{Containers: containers(hotfixTag)}), "hotfix"),
			message: `annotation signet.dev/break-glass in metadata.annotations: break-glass reason "hotfix" is too short (6 characters, at least 10): say why the images must run unverified, e.g. "INC-4711: signing service down, hotfix for checkout"`,
		},
		{
			name: "an empty reason is refused", obj: annotated(podWith("apps", corev1.PodSpec{Containers: containers(signedTag + "@" + digestSigned)}), ""),
			message: `annotation signet.dev/break-glass in metadata.annotations: break-glass needs a reason: say why the images must run unverified, e.g. "INC-4711: signing service down, hotfix for checkout"`,
		},
		{
			name: "signed images need no break-glass: nothing recorded", obj: annotated(podWith("apps", corev1.PodSpec{Containers: containers(signedTag + "@" + digestSigned)}), reason),
			allowed: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, ev, rec := breakGlassJudge(t)
			core, logs := observer.New(zapcore.InfoLevel)
			var hook *ctrladmission.Webhook
			if _, ok := tt.obj.(*corev1.Pod); ok {
				hook = ctrladmission.WithValidator[*corev1.Pod](testScheme(t), Validator[*corev1.Pod]{Judge: j})
			} else {
				hook = MustKind("deployments").newValidator(testScheme(t), j)
			}
			hook.LogConstructor = func(logr.Logger, *ctrladmission.Request) logr.Logger { return zapr.NewLogger(zap.New(core)) }
			req := request(t, admissionv1.Create, tt.obj, nil, "")
			req.UserInfo = authenticationv1.UserInfo{Username: "alice", Groups: []string{"oncall", "system:authenticated"}}
			req.DryRun = &tt.dryRun
			resp := hook.Handle(context.Background(), req)
			if resp.Allowed != tt.allowed {
				t.Fatalf("allowed %v (%v), want %v", resp.Allowed, resp.Result, tt.allowed)
			}
			if !tt.allowed && resp.Result.Message != tt.message {
				t.Errorf("denial\n got: %s\nwant: %s", resp.Result.Message, tt.message)
			}
			if w := resp.Warnings; !reflect.DeepEqual(w, tt.warnings) && len(w)+len(tt.warnings) > 0 {
				t.Errorf("warnings\n got: %q\nwant: %q", w, tt.warnings)
			}
			if !reflect.DeepEqual(ev.got, tt.events) {
				t.Errorf("events\n got: %q\nwant: %q", ev.got, tt.events)
			}
			if !reflect.DeepEqual(rec.got, tt.counted) {
				t.Errorf("counted %q, want %q", rec.got, tt.counted)
			}
			lines := logs.FilterMessage("admitted by break-glass").All()
			if !tt.logged {
				if len(lines) != 0 {
					t.Fatalf("logged %v", lines)
				}
				return
			}
			if len(lines) != 1 || lines[0].Level != zapcore.WarnLevel {
				t.Fatalf("want one warning-level line, got %+v", lines)
			}
			fields := lines[0].ContextMap()
			wantFields := map[string]any{
				"username": "alice", "groups": []any{"oncall", "system:authenticated"}, "reason": reason,
				"policies": []any{"hotfix"}, "images": []any{hotfixAt}, "dryRun": tt.dryRun, "objectName": tt.obj.GetName(),
			}
			for k, want := range wantFields {
				if got := fields[k]; fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("log field %s = %v, want %v", k, got, want)
				}
			}
		})
	}
}

// TestPinnerPinsBrokenGlass: the image admitted by break-glass is pinned to
// the digest that was judged.
func TestPinnerPinsBrokenGlass(t *testing.T) {
	j, _, _ := breakGlassJudge(t)
	pod := annotated(podWith("apps", corev1.PodSpec{Containers: containers(hotfixTag)}), "INC-4711: signer down")
	resp := NewPinner(testScheme(t), j).Handle(context.Background(), request(t, admissionv1.Create, pod, nil, ""))
	if len(resp.Patches) != 1 || resp.Patches[0].Path != "/spec/containers/0/image" || resp.Patches[0].Value != hotfixTag+"@"+digestUnsigned {
		t.Fatalf("patches %+v, want the image pinned to %s", resp.Patches, digestUnsigned)
	}
}
