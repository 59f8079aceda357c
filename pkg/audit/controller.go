package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
)

// Event reasons continuous validation records on Pods.
const (
	ReasonNotAdmissible = "ImageNotAdmissible"    // Warning: an image stopped being admissible
	ReasonUnverifiable  = "ImageUnverifiable"     // Warning: an image could not be checked
	ReasonAdmissible    = "ImageAdmissible"       // Normal: an image is admissible again
	ReasonBreakGlass    = "ImageRunsByBreakGlass" // Warning: an image fails its policy and runs by break-glass
)

// Controller runs the Auditor every Interval on one replica (the holder of
// a Lease) and publishes what it finds.
type Controller struct {
	Auditor  *Auditor
	Interval time.Duration
	// Events records drift on the Pods; Status patches ClusterImagePolicy
	// status; Metrics exports the counts. Each may be nil.
	Events  events.EventRecorder
	Status  client.Client
	Metrics *Metrics
	// Reports writes OpenReports Reports per namespace when that API is
	// installed; nil writes none.
	Reports *Reports
	// Lease elects the one replica that audits; nil audits without election
	// (one process, or tests).
	Lease *Lease

	seen map[seenKey]State
	// written is what status.running last said per policy: a policy's
	// status is written when its counts change, else at most once a minute
	// (lastEvaluated is that coarse), not every cycle.
	written map[string]v1alpha1.RunningImages
}

// statusRefresh is how stale lastEvaluated may get while counts hold.
const statusRefresh = time.Minute

// Lease names the coordination.k8s.io Lease the replicas compete for.
type Lease struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string
	Identity  string
}

type seenKey struct {
	pod  types.UID
	path string
}

// NeedLeaderElection is false: the controller elects itself, so admission
// (on every replica) never waits for a lease.
func (c *Controller) NeedLeaderElection() bool { return false }

// Start implements manager.Runnable.
func (c *Controller) Start(ctx context.Context) error {
	if c.Lease == nil {
		c.run(ctx)
		return nil
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: c.Lease.Namespace, Name: c.Lease.Name},
		Client:     c.Lease.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: c.Lease.Identity},
	}
	for ctx.Err() == nil {
		// RunOrDie returns when leadership is lost; campaign again.
		leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   15 * time.Second,
			RenewDeadline:   10 * time.Second,
			RetryPeriod:     2 * time.Second,
			ReleaseOnCancel: true,
			Name:            c.Lease.Name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: c.run,
				OnStoppedLeading: func() { logf.FromContext(ctx).Info("continuous validation: leadership lost") },
			},
		})
	}
	return nil
}

// run audits now and then every Interval until ctx ends.
func (c *Controller) run(ctx context.Context) {
	log := logf.FromContext(ctx).WithName("audit")
	c.seen = map[seenKey]State{} // a new leader starts from what it finds
	c.written = nil
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	for {
		rep, err := c.Auditor.Cycle(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			log.Error(err, "continuous validation cycle failed")
			c.Metrics.failed()
		default:
			c.publish(ctx, rep)
			log.Info("continuous validation cycle", "pods", len(rep.Pods), "violations", rep.Violations(), "verifications", rep.Verifications, "duration", rep.Duration)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// publish records Events for what changed, and the counts.
func (c *Controller) publish(ctx context.Context, rep *Report) {
	c.recordEvents(rep)
	c.Metrics.observe(rep)
	if err := c.writeStatus(ctx, rep); err != nil {
		logf.FromContext(ctx).Error(err, "writing ClusterImagePolicy status")
	}
	if c.Reports != nil {
		if err := c.Reports.Write(ctx, rep); err != nil {
			logf.FromContext(ctx).Error(err, "writing OpenReports Reports")
		}
	}
}

// recordEvents: one Event per change of an image's state, not one per
// cycle. The first sight of an admissible image records nothing.
func (c *Controller) recordEvents(rep *Report) {
	now := map[seenKey]State{}
	for _, p := range rep.Pods {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, UID: p.UID}}
		pod.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
		for _, img := range p.Images {
			k := seenKey{p.UID, img.Path}
			state := img.State
			if state == StateUngoverned {
				state = StateVerified
			}
			now[k] = state
			before, known := c.seen[k]
			if before == state || (!known && state == StateVerified) || c.Events == nil {
				continue
			}
			msg := p.Note(img)
			switch state {
			case StateViolation:
				c.Events.Eventf(pod, nil, corev1.EventTypeWarning, ReasonNotAdmissible, "Audit", "%s", clipNote(msg))
			case StateUnverifiable:
				c.Events.Eventf(pod, nil, corev1.EventTypeWarning, ReasonUnverifiable, "Audit", "%s", clipNote(msg))
			case StateBreakGlass:
				c.Events.Eventf(pod, nil, corev1.EventTypeWarning, ReasonBreakGlass, "Audit", "%s", clipNote(msg))
			case StateVerified:
				c.Events.Eventf(pod, nil, corev1.EventTypeNormal, ReasonAdmissible, "Audit", "%s", clipNote(msg))
			}
		}
	}
	c.seen = now
}

// clipNote keeps an Event note within the API's 1 kB limit.
func clipNote(s string) string {
	const limit = 1024
	if len(s) <= limit {
		return s
	}
	cut := limit - len("…")
	for cut > 0 && s[cut]&0xC0 == 0x80 { // not inside a UTF-8 character
		cut--
	}
	return s[:cut] + "…"
}

// writeStatus patches status.running of every policy in force with the
// images it governs by state; only this field, so the store's conditions
// are never overwritten.
func (c *Controller) writeStatus(ctx context.Context, rep *Report) error {
	if c.Status == nil {
		return nil
	}
	counts := PolicyCounts(rep)
	names := make([]string, 0)
	for _, p := range c.Auditor.Policies() {
		names = append(names, p.Name)
	}
	sort.Strings(names)
	var firstErr error
	if c.written == nil {
		c.written = map[string]v1alpha1.RunningImages{}
	}
	for _, name := range names {
		n := counts[name]
		running := v1alpha1.RunningImages{
			Verified: n[StateVerified], Violations: n[StateViolation], Unverifiable: n[StateUnverifiable], BreakGlass: n[StateBreakGlass],
			LastEvaluated: metav1.NewTime(rep.Started.Add(rep.Duration).UTC().Truncate(time.Second)),
		}
		if last, ok := c.written[name]; ok && last.Verified == running.Verified && last.Violations == running.Violations &&
			last.Unverifiable == running.Unverifiable && last.BreakGlass == running.BreakGlass &&
			running.LastEvaluated.Sub(last.LastEvaluated.Time) < statusRefresh {
			continue
		}
		body, err := json.Marshal(map[string]any{"status": map[string]any{"running": running}})
		if err != nil {
			return err
		}
		cip := &v1alpha1.ClusterImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := c.Status.Status().Patch(ctx, cip, client.RawPatch(types.MergePatchType, body)); err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("ClusterImagePolicy %s: %w", name, err)
			}
			continue
		}
		c.written[name] = running
	}
	return firstErr
}

// PolicyCounts counts, per policy, the running images it governs by state.
func PolicyCounts(rep *Report) map[string]map[State]int32 {
	out := map[string]map[State]int32{}
	for _, p := range rep.Pods {
		for _, img := range p.Images {
			for _, pr := range img.Decision.Policies {
				if out[pr.Policy] == nil {
					out[pr.Policy] = map[State]int32{}
				}
				out[pr.Policy][policyState(pr)]++
			}
		}
	}
	return out
}

func sortPods(ps []PodReport) {
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Namespace != ps[j].Namespace {
			return ps[i].Namespace < ps[j].Namespace
		}
		return ps[i].Name < ps[j].Name
	})
}

// RBAC of continuous validation: Pods read page by page, Events on them,
// the Lease that elects the auditing replica (in Signet's namespace: the
// chart grants it there only).
// +kubebuilder:rbac:groups="",resources=pods,verbs=list
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
