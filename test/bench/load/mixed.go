package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signet-dev/signet/pkg/admission"
)

// mixedResult is a Deployment rollout through the real API server and
// controller manager: Deployment, ReplicaSet and Pods admitted (and
// pinned) by the webhook, against the same rollout with no webhook.
type mixedResult struct {
	Replicas int
	Runs     int
	// With and Without are the medians of Deployment create → every Pod
	// exists, in a judged namespace and in one no webhook applies to.
	With, Without time.Duration
	// Calls are the webhook's requests per path during the judged runs.
	Calls map[string]float64
	// APIServer is the mean time the API server spent per webhook call,
	// by webhook (its apiserver_admission_webhook_admission_duration_seconds).
	APIServer map[string]time.Duration
	// Pinned says every Pod's image carried the digest the webhook verified.
	Pinned bool
}

// mixed registers the webhook with the API server for the run's
// namespace, then rolls a Deployment out there and in an unjudged
// namespace, Runs times each.
func (b *bench) mixed(ctx context.Context, w *webhook, image string) (*mixedResult, error) {
	res := &mixedResult{Replicas: b.cfg.Replicas, Runs: 3}
	if b.cfg.Quick {
		res.Runs = 1
	}
	if err := b.register(ctx, w); err != nil {
		return nil, err
	}
	baseline := b.id + "-baseline"
	if err := b.createNamespace(ctx, baseline, nil); err != nil {
		return nil, err
	}
	b.logf("mixed: Deployment of %d replicas through the API server and controller manager, %d runs with the webhook and %d without", res.Replicas, res.Runs, res.Runs)
	var without, with []time.Duration
	for i := 0; i < res.Runs; i++ {
		d, _, err := b.rollout(ctx, baseline, fmt.Sprintf("plain-%d", i), image)
		if err != nil {
			return nil, err
		}
		without = append(without, d)
	}
	whBefore, err := scrape(ctx, w.MetricsURL)
	if err != nil {
		return nil, err
	}
	apiBefore, err := b.apiserverMetrics(ctx)
	if err != nil {
		return nil, err
	}
	res.Pinned = true
	for i := 0; i < res.Runs; i++ {
		d, pinned, err := b.rollout(ctx, b.namespace, fmt.Sprintf("judged-%d", i), image)
		if err != nil {
			return nil, err
		}
		with = append(with, d)
		res.Pinned = res.Pinned && pinned
	}
	whAfter, err := scrape(ctx, w.MetricsURL)
	if err != nil {
		return nil, err
	}
	apiAfter, err := b.apiserverMetrics(ctx)
	if err != nil {
		return nil, err
	}
	res.With, res.Without = median(with), median(without)
	res.Calls = map[string]float64{}
	for _, p := range []string{admission.MustKind("deployments").ValidatePath(), admission.MustKind("replicasets").ValidatePath(), admission.MustKind("pods").ValidatePath(),
		admission.MustKind("deployments").PinPath(), admission.MustKind("replicasets").PinPath(), admission.MustKind("pods").PinPath()} {
		if n := delta(whBefore, whAfter, "controller_runtime_webhook_requests_total", `webhook="`+p+`"`); n > 0 {
			res.Calls[p] = n
		}
	}
	res.APIServer = map[string]time.Duration{}
	for _, kind := range []string{"pods", "replicasets", "deployments"} {
		for _, typ := range []string{"validating", "admit"} {
			hook := b.hookName(kind, typ == "admit")
			sel := `name="` + hook + `"`
			n := delta(apiBefore, apiAfter, "apiserver_admission_webhook_admission_duration_seconds_count", sel)
			if n > 0 {
				sum := delta(apiBefore, apiAfter, "apiserver_admission_webhook_admission_duration_seconds_sum", sel)
				res.APIServer[hook] = time.Duration(sum / n * float64(time.Second))
			}
		}
	}
	b.logf("  mixed: all %d Pods exist %s after the Deployment is created (median of %d), %s without the webhook; pinned: %v",
		res.Replicas, res.With.Round(time.Millisecond), res.Runs, res.Without.Round(time.Millisecond), res.Pinned)
	return res, nil
}

// rollout creates a Deployment and returns the time until all its Pods
// exist, and whether every Pod's image was pinned to a digest.
func (b *bench) rollout(ctx context.Context, ns, name, image string) (time.Duration, bool, error) {
	labels := map[string]string{"app": name}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(b.cfg.Replicas)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: image,
					Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
				}}},
			},
		},
	}
	begin := time.Now()
	if _, err := b.cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		return 0, false, fmt.Errorf("creating Deployment %s/%s: %w", ns, name, err)
	}
	deadline := begin.Add(2 * time.Minute)
	for {
		pods, err := b.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		if err != nil {
			return 0, false, err
		}
		if len(pods.Items) >= b.cfg.Replicas {
			took := time.Since(begin)
			pinned := true
			for _, p := range pods.Items {
				pinned = pinned && strings.Contains(p.Spec.Containers[0].Image, "@sha256:")
			}
			return took, pinned, nil
		}
		if time.Now().After(deadline) {
			return 0, false, fmt.Errorf("deployment %s/%s: %d of %d Pods after 2 minutes (events: kubectl -n %s get events)", ns, name, len(pods.Items), b.cfg.Replicas, ns)
		}
		select {
		case <-ctx.Done():
			return 0, false, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (b *bench) hookName(kind string, pin bool) string {
	if pin {
		return kind + ".pin." + b.id + ".signet.dev"
	}
	return kind + "." + b.id + ".signet.dev"
}

// register points the API server at the webhook for Pods, ReplicaSets and
// Deployments in the run's namespace only (validating and pinning), as
// the e2e suite does, and waits until the API server calls it.
func (b *bench) register(ctx context.Context, w *webhook) error {
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	timeout := int32(10)
	selector := &metav1.LabelSelector{MatchLabels: map[string]string{b.id: "true"}}
	rules := func(group string, resources ...string) []admissionregistrationv1.RuleWithOperations {
		return []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{group}, APIVersions: []string{"v1"}, Resources: resources},
		}}
	}
	type hook struct {
		kind, group, path, pinPath string
	}
	hooks := []hook{
		{"pods", "", admission.MustKind("pods").ValidatePath(), admission.MustKind("pods").PinPath()},
		{"replicasets", "apps", admission.MustKind("replicasets").ValidatePath(), admission.MustKind("replicasets").PinPath()},
		{"deployments", "apps", admission.MustKind("deployments").ValidatePath(), admission.MustKind("deployments").PinPath()},
	}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: b.id}}
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: b.id}}
	for _, h := range hooks {
		url, pinURL := w.URL(h.path), w.URL(h.pinPath)
		vwc.Webhooks = append(vwc.Webhooks, admissionregistrationv1.ValidatingWebhook{
			Name: b.hookName(h.kind, false), ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: w.CABundle},
			Rules: rules(h.group, h.kind), FailurePolicy: &fail, SideEffects: &none, TimeoutSeconds: &timeout,
			AdmissionReviewVersions: []string{"v1"}, NamespaceSelector: selector,
		})
		mwc.Webhooks = append(mwc.Webhooks, admissionregistrationv1.MutatingWebhook{
			Name: b.hookName(h.kind, true), ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &pinURL, CABundle: w.CABundle},
			Rules: rules(h.group, h.kind), FailurePolicy: &fail, SideEffects: &none, TimeoutSeconds: &timeout,
			AdmissionReviewVersions: []string{"v1"}, NamespaceSelector: selector,
		})
	}
	api := b.cs.AdmissionregistrationV1()
	if _, err := api.ValidatingWebhookConfigurations().Create(ctx, vwc, metav1.CreateOptions{}); err != nil {
		return err
	}
	b.later(func() {
		_ = api.ValidatingWebhookConfigurations().Delete(context.Background(), vwc.Name, metav1.DeleteOptions{})
	})
	if _, err := api.MutatingWebhookConfigurations().Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		return err
	}
	b.later(func() {
		_ = api.MutatingWebhookConfigurations().Delete(context.Background(), mwc.Name, metav1.DeleteOptions{})
	})
	// The API server applies new configurations within a moment: probe
	// with a dry-run Pod of an unsigned image until it is refused.
	unsigned := b.repo("cosign/unsigned").Name() + "@sha256:" + strings.Repeat("0", 64)
	probe := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: b.namespace},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: unsigned}}},
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := b.cs.CoreV1().Pods(b.namespace).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil && strings.Contains(err.Error(), "denied") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the API server did not call the webhook within 30s (last answer: %w)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// apiserverMetrics scrapes the API server's /metrics.
func (b *bench) apiserverMetrics(ctx context.Context) (metrics, error) {
	raw, err := b.cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("API server metrics: %w", err)
	}
	return parseMetrics(strings.NewReader(string(raw)))
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}
