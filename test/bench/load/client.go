package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// admitter sends AdmissionReviews to the webhook as the API server does:
// HTTPS with HTTP/2, keep-alive, trusting the webhook's CA bundle.
type admitter struct {
	client *http.Client
	url    string
}

func newAdmitter(caPEM []byte, url string) (*admitter, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("the webhook's CA bundle has no certificate")
	}
	t := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     time.Minute,
	}
	return &admitter{client: &http.Client{Transport: t, Timeout: 30 * time.Second}, url: url}, nil
}

// review is one prepared request and the answer it must get.
type review struct {
	body    []byte
	allowed bool
}

var allowedTrue = []byte(`"allowed":true`)

// do sends one review and returns its latency; an answer other than the
// expected one is an error.
func (a *admitter) do(ctx context.Context, r review) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(r.body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	begin := time.Now()
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(begin)
	if err != nil {
		return took, err
	}
	if resp.StatusCode != http.StatusOK {
		return took, fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, body)
	}
	// The API server reads the whole answer; a substring check keeps the
	// client's share of the two cores small.
	if got := bytes.Contains(body, allowedTrue); got != r.allowed {
		var out admissionv1.AdmissionReview
		_ = json.Unmarshal(body, &out)
		msg := ""
		if out.Response != nil && out.Response.Result != nil {
			msg = out.Response.Result.Message
		}
		return took, fmt.Errorf("allowed=%v, want %v: %s", got, r.allowed, msg)
	}
	return took, nil
}

// result is what one run of requests measured.
type result struct {
	lat  []time.Duration
	wall time.Duration
	errs []error
}

func (r result) summary() Summary {
	s := summarize(r.lat, r.wall)
	s.Errors = len(r.errs)
	for _, err := range r.errs[:min(3, len(r.errs))] {
		s.ErrorSamples = append(s.ErrorSamples, err.Error())
	}
	return s
}

// fire sends every review once with concurrency workers, as fast as the
// webhook answers.
func (a *admitter) fire(ctx context.Context, reviews []review, concurrency int) result {
	var next atomic.Int64
	return a.run(ctx, concurrency, func() (review, bool) {
		i := next.Add(1) - 1
		if i >= int64(len(reviews)) {
			return review{}, false
		}
		return reviews[i], true
	})
}

// fireFor sends reviews round robin with concurrency workers until d has
// passed.
func (a *admitter) fireFor(ctx context.Context, reviews []review, concurrency int, d time.Duration) result {
	var next atomic.Int64
	deadline := time.Now().Add(d)
	return a.run(ctx, concurrency, func() (review, bool) {
		if time.Now().After(deadline) {
			return review{}, false
		}
		return reviews[(next.Add(1)-1)%int64(len(reviews))], true
	})
}

func (a *admitter) run(ctx context.Context, concurrency int, next func() (review, bool)) result {
	var (
		mu  sync.Mutex
		out result
		wg  sync.WaitGroup
	)
	begin := time.Now()
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1024)
			var errs []error
			for {
				r, ok := next()
				if !ok || ctx.Err() != nil {
					break
				}
				took, err := a.do(ctx, r)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				lat = append(lat, took)
			}
			mu.Lock()
			out.lat = append(out.lat, lat...)
			out.errs = append(out.errs, errs...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	out.wall = time.Since(begin)
	return out
}

// burst sends all reviews at the same instant, one goroutine each.
func (a *admitter) burst(ctx context.Context, reviews []review) result {
	var (
		mu    sync.Mutex
		out   result
		wg    sync.WaitGroup
		ready sync.WaitGroup
	)
	start := make(chan struct{})
	for _, r := range reviews {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			ready.Done()
			<-start
			took, err := a.do(ctx, r)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				out.errs = append(out.errs, err)
				return
			}
			out.lat = append(out.lat, took)
		}()
	}
	ready.Wait()
	begin := time.Now()
	close(start)
	wg.Wait()
	out.wall = time.Since(begin)
	return out
}

// podReview is the AdmissionReview the API server sends for a Pod that a
// ReplicaSet creates: owner reference, labels, one container with
// resources and probes, the service account token volume. About 2 KB.
func podReview(namespace, name, image string, seq int) ([]byte, error) {
	pod := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: namespace, GenerateName: name[:max(0, len(name)-5)],
			Labels: map[string]string{"app": "bench", "pod-template-hash": "7d9f8c6b5"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "bench-7d9f8c6b5",
				UID: types.UID(fmt.Sprintf("00000000-0000-4000-8000-%012d", seq)), Controller: ptr(true), BlockOwnerDeletion: ptr(true),
			}},
		},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "app", Image: image,
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
				Env:   []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "info"}, {Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
				},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}}},
				VolumeMounts:   []corev1.VolumeMount{{Name: "kube-api-access", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}},
			}},
			ServiceAccountName: "default",
			Volumes: []corev1.Volume{{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr(int64(3607))}}},
			}}}},
		},
	}
	raw, err := json.Marshal(pod)
	if err != nil {
		return nil, err
	}
	return json.Marshal(&admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:         types.UID(fmt.Sprintf("10000000-0000-4000-8000-%012d", seq)),
			Kind:        metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:    podsResource,
			RequestKind: &metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Namespace:   namespace, Name: name, Operation: admissionv1.Create,
			UserInfo: authenticationv1.UserInfo{Username: "system:serviceaccount:kube-system:replicaset-controller",
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"}},
			Object:  runtime.RawExtension{Raw: raw},
			DryRun:  ptr(false),
			Options: runtime.RawExtension{Raw: []byte(`{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1"}`)},
		},
	})
}

func ptr[T any](v T) *T { return &v }

// podsResource is the resource of every review the harness sends.
var podsResource = metav1.GroupVersionResource{Version: "v1", Resource: "pods"}
