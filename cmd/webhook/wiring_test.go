package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/signet-dev/signet/pkg/admission"
	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
)

// TestDigestPinningFlagWiring: with --digest-pinning=false the pinning
// paths still answer (a MutatingWebhookConfiguration left in place must not
// stop Pods) but never consult the policies; by default they do.
func TestDigestPinningFlagWiring(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: "registry.test/app:v1"}}}}
	object, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	review, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "u", Operation: admissionv1.Create,
			Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Object: runtime.RawExtension{Raw: object}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, pinning := range []bool{true, false} {
		var consulted atomic.Bool
		opts := NewOptions()
		opts.DigestPinning = pinning
		srv := webhook.NewServer(webhook.Options{})
		judge := &admission.Judge{
			Engine:        &policy.Engine{Cache: policy.NewVerdictCache(policy.CacheOptions{}), NoMatch: policy.NoMatchAllow},
			Policies:      func() []*policy.Policy { consulted.Store(true); return nil },
			VerifyTimeout: time.Second,
		}
		registerWebhooks(srv, scheme, opts, judge, admission.PolicyValidator{})
		mux := srv.(*webhook.DefaultServer).WebhookMux()
		for _, path := range []string{admission.MustKind("pods").ValidatePath(), admission.PathClusterImagePolicies, admission.MustKind("pods").PinPath(), admission.MustKind("deployments").PinPath()} {
			if _, pattern := mux.Handler(httptest.NewRequest(http.MethodPost, path, nil)); pattern == "" {
				t.Errorf("--digest-pinning=%v: %s is not served", pinning, path)
			}
		}
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, admission.MustKind("pods").PinPath(), bytes.NewReader(review))
		req.Header.Set("Content-Type", "application/json")
		mux.ServeHTTP(rec, req)
		var got admissionv1.AdmissionReview
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got.Response == nil {
			t.Fatalf("--digest-pinning=%v: response %d %s", pinning, rec.Code, rec.Body)
		}
		if !got.Response.Allowed || got.Response.Patch != nil {
			t.Errorf("--digest-pinning=%v: %+v", pinning, got.Response)
		}
		if consulted.Load() != pinning {
			t.Errorf("--digest-pinning=%v: policies consulted = %v", pinning, consulted.Load())
		}
	}
}
