package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	ctrladmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
)

const (
	digestSigned   = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	digestUnsigned = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	signedTag      = "registry.test/app:v1"
	unsignedTag    = "registry.test/app:unsigned"
)

// tagResolver resolves the tags it knows; any other tag is a registry error.
type tagResolver map[string]string

func (r tagResolver) Resolve(_ context.Context, ref name.Reference, _ authn.Keychain) (name.Digest, error) {
	d, ok := r[ref.String()]
	if !ok {
		return name.Digest{}, errors.New("registry unavailable")
	}
	return ref.Context().Digest(d), nil
}

// digestVerifier verifies the digests it lists and counts its work.
type digestVerifier struct {
	signed map[string]bool
	calls  atomic.Int32
}

func (v *digestVerifier) Verify(_ context.Context, img policy.Image) policy.Result {
	v.calls.Add(1)
	r := policy.Result{Image: img.Ref.String(), Authority: v.Describe(), Reason: policy.ReasonNoSignature, Cause: "no signature found"}
	if v.signed[img.Ref.DigestStr()] {
		r.Reason, r.Cause = policy.ReasonVerified, ""
	}
	return r
}
func (v *digestVerifier) Identity() string { return "test;key" }
func (v *digestVerifier) Describe() string { return "test key" }

func testPolicy(t *testing.T, name, glob string, mode v1alpha1.PolicyMode, v policy.Verifier) *policy.Policy {
	t.Helper()
	cip := &v1alpha1.ClusterImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.ClusterImagePolicySpec{
		Mode: mode, Images: []v1alpha1.ImageGlob{{Glob: glob}},
		Authorities: []v1alpha1.Authority{{Name: "ci", Key: &v1alpha1.KeyAuthority{KMS: "awskms:///alias/ci"}}},
	}}
	p, errs := policy.Compile(context.Background(), cip, func(context.Context, v1alpha1.Authority, []byte) (policy.Verifier, error) { return v, nil }, nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return p
}

// testJudge decides with a real Engine and verdict cache: registry.test/app
// is governed by an Enforce policy, registry.test/warn by a Warn policy,
// registry.test/both by an Enforce policy (v) and a Warn policy nothing
// satisfies, anything else by none (allowed); kube-system is exempt.
func testJudge(t *testing.T, v *digestVerifier) *Judge {
	t.Helper()
	scheme := testScheme(t)
	policies := []*policy.Policy{
		testPolicy(t, "prod", "registry.test/app", v1alpha1.ModeEnforce, v),
		testPolicy(t, "audit", "registry.test/warn", v1alpha1.ModeWarn, v),
		testPolicy(t, "both-enforce", "registry.test/both", v1alpha1.ModeEnforce, v),
		testPolicy(t, "both-audit", "registry.test/both", v1alpha1.ModeWarn, &digestVerifier{}),
	}
	return &Judge{
		Engine: &policy.Engine{
			Cache: policy.NewVerdictCache(policy.CacheOptions{}),
			Resolver: tagResolver{
				"registry.test/app:v1": digestSigned, "registry.test/app:unsigned": digestUnsigned,
				"registry.test/warn:v1": digestSigned, "registry.test/warn:unsigned": digestUnsigned,
				"registry.test/free:v1": digestSigned, "registry.test/both:v1": digestSigned,
			},
			NoMatch: policy.NoMatchAllow,
		},
		Policies:      func() []*policy.Policy { return policies },
		Namespaces:    fake.NewClientBuilder().WithScheme(scheme).WithObjects(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}}).Build(),
		Exempt:        map[string]bool{"kube-system": true},
		VerifyTimeout: 5 * time.Second,
	}
}

func testScheme(t testing.TB) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func containers(images ...string) []corev1.Container {
	var out []corev1.Container
	for i, img := range images {
		out = append(out, corev1.Container{Name: string(rune('a' + i)), Image: img})
	}
	return out
}

func podWith(ns string, spec corev1.PodSpec) *corev1.Pod {
	return &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: ns}, Spec: spec}
}

func deploymentWith(images ...string) *appsv1.Deployment {
	return &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}, ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "apps"},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: containers(images...)}}}}
}

func raw(t *testing.T, obj any) runtime.RawExtension {
	t.Helper()
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return runtime.RawExtension{Raw: b}
}

func request(t *testing.T, op admissionv1.Operation, obj, old client.Object, subresource string) ctrladmission.Request {
	t.Helper()
	gvk := obj.GetObjectKind().GroupVersionKind()
	req := admissionv1.AdmissionRequest{
		UID: "uid", Operation: op, Namespace: obj.GetNamespace(), Name: obj.GetName(), SubResource: subresource,
		Kind:   metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
		Object: raw(t, obj),
	}
	if old != nil {
		req.OldObject = raw(t, old)
	}
	return ctrladmission.Request{AdmissionRequest: req}
}

// replace is a JSON patch operation as the tests compare them.
func replace(path, value string) string { return "replace " + path + " " + value }

func TestPinnerPatches(t *testing.T) {
	signedPinned := signedTag + "@" + digestSigned
	pinnedPod := podWith("apps", corev1.PodSpec{Containers: containers(signedPinned)})
	withEphemeral := pinnedPod.DeepCopy()
	withEphemeral.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: signedTag}}}
	cron := &batchv1.CronJob{TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "CronJob"}, ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "apps"},
		Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: containers(signedTag)}}}}}}

	tests := []struct {
		name string
		req  func(t *testing.T) ctrladmission.Request
		want []string
	}{
		{
			name: "signed tag is pinned, tag kept",
			req: func(t *testing.T) ctrladmission.Request {
				return request(t, admissionv1.Create, podWith("apps", corev1.PodSpec{Containers: containers(signedTag)}), nil, "")
			},
			want: []string{replace("/spec/containers/0/image", signedPinned)},
		},
		{
			name: "every container list; only admitted images; a repeated image pinned everywhere",
			req: func(t *testing.T) ctrladmission.Request {
				return request(t, admissionv1.Create, podWith("apps", corev1.PodSpec{
					InitContainers: containers(signedTag),
					Containers:     containers(unsignedTag, signedTag, "registry.test/free:v1", signedPinned),
				}), nil, "")
			},
			want: []string{
				replace("/spec/containers/1/image", signedPinned),
				replace("/spec/initContainers/0/image", signedPinned),
			},
		},
		{
			name: "unsigned image: no patch (the validating webhook denies)",
			req: func(t *testing.T) ctrladmission.Request {
				return request(t, admissionv1.Create, podWith("apps", corev1.PodSpec{Containers: containers(unsignedTag)}), nil, "")
			},
		},
		{
			name: "already digested: untouched",
			req:  func(t *testing.T) ctrladmission.Request { return request(t, admissionv1.Create, pinnedPod, nil, "") },
		},
		{
			name: "no policy governs the image: untouched",
			req: func(t *testing.T) ctrladmission.Request {
				return request(t, admissionv1.Create, podWith("apps", corev1.PodSpec{Containers: containers("registry.test/free:v1")}), nil, "")
			},
		},
		{
			name: "Warn policy satisfied: pinned",
			req: func(t *testing.T) ctrladmission.Request {
				return request(t, admissionv1.Create, podWith("apps", corev1.PodSpec{Containers: containers("registry.test/warn:v1")}), nil, "")
			},
			want: []string{replace("/spec/containers/0/image", "registry.test/warn:v1@"+digestSigned)},
		},
		{
			// What is judged is what runs: a Warn failure never stops the
			// image, so it must not leave the tag free to move either.
			name: "Warn policy not satisfied (admitted with a warning): pinned to the digest judged",
			req: func(t *testing.T) ctrladmission.Request {
				return request(t, admissionv1.Create, podWith("apps", corev1.PodSpec{Containers: containers("registry.test/warn:unsigned")}), nil, "")
			},
			want: []string{replace("/spec/containers/0/image", "registry.test/warn:unsigned@"+digestUnsigned)},
		},
		{
			name: "Enforce policy satisfied, Warn policy on the same image not: pinned",
			req: func(t *testing.T) ctrladmission.Request {
				return request(t, admissionv1.Create, podWith("apps", corev1.PodSpec{Containers: containers("registry.test/both:v1")}), nil, "")
			},
			want: []string{replace("/spec/containers/0/image", "registry.test/both:v1@"+digestSigned)},
		},
		{
			name: "image volume by tag: pinned",
			req: func(t *testing.T) ctrladmission.Request {
				return request(t, admissionv1.Create, podWith("apps", corev1.PodSpec{
					Containers: containers(signedPinned),
					Volumes:    []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: signedTag}}}},
				}), nil, "")
			},
			want: []string{replace("/spec/volumes/0/image/reference", signedPinned)},
		},
		{
			name: "registry down: no patch, no denial",
			req: func(t *testing.T) ctrladmission.Request {
				return request(t, admissionv1.Create, podWith("apps", corev1.PodSpec{Containers: containers("registry.test/app:unknown")}), nil, "")
			},
		},
		{
			name: "exempt namespace: untouched",
			req: func(t *testing.T) ctrladmission.Request {
				return request(t, admissionv1.Create, podWith("kube-system", corev1.PodSpec{Containers: containers(signedTag)}), nil, "")
			},
		},
		{
			name: "namespace cannot be read: no patch, no denial",
			req: func(t *testing.T) ctrladmission.Request {
				return request(t, admissionv1.Create, podWith("gone", corev1.PodSpec{Containers: containers(signedTag)}), nil, "")
			},
		},
		{
			name: "deployment template",
			req: func(t *testing.T) ctrladmission.Request {
				return request(t, admissionv1.Create, deploymentWith(signedTag), nil, "")
			},
			want: []string{replace("/spec/template/spec/containers/0/image", signedPinned)},
		},
		{
			name: "cronjob template",
			req:  func(t *testing.T) ctrladmission.Request { return request(t, admissionv1.Create, cron, nil, "") },
			want: []string{replace("/spec/jobTemplate/spec/template/spec/containers/0/image", signedPinned)},
		},
		{
			name: "update: only changed images are pinned",
			req: func(t *testing.T) ctrladmission.Request {
				return request(t, admissionv1.Update, deploymentWith(signedTag, signedTag), deploymentWith(signedTag, "registry.test/app:v0"), "")
			},
			want: []string{replace("/spec/template/spec/containers/1/image", signedPinned)},
		},
		{
			name: "kubectl debug: the ephemeral container is pinned",
			req: func(t *testing.T) ctrladmission.Request {
				return request(t, admissionv1.Update, withEphemeral, pinnedPod, "ephemeralcontainers")
			},
			want: []string{replace("/spec/ephemeralContainers/0/image", signedPinned)},
		},
		{
			name: "delete: nothing to do",
			req: func(t *testing.T) ctrladmission.Request {
				r := request(t, admissionv1.Delete, podWith("apps", corev1.PodSpec{Containers: containers(signedTag)}), nil, "")
				r.OldObject, r.Object = r.Object, runtime.RawExtension{}
				return r
			},
		},
		{
			name: "undecodable object: no patch, no denial",
			req: func(t *testing.T) ctrladmission.Request {
				r := request(t, admissionv1.Create, podWith("apps", corev1.PodSpec{Containers: containers(signedTag)}), nil, "")
				r.Object.Raw = []byte(`{"apiVersion":"v1","kind":"Pod","spec":{"containers":"no"}}`)
				return r
			},
		},
		{
			name: "fields this build does not know survive: the patch holds only the pin",
			req: func(t *testing.T) ctrladmission.Request {
				r := request(t, admissionv1.Create, podWith("apps", corev1.PodSpec{Containers: containers(signedTag)}), nil, "")
				r.Object.Raw = []byte(strings.Replace(string(r.Object.Raw), `"spec":{`, `"spec":{"futureField":{"x":1},`, 1))
				return r
			},
			want: []string{replace("/spec/containers/0/image", signedPinned)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &digestVerifier{signed: map[string]bool{digestSigned: true}}
			p := NewPinner(testScheme(t), testJudge(t, v))
			resp := p.Handle(context.Background(), tt.req(t))
			if !resp.Allowed || resp.Result != nil && resp.Result.Code >= 400 {
				t.Fatalf("pinning webhook did not admit: %+v", resp.AdmissionResponse)
			}
			var got []string
			for _, op := range resp.Patches {
				got = append(got, fmt.Sprintf("%s %s %v", op.Operation, op.Path, op.Value))
			}
			sort.Strings(got)
			if len(got) == 0 && len(tt.want) == 0 {
				if resp.PatchType != nil {
					t.Fatalf("patch type %v without a patch", *resp.PatchType)
				}
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("patches\n got %q\nwant %q", got, tt.want)
			}
			if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
				t.Fatalf("patch type %v", resp.PatchType)
			}
		})
	}
}

// TestPinningThenValidatingVerifiesOnce: the API server calls the pinning
// webhook first, then the validating one with the pinned image; the second
// is answered from the verdict cache.
func TestPinningThenValidatingVerifiesOnce(t *testing.T) {
	v := &digestVerifier{signed: map[string]bool{digestSigned: true}}
	j := testJudge(t, v)
	ctx := context.Background()
	resp := NewPinner(testScheme(t), j).Handle(ctx, request(t, admissionv1.Create, podWith("apps", corev1.PodSpec{Containers: containers(signedTag)}), nil, ""))
	if len(resp.Patches) != 1 {
		t.Fatalf("patches %v", resp.Patches)
	}
	pinned := podWith("apps", corev1.PodSpec{Containers: containers(resp.Patches[0].Value.(string))})
	warnings, err := Validator[*corev1.Pod]{Judge: j}.ValidateCreate(ctx, pinned)
	if err != nil || len(warnings) != 0 {
		t.Fatalf("pinned pod: %v %v", warnings, err)
	}
	if got := v.calls.Load(); got != 1 {
		t.Fatalf("verified %d times, want 1", got)
	}
}

func TestSetStringErrors(t *testing.T) {
	doc := []byte(`{"spec":{"containers":[{"image":"a"}]}}`)
	for path, want := range map[string]string{
		"spec.containers[1].image":     "spec.containers[1].image: no item 1",
		"spec.initContainers[0].image": `spec.initContainers[0].image: no field "initContainers"`,
		"spec.containers[x].image":     `spec.containers[x].image: strconv.Atoi: parsing "x": invalid syntax`,
	} {
		if _, err := setStrings(doc, map[string]string{path: "b"}); err == nil || err.Error() != want {
			t.Errorf("%s: got %v, want %q", path, err, want)
		}
	}
}
