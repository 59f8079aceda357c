// Package audit is continuous validation: it judges what is running, at the
// digest the kubelet reports, with the same engine, verdict cache and
// revocation answers as admission, and reports drift where Kubernetes users
// look: Events on the Pods, counts in ClusterImagePolicy status, metrics.
// Admission judges each request once; this finds what was never judged (Pods
// started before Signet, while its webhook was unreachable, or in an exempt
// namespace) and what stopped being admissible (a revoked signing job, a
// disabled key, a stricter or new policy, a tag that moved).
package audit

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
	"github.com/signet-dev/signet/pkg/workload"
)

// Auditor evaluates every running Pod's images.
type Auditor struct {
	Engine *policy.Engine
	// Policies returns the policies in force (the store's snapshot).
	Policies func() []*policy.Policy
	// Reader lists Pods and Namespaces. An uncached reader: Pods are read a
	// page at a time, so no replica keeps every Pod of the cluster in memory.
	Reader client.Reader
	// Exempt namespaces are not judged at admission; their Pods are reported
	// as audit-only, unless SkipExempt leaves them out.
	Exempt     map[string]bool
	SkipExempt bool
	// Keychain returns a Pod's registry credentials (its pull secrets); nil
	// uses Signet's own only.
	Keychain func(ctx context.Context, pod *corev1.Pod) authn.Keychain
	// Concurrency bounds the Pods evaluated at once (default 4); the engine's
	// own limits bound the registry and AWS traffic below that.
	Concurrency int
	// PodTimeout bounds one Pod's evaluation (default 30s).
	PodTimeout time.Duration
	// PageSize is how many Pods one list call returns (default 500).
	PageSize int64
	// Namespace, when set, limits the audit to one namespace (the CLI's
	// --namespace); empty audits the whole cluster.
	Namespace string
	// RegistryRequests reads the process's count of registry requests, so
	// a report says what its cycle cost; nil reports none.
	RegistryRequests func() uint64
}

// Cycle evaluates every Pod that runs or is about to (phase Pending or
// Running) once.
func (a *Auditor) Cycle(ctx context.Context) (*Report, error) {
	begin := time.Now()
	verifications, requests := a.Engine.Cache.Stats().Verifications, a.registryRequests()
	nsLabels, err := a.namespaceLabels(ctx)
	if err != nil {
		return nil, err
	}
	policies := a.Policies()
	rep := &Report{Namespace: a.Namespace, Started: begin}
	var mu sync.Mutex
	work := make(chan *corev1.Pod)
	var wg sync.WaitGroup
	workers := a.Concurrency
	if workers <= 0 {
		workers = 4
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pod := range work {
				pr := a.evaluate(ctx, policies, pod, nsLabels[pod.Namespace])
				mu.Lock()
				rep.Pods = append(rep.Pods, pr)
				mu.Unlock()
			}
		}()
	}
	listErr := a.eachPod(ctx, func(pod *corev1.Pod) {
		if pod.Status.Phase != corev1.PodPending && pod.Status.Phase != corev1.PodRunning && pod.Status.Phase != "" {
			return
		}
		if a.Exempt[pod.Namespace] && a.SkipExempt {
			return
		}
		select {
		case work <- pod:
		case <-ctx.Done():
		}
	})
	close(work)
	wg.Wait()
	if listErr != nil {
		return nil, listErr
	}
	rep.Duration = time.Since(begin)
	rep.Verifications = a.Engine.Cache.Stats().Verifications - verifications
	rep.RegistryRequests = a.registryRequests() - requests
	sortPods(rep.Pods)
	return rep, nil
}

func (a *Auditor) evaluate(ctx context.Context, policies []*policy.Policy, pod *corev1.Pod, nsLabels map[string]string) PodReport {
	timeout := a.PodTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	running := workload.Running(pod)
	refs := make([]policy.ImageRef, len(running))
	for i, r := range running {
		refs[i] = r.ImageRef
	}
	req := policy.Request{
		Images: refs,
		Object: policy.ObjectContext{Namespace: pod.Namespace, NamespaceLabels: nsLabels, Labels: pod.Labels},
	}
	if a.Keychain != nil {
		req.Keychain = a.Keychain(ctx, pod)
	}
	// A Pod admitted by break-glass runs images that fail their policies:
	// judged with its reason, they are reported as break-glass, not as
	// violations, and stay visible until the Pod is replaced.
	if raw, ok := pod.Annotations[v1alpha1.BreakGlassAnnotation]; ok {
		req.BreakGlass, _ = policy.BreakGlassReason(raw)
	}
	d := a.Engine.Evaluate(ctx, policies, req)
	pr := PodReport{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID, AuditOnly: a.Exempt[pod.Namespace], BreakGlass: req.BreakGlass}
	for i, r := range running {
		if d.Refused != "" { // more images than Signet judges in one request
			id := policy.ImageDecision{Path: r.Path, Image: r.Ref, Verdict: policy.VerdictDenied, Cause: d.Refused}
			pr.Images = append(pr.Images, ImageReport{RunningImage: r, Decision: id, State: StateViolation})
			continue
		}
		id := d.Images[i]
		pr.Images = append(pr.Images, ImageReport{RunningImage: r, Decision: id, State: stateOf(id)})
	}
	return pr
}

// eachPod lists Pods a page at a time.
func (a *Auditor) eachPod(ctx context.Context, f func(*corev1.Pod)) error {
	size := a.PageSize
	if size <= 0 {
		size = 500
	}
	var cont string
	for {
		var l corev1.PodList
		if err := a.Reader.List(ctx, &l, client.InNamespace(a.Namespace), client.Limit(size), client.Continue(cont)); err != nil {
			return fmt.Errorf("listing Pods: %w", err)
		}
		for i := range l.Items {
			f(&l.Items[i])
		}
		if cont = l.Continue; cont == "" {
			return nil
		}
	}
}

func (a *Auditor) namespaceLabels(ctx context.Context) (map[string]map[string]string, error) {
	if a.Namespace != "" {
		var ns corev1.Namespace
		if err := a.Reader.Get(ctx, client.ObjectKey{Name: a.Namespace}, &ns); err != nil {
			return nil, fmt.Errorf("reading Namespace %s: %w", a.Namespace, err)
		}
		return map[string]map[string]string{ns.Name: ns.Labels}, nil
	}
	var l corev1.NamespaceList
	if err := a.Reader.List(ctx, &l); err != nil {
		return nil, fmt.Errorf("listing Namespaces: %w", err)
	}
	out := make(map[string]map[string]string, len(l.Items))
	for _, ns := range l.Items {
		out[ns.Name] = ns.Labels
	}
	logf.FromContext(ctx).V(1).Info("namespaces read", "count", len(out))
	return out, nil
}

func (a *Auditor) registryRequests() uint64 {
	if a.RegistryRequests == nil {
		return 0
	}
	return a.RegistryRequests()
}
