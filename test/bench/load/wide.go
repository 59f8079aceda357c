package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// wideImages is how many containers, each of its own digest, the wide
// case's Pod has: issue 13's 3,000-container Pod took 6.6 s to be denied
// and raised the webhook's peak RSS to 435 MB before the limits.
const wideImages = 10000

// wideResult is the wide case under one configuration of the limits: a
// fresh webhook, the Pod sent Sends times, one at a time.
type wideResult struct {
	Setup  string
	Sends  int
	Client Summary
	// Registry is the requests the case's registry served during the case
	// (the in-process counting registry, which only this case uses then).
	Registry int
	// Answer is the webhook's message for the last send.
	Answer string
	// Memory is the webhook's RSS and peak RSS (VmHWM) after the case; the
	// chart's memory limit is 256 MiB.
	Memory memory
}

// wide sends a Pod with wideImages containers of distinct digests (never
// pushed or signed, all governed by the cosign policy) to a fresh webhook
// per configuration: the default limit, which refuses it at once, and,
// unless -quick, the limit lifted, with and without the bound on
// concurrent verifications (the latter is Signet before issue 13).
func (b *bench) wide(ctx context.Context) ([]wideResult, error) {
	digests := randomDigests(mustRepo(b.burstRegistryHost+"/"+b.id+"/cosign/wide"), wideImages)
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "wide", Namespace: b.namespace},
	}
	for i, d := range digests {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: d.String()})
	}
	raw, err := json.Marshal(pod)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(&admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID("20000000-0000-4000-8000-000000000000"),
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  podsResource,
			Namespace: b.namespace, Name: "wide", Operation: admissionv1.Create,
			Object: runtime.RawExtension{Raw: raw},
		},
	})
	if err != nil {
		return nil, err
	}

	configs := []struct {
		setup string
		flags []string
		sends int
	}{
		{"limit on: --max-images-per-request=256 (default)", nil, 20},
		{"images limit off: --max-images-per-request=100000, --max-concurrent-verifications=64 (default)", []string{"--max-images-per-request=100000"}, 1},
		{"both off: --max-images-per-request=100000, --max-concurrent-verifications=1000000 (as before issue 13)",
			[]string{"--max-images-per-request=100000", "--max-concurrent-verifications=1000000"}, 1},
	}
	if b.cfg.Quick {
		configs = configs[:1]
		configs[0].sends = 5
	}
	var out []wideResult
	for i, c := range configs {
		w, err := b.startWebhookWith(fmt.Sprintf("wide-%d", i), c.flags...)
		if err != nil {
			return nil, err
		}
		b.logf("wide: a Pod of %d containers of distinct digests, %d times, %s", wideImages, c.sends, c.setup)
		b.burstRegistry.Reset()
		reviews := make([]review, c.sends)
		for j := range reviews {
			reviews[j] = review{body: body, allowed: false}
		}
		res := w.admit.fire(ctx, reviews, 1)
		r := wideResult{Setup: c.setup, Sends: c.sends, Client: res.summary()}
		for _, n := range b.burstRegistry.Requests() {
			r.Registry += n
		}
		r.Memory, err = w.memory()
		if err == nil {
			r.Answer, err = w.admit.message(ctx, body)
		}
		w.Stop()
		if err != nil {
			return nil, err
		}
		errs := ""
		if r.Client.Errors > 0 {
			errs = fmt.Sprintf(", %d ERRORS (first: %s)", r.Client.Errors, r.Client.ErrorSamples[0])
		}
		b.logf("  wide (%s): p50 %s ms, max %s ms; %d registry requests; RSS %s, peak %s%s; answer: %.300s",
			strings.SplitN(c.setup, ":", 2)[0], ms(r.Client.P50), ms(r.Client.Max), r.Registry, mib(r.Memory.RSS), mib(r.Memory.HWM), errs, r.Answer)
		out = append(out, r)
	}
	return out, nil
}

// message sends body once more and returns the answer's message.
func (a *admitter) message(ctx context.Context, body []byte) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", err
	}
	if out.Response == nil || out.Response.Result == nil {
		return "", nil
	}
	return out.Response.Result.Message, nil
}
