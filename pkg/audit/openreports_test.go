package audit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	reportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/test/stack"
)

// openReportsCRD is the Report CRD as the Go module ships it.
func openReportsCRD(t *testing.T) []byte {
	t.Helper()
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/openreports/reports-api").Output()
	if err != nil {
		t.Fatalf("go list the OpenReports module: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(dir)), "config", "crd", "openreports.io_reports.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOpenReports: a cycle's results become the namespace's Report in the
// OpenReports API — only while its CRD is installed — one result per Pod
// image, and results of Pods that went away go with them.
func TestOpenReports(t *testing.T) {
	f := newAuditFixture(t)
	ctx := context.Background()
	ns, pods := f.namespace(t, map[string]string{"signed": f.signed, "unsigned": f.unsigned})
	auditor := &Auditor{Engine: f.engine, Policies: func() []*policy.Policy { return f.policies }, Reader: f.c, Namespace: ns}
	// A name of its own: an e2e webhook auditing the whole cluster at the
	// same time writes its signet-images Report into this namespace too.
	reports := &Reports{Client: f.c, Reader: f.c, Discovery: f.dc, Name: fmt.Sprintf("signet-images-test-%d", os.Getpid())}
	cycle := func() *Report {
		t.Helper()
		rep, err := auditor.Cycle(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := reports.Write(ctx, rep); err != nil {
			t.Fatal(err)
		}
		return rep
	}
	get := func() (*reportsv1alpha1.Report, error) {
		got := &reportsv1alpha1.Report{}
		return got, f.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: reports.Name}, got)
	}

	t.Run("nothing is written while the CRD is not installed", func(t *testing.T) {
		uninstallOpenReports(t, f)
		if ok, err := reports.Installed(); ok || err != nil {
			t.Fatalf("Installed() = %v, %v after the CRD was deleted", ok, err)
		}
		cycle() // no error: there is nowhere to write
	})

	stack.Load(t).ApplyCRD(t, openReportsCRD(t), reportsv1alpha1.GroupVersion.String())
	result := func(pod *corev1.Pod, res reportsv1alpha1.Result, digest, ref, reason, msg string, at int64) reportsv1alpha1.ReportResult {
		return reportsv1alpha1.ReportResult{
			Source: "signet", Policy: "prod", Rule: "ci-kms", Category: "Image signatures", Result: res,
			Timestamp:   metav1.Timestamp{Seconds: at},
			Subjects:    []corev1.ObjectReference{{APIVersion: "v1", Kind: "Pod", Namespace: ns, Name: pod.Name, UID: pod.UID}},
			Description: msg,
			Properties:  map[string]string{"image": ref, "field": "spec.containers[0].image", "digest": digest, "state": map[reportsv1alpha1.Result]string{"pass": "verified", "fail": "violation"}[res], "reason": reason, "authority": "ci-kms"},
		}
	}
	signedMsg := fmt.Sprintf(`image %s@%s (spec.containers[0].image) admitted by ClusterImagePolicy "prod" (authority "ci-kms")`, f.signed, f.signedDigest)
	unsignedMsg := fmt.Sprintf(`image %s@%s (spec.containers[0].image) denied by ClusterImagePolicy "prod": no valid signature from authority "ci-kms" (awskms:///%s): no signature found. Sign this digest in your pipeline with one of the policy's authorities.`, f.unsigned, f.unsignedDigest, f.alias)

	t.Run("one result per Pod image", func(t *testing.T) {
		rep := cycle()
		got, err := get()
		if err != nil {
			t.Fatal(err)
		}
		at := rep.Started.Unix()
		want := []reportsv1alpha1.ReportResult{
			result(pods["signed"], "pass", f.signedDigest, f.signed, "Verified", signedMsg, at),
			result(pods["unsigned"], "fail", f.unsignedDigest, f.unsigned, "NoSignature", unsignedMsg, at),
		}
		if got.Source != "signet" || got.Labels["app.kubernetes.io/managed-by"] != "signet" || got.Summary != (reportsv1alpha1.ReportSummary{Pass: 1, Fail: 1}) || !reflect.DeepEqual(got.Results, want) {
			t.Fatalf("Report:\nsource %q labels %v summary %+v\nresults %+v\nwant    %+v", got.Source, got.Labels, got.Summary, got.Results, want)
		}
	})
	t.Run("an unchanged result is not written again", func(t *testing.T) {
		before, _ := get()
		cycle()
		after, err := get()
		if err != nil || after.ResourceVersion != before.ResourceVersion {
			t.Fatalf("resourceVersion %s -> %s (%v)", before.ResourceVersion, after.ResourceVersion, err)
		}
	})
	t.Run("a Pod that went away leaves the Report", func(t *testing.T) {
		if err := f.c.Delete(ctx, pods["unsigned"]); err != nil {
			t.Fatal(err)
		}
		waitGone(t, f.c, pods["unsigned"])
		rep := cycle()
		got, err := get()
		if err != nil {
			t.Fatal(err)
		}
		want := []reportsv1alpha1.ReportResult{result(pods["signed"], "pass", f.signedDigest, f.signed, "Verified", signedMsg, rep.Started.Unix())}
		if got.Summary != (reportsv1alpha1.ReportSummary{Pass: 1}) || !reflect.DeepEqual(got.Results, want) {
			t.Fatalf("summary %+v\nresults %+v\nwant    %+v", got.Summary, got.Results, want)
		}
	})
	t.Run("a namespace where nothing runs has no Report", func(t *testing.T) {
		if err := f.c.Delete(ctx, pods["signed"]); err != nil {
			t.Fatal(err)
		}
		waitGone(t, f.c, pods["signed"])
		cycle()
		if _, err := get(); !apierrors.IsNotFound(err) {
			t.Fatalf("Report after its last Pod went away: %v", err)
		}
	})
}

// uninstallOpenReports deletes the Report CRD and waits until it is gone
// and the API server no longer serves the kind.
func uninstallOpenReports(t *testing.T, f *auditFixture) {
	t.Helper()
	ctx := context.Background()
	crd := &apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: "reports.openreports.io"}}
	if err := f.c.Delete(ctx, crd); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		getErr := f.c.Get(ctx, client.ObjectKeyFromObject(crd), crd)
		_, err := f.dc.ServerResourcesForGroupVersion(reportsv1alpha1.GroupVersion.String())
		if apierrors.IsNotFound(getErr) && apierrors.IsNotFound(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Report CRD is still there 60s after its deletion: %v, %v", getErr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
