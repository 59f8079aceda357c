package audit

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	reportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/signet-dev/signet/pkg/policy"
)

// OpenReports: what a cycle found, as one Report per namespace in the
// OpenReports API (openreports.io/v1alpha1), the format Kyverno, Kubewarden
// and Policy Reporter read. Written only while the API server serves it.
const (
	// ReportName is the Report Signet owns in each namespace.
	ReportName = "signet-images"
	// ReportSource is the Reports' source: the engine that wrote them.
	ReportSource = "signet"
	// ReportCategory is every result's category.
	ReportCategory = "Image signatures"
	// managedBy labels the Reports Signet owns, so stale ones are found.
	managedByLabel = "app.kubernetes.io/managed-by"
	managedBy      = "signet"
)

// The results OpenReports defines (its Go module names no constants).
const (
	resultPass  reportsv1alpha1.Result = "pass"
	resultFail  reportsv1alpha1.Result = "fail"
	resultWarn  reportsv1alpha1.Result = "warn"
	resultError reportsv1alpha1.Result = "error"
	resultSkip  reportsv1alpha1.Result = "skip"
)

// Reports writes a cycle's results as OpenReports Reports.
type Reports struct {
	// Client writes Reports; Reader reads them uncached (no informer on a
	// kind that may not exist); Discovery tells whether the kind is served.
	Client    client.Client
	Reader    client.Reader
	Discovery discovery.DiscoveryInterface
	// Name is the Report's name in each namespace (default ReportName).
	Name string
}

func (r *Reports) name() string {
	if r.Name == "" {
		return ReportName
	}
	return r.Name
}

// RBAC of the Reports (only used when the OpenReports CRD is installed).
// +kubebuilder:rbac:groups=openreports.io,resources=reports,verbs=get;list;create;update;delete

// Installed reports whether the API server serves openreports.io/v1alpha1
// Reports. Asked every cycle: a CRD installed later is written to from the
// next cycle on, without a restart.
func (r *Reports) Installed() (bool, error) {
	l, err := r.Discovery.ServerResourcesForGroupVersion(reportsv1alpha1.GroupVersion.String())
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("discovering %s: %w", reportsv1alpha1.GroupVersion, err)
	}
	for _, res := range l.APIResources {
		if res.Name == "reports" {
			return true, nil
		}
	}
	return false, nil
}

// Write replaces each audited namespace's Report with rep's results (so
// the results of Pods that went away go with them) and deletes the Reports
// of audited namespaces where no Pod runs any more. A Report whose results
// are unchanged is not written again.
func (r *Reports) Write(ctx context.Context, rep *Report) error {
	if ok, err := r.Installed(); !ok {
		return err
	}
	byNS := map[string][]PodReport{}
	for _, p := range rep.Pods {
		byNS[p.Namespace] = append(byNS[p.Namespace], p)
	}
	namespaces := make([]string, 0, len(byNS))
	for ns := range byNS {
		namespaces = append(namespaces, ns)
	}
	sort.Strings(namespaces)
	var errs []error
	for _, ns := range namespaces {
		want := NamespaceReport(ns, byNS[ns], rep.Started)
		want.Name = r.name()
		if err := r.put(ctx, want); err != nil {
			errs = append(errs, fmt.Errorf("Report %s/%s: %w", ns, want.Name, err))
		}
	}
	var owned reportsv1alpha1.ReportList
	if err := r.Reader.List(ctx, &owned, client.InNamespace(rep.Namespace), client.MatchingLabels{managedByLabel: managedBy}); err != nil {
		return errors.Join(append(errs, fmt.Errorf("listing Reports: %w", err))...)
	}
	for i := range owned.Items {
		old := &owned.Items[i]
		if _, ok := byNS[old.Namespace]; ok || old.Name != r.name() {
			continue
		}
		if err := r.Client.Delete(ctx, old); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting Report %s/%s: %w", old.Namespace, old.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (r *Reports) put(ctx context.Context, want *reportsv1alpha1.Report) error {
	got := &reportsv1alpha1.Report{}
	err := r.Reader.Get(ctx, client.ObjectKeyFromObject(want), got)
	switch {
	case apierrors.IsNotFound(err):
		return r.Client.Create(ctx, want)
	case err != nil:
		return err
	case sameResults(got, want):
		return nil
	}
	got.Labels = want.Labels
	got.Source, got.Summary, got.Results = want.Source, want.Summary, want.Results
	return r.Client.Update(ctx, got)
}

// sameResults compares what the Reports say, not when they were found.
func sameResults(a, b *reportsv1alpha1.Report) bool {
	strip := func(r *reportsv1alpha1.Report) *reportsv1alpha1.Report {
		c := &reportsv1alpha1.Report{Source: r.Source, Summary: r.Summary, Results: append([]reportsv1alpha1.ReportResult(nil), r.Results...)}
		for i := range c.Results {
			c.Results[i].Timestamp = metav1.Timestamp{}
		}
		return c
	}
	return equality.Semantic.DeepEqual(strip(a), strip(b)) && a.Labels[managedByLabel] == managedBy
}

// NamespaceReport is the Report of one namespace: one result per Pod image.
func NamespaceReport(ns string, pods []PodReport, at time.Time) *reportsv1alpha1.Report {
	out := &reportsv1alpha1.Report{
		TypeMeta:   metav1.TypeMeta{APIVersion: reportsv1alpha1.GroupVersion.String(), Kind: "Report"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ReportName, Labels: map[string]string{managedByLabel: managedBy}},
		Source:     ReportSource,
		Results:    []reportsv1alpha1.ReportResult{},
	}
	for _, p := range pods {
		for _, img := range p.Images {
			res := ReportResult(p, img)
			res.Timestamp = metav1.Timestamp{Seconds: at.Unix()}
			switch res.Result {
			case resultPass:
				out.Summary.Pass++
			case resultFail:
				out.Summary.Fail++
			case resultWarn:
				out.Summary.Warn++
			case resultError:
				out.Summary.Error++
			case resultSkip:
				out.Summary.Skip++
			}
			out.Results = append(out.Results, res)
		}
	}
	return out
}

// ReportResult is one Pod image as an OpenReports result: policy, rule
// (the authority), result, the note users read, and in properties the
// image, its field path, the digest judged and the reason.
func ReportResult(p PodReport, img ImageReport) reportsv1alpha1.ReportResult {
	f := img.Finding()
	props := map[string]string{"image": img.Spec, "field": img.Path, "state": string(img.State), "reason": string(f.Reason)}
	if d := img.Digest(); d != "" {
		props["digest"] = d
	}
	if f.Authority != "" {
		props["authority"] = f.Authority
	}
	if p.AuditOnly {
		props["auditOnly"] = "true"
	}
	if p.BreakGlass != "" {
		props["breakGlass"] = p.BreakGlass
	}
	return reportsv1alpha1.ReportResult{
		Source:      ReportSource,
		Policy:      f.Policy,
		Rule:        f.Authority,
		Category:    ReportCategory,
		Result:      reportResult(img),
		Subjects:    []corev1.ObjectReference{{APIVersion: "v1", Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID}},
		Description: clipNote(p.Note(img)),
		Properties:  props,
	}
}

// reportResult: pass verified, fail a violation of an Enforce policy, warn
// one of a Warn-mode policy only or an image running by break-glass, error
// an image that could not be checked, skip one no policy governs.
func reportResult(img ImageReport) reportsv1alpha1.Result {
	switch img.State {
	case StateVerified:
		return resultPass
	case StateUngoverned:
		return resultSkip
	case StateUnverifiable:
		return resultError
	case StateBreakGlass:
		return resultWarn
	}
	if img.Decision.Verdict == policy.VerdictWarned {
		return resultWarn
	}
	return resultFail
}
