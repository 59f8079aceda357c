package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
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
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrladmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
	"github.com/signet-dev/signet/pkg/workload"
)

// anyNamespace answers every namespace read with an unlabelled namespace,
// so every request the fuzzer writes reaches image extraction.
type anyNamespace struct{}

func (anyNamespace) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	obj.SetName(key.Name)
	return nil
}

func (anyNamespace) List(context.Context, client.ObjectList, ...client.ListOption) error { return nil }

// anyTag resolves every tag to one digest: no registry is involved.
type anyTag struct{}

func (anyTag) Resolve(_ context.Context, ref name.Reference, _ authn.Keychain) (name.Digest, error) {
	return ref.Context().Digest(digestSigned), nil
}

// decisions records what the Judge decided.
type decisions struct {
	mu  sync.Mutex
	got []policy.Decision
}

func (d *decisions) Decided(dec policy.Decision) {
	d.mu.Lock()
	d.got = append(d.got, dec)
	d.mu.Unlock()
}
func (d *decisions) Failed(string) {}

func (d *decisions) BrokeGlass(string, string) {}

func (d *decisions) take() []policy.Decision {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.got
	d.got = nil
	return out
}

// podObjects are one object of every Go type a Kind may hold; seeds fail
// when a row of Kinds has none, so a new kind gets seeds.
func podObjects() []client.Object {
	return []client.Object{
		&corev1.Pod{}, &appsv1.Deployment{}, &appsv1.ReplicaSet{}, &appsv1.StatefulSet{}, &appsv1.DaemonSet{},
		&batchv1.Job{}, &batchv1.CronJob{}, &corev1.ReplicationController{Spec: corev1.ReplicationControllerSpec{Template: &corev1.PodTemplateSpec{}}},
	}
}

// objectOf returns a fresh object of k's type with its Pod spec.
func objectOf(k Kind) (client.Object, *corev1.PodSpec, bool) {
	for _, o := range podObjects() {
		if spec, ok := k.podSpec(o); ok {
			return o, spec, true
		}
	}
	return nil, nil, false
}

// seedReviews are real AdmissionReviews, as the API server sends them, of
// every kind in Kinds: CREATE with init, ordinary and ephemeral containers
// and image volumes; UPDATE adding an ephemeral container (kubectl debug)
// and changing an image volume.
func seedReviews(tb testing.TB, scheme *runtime.Scheme) [][]byte {
	tb.Helper()
	var out [][]byte
	for _, k := range Kinds {
		obj, spec, ok := objectOf(k)
		if !ok {
			tb.Fatalf("kind %s has no seed object: add its type to podObjects", k.Resource)
		}
		gvks, _, err := scheme.ObjectKinds(obj)
		if err != nil {
			tb.Fatal(err)
		}
		gvk := gvks[0]
		obj.GetObjectKind().SetGroupVersionKind(gvk)
		obj.SetName("web")
		obj.SetNamespace("apps")
		*spec = podSpec()
		spec.Containers = append(spec.Containers, corev1.Container{Name: "pinned", Image: "registry.test/app@" + digestSigned})
		oldRaw, err := json.Marshal(obj)
		if err != nil {
			tb.Fatal(err)
		}
		spec.EphemeralContainers = append(spec.EphemeralContainers, corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug-2", Image: "Registry.Test:443/debug:1"}})
		spec.Volumes[1].Image.Reference = "docker.io/library/model:8"
		newRaw, err := json.Marshal(obj)
		if err != nil {
			tb.Fatal(err)
		}
		subresource := ""
		if len(k.Subresources) > 0 {
			subresource = strings.TrimPrefix(k.Subresources[0], k.Resource+"/")
		}
		for _, req := range []admissionv1.AdmissionRequest{
			{Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: oldRaw}},
			{Operation: admissionv1.Update, Object: runtime.RawExtension{Raw: newRaw}, OldObject: runtime.RawExtension{Raw: oldRaw}, SubResource: subresource},
		} {
			req.UID = types.UID("uid-" + k.Resource)
			req.Kind = metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind}
			req.Resource = metav1.GroupVersionResource{Group: k.Group, Version: k.Version, Resource: k.Resource}
			req.Namespace, req.Name = "apps", "web"
			b, err := json.Marshal(&admissionv1.AdmissionReview{
				TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
				Request:  &req,
			})
			if err != nil {
				tb.Fatal(err)
			}
			out = append(out, b)
		}
	}
	return out
}

// FuzzAdmissionReview sends AdmissionReview JSON through the validating
// webhook of the kind it names (controller-runtime's decoding, Signet's
// extraction and a real Engine). Properties: no panic; an answer for every
// request; every image judged has a field path under the kind's Pod spec
// ending in .image or .image.reference; the images judged are exactly the
// images of the decoded object (changed ones on UPDATE), and encoding the
// decoded object again extracts the same images.
func FuzzAdmissionReview(f *testing.F) {
	scheme := testScheme(f)
	for _, s := range seedReviews(f, scheme) {
		f.Add(s)
	}
	cip := &v1alpha1.ClusterImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: "all"}, Spec: v1alpha1.ClusterImagePolicySpec{
		Images:      []v1alpha1.ImageGlob{{Glob: "**"}},
		Authorities: []v1alpha1.Authority{{Name: "ci", Key: &v1alpha1.KeyAuthority{KMS: "awskms:///alias/ci"}}},
	}}
	p, errs := policy.Compile(context.Background(), cip, func(context.Context, v1alpha1.Authority, []byte) (policy.Verifier, error) {
		return signedVerifier{}, nil
	}, nil)
	if len(errs) > 0 {
		f.Fatal(errs)
	}
	rec := &decisions{}
	j := &Judge{
		Engine:        &policy.Engine{Cache: policy.NewVerdictCache(policy.CacheOptions{}), Resolver: anyTag{}, NoMatch: policy.NoMatchAllow},
		Policies:      func() []*policy.Policy { return []*policy.Policy{p} },
		Namespaces:    anyNamespace{},
		VerifyTimeout: 5 * time.Second,
		Recorder:      rec,
	}
	handlers := map[string]*ctrladmission.Webhook{}
	for _, k := range Kinds {
		handlers[k.Resource] = k.newValidator(scheme, j)
	}
	decoder := ctrladmission.NewDecoder(scheme)

	f.Fuzz(func(t *testing.T, review []byte) {
		var in admissionv1.AdmissionReview
		parsed := json.Unmarshal(review, &in) == nil && in.Request != nil
		k := Kinds[len(review)%len(Kinds)]
		if parsed {
			if kk, err := KindOf(in.Request.Resource.Resource); err == nil {
				k = kk
			}
		}
		req := httptest.NewRequest(http.MethodPost, k.ValidatePath(), bytes.NewReader(review))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		handlers[k.Resource].ServeHTTP(w, req)
		judged := rec.take()

		var out admissionv1.AdmissionReview
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out.Response == nil {
			t.Fatalf("no AdmissionReview answered (HTTP %d): %q", w.Code, w.Body.String())
		}
		var got []policy.ImageRef
		for _, d := range judged {
			for _, id := range d.Images {
				if !strings.HasPrefix(id.Path, k.FieldPath()+".") || !(strings.HasSuffix(id.Path, ".image") || strings.HasSuffix(id.Path, ".image.reference")) {
					t.Fatalf("image %q judged at field path %q", id.Image, id.Path)
				}
				got = append(got, policy.ImageRef{Path: id.Path, Ref: id.Image})
			}
		}
		if !parsed || !out.Response.Allowed && out.Response.Result != nil && out.Response.Result.Code == http.StatusBadRequest {
			return // not a request controller-runtime could decode
		}
		obj, _, _ := objectOf(k)
		if err := decoder.DecodeRaw(in.Request.Object, obj); err != nil {
			return
		}
		var old client.Object
		if in.Request.Operation == admissionv1.Update {
			old, _, _ = objectOf(k)
			if err := decoder.DecodeRaw(in.Request.OldObject, old); err != nil {
				return
			}
		}
		if in.Request.Operation != admissionv1.Create && in.Request.Operation != admissionv1.Update {
			if len(got) != 0 {
				t.Fatalf("%s judged images %v", in.Request.Operation, got)
			}
			return
		}
		_, want := j.toJudge(obj, old)
		if len(want) != len(got) || len(want) > 0 && !reflect.DeepEqual(want, got) {
			t.Fatalf("judged %v, the object's images are %v", got, want)
		}
		again, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		obj2, _, _ := objectOf(k)
		if err := json.Unmarshal(again, obj2); err != nil {
			t.Fatalf("re-decoding %s: %v", again, err)
		}
		spec, path, _ := PodSpecOf(obj)
		spec2, path2, _ := PodSpecOf(obj2)
		if a, b := workload.Images(spec, path), workload.Images(spec2, path2); !reflect.DeepEqual(a, b) {
			t.Fatalf("round trip changed the images: %v, then %v", a, b)
		}
	})
}
