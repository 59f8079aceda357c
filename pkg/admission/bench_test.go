package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	ctrladmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
)

// signedVerifier admits every digest: the benchmark measures Signet's
// request path around a cached verdict, not a signature scheme.
type signedVerifier struct{}

func (signedVerifier) Verify(_ context.Context, img policy.Image) policy.Result {
	return policy.Result{Image: img.Ref.String(), Reason: policy.ReasonVerified, Signer: "bench"}
}
func (signedVerifier) Identity() string { return "bench" }
func (signedVerifier) Describe() string { return "bench key" }

// BenchmarkAdmissionReviewWarm: an AdmissionReview for a Pod, decoded by
// controller-runtime, decided by the engine with a warm verdict cache, and
// encoded back: the hot path of a rollout.
func BenchmarkAdmissionReviewWarm(b *testing.B) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		b.Fatal(err)
	}
	cip := &v1alpha1.ClusterImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: "prod"}, Spec: v1alpha1.ClusterImagePolicySpec{
		Images:      []v1alpha1.ImageGlob{{Glob: "123456789012.dkr.ecr.*.amazonaws.com/**"}},
		Authorities: []v1alpha1.Authority{{Name: "ci", Key: &v1alpha1.KeyAuthority{KMS: "awskms:///alias/cosign"}}},
	}}
	p, errs := policy.Compile(context.Background(), cip, func(context.Context, v1alpha1.Authority, []byte) (policy.Verifier, error) {
		return signedVerifier{}, nil
	}, nil)
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}}
	j := &Judge{
		Engine:        &policy.Engine{Cache: policy.NewVerdictCache(policy.CacheOptions{}), NoMatch: policy.NoMatchDeny},
		Policies:      func() []*policy.Policy { return []*policy.Policy{p} },
		Namespaces:    fake.NewClientBuilder().WithScheme(scheme).WithObjects(ns).Build(),
		VerifyTimeout: 8e9,
	}
	handler := ctrladmission.WithValidator[*corev1.Pod](scheme, Validator[*corev1.Pod]{Judge: j})
	image := "123456789012.dkr.ecr.us-east-1.amazonaws.com/app@sha256:" + "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12"
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "apps"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}, {Name: "sidecar", Image: image}}},
	}
	raw, _ := json.Marshal(pod)
	review, _ := json.Marshal(&admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "bench", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: "apps", Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw},
		},
	})
	do := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/validate/pods", bytes.NewReader(review))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		return rec
	}
	first := do() // warms the cache
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(first.Body.Bytes(), &out); err != nil || !out.Response.Allowed {
		b.Fatalf("warm-up: %v %s", err, first.Body.String())
	}
	b.ReportAllocs()
	for b.Loop() {
		if rec := do(); rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
}
