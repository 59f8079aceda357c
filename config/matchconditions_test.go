package config_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/signet-dev/signet/test/stack"
)

// recorder is a webhook that admits everything and remembers each call as
// "resource[/subresource] OPERATION name".
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(req.Body).Decode(&review); err != nil || review.Request == nil {
		http.Error(w, "bad review", http.StatusBadRequest)
		return
	}
	in := review.Request
	res := in.Resource.Resource
	if in.SubResource != "" {
		res += "/" + in.SubResource
	}
	r.mu.Lock()
	r.calls = append(r.calls, fmt.Sprintf("%s %s %s", res, in.Operation, in.Name))
	r.mu.Unlock()
	review.Response = &admissionv1.AdmissionResponse{UID: in.UID, Allowed: true}
	review.Request = nil
	_ = json.NewEncoder(w).Encode(review)
}

// take returns the calls about name since the last take. Controllers act on
// objects of the namespace too (a Deployment's ReplicaSet); the test
// follows only the objects it changes itself. Repeated calls collapse into
// one: an update retried after a conflict is admitted again (the API
// server admits before it checks the resourceVersion).
func (r *recorder) take(name string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.calls {
		if strings.HasSuffix(c, " "+name) && (len(out) == 0 || out[len(out)-1] != c) {
			out = append(out, c)
		}
	}
	r.calls = nil
	return out
}

// TestMatchConditionsSkipIrrelevantUpdates registers config/webhook's
// ValidatingWebhookConfiguration with the stack's API server (pointed at a
// recording webhook on 127.0.0.1 and narrowed to one test namespace) and
// checks what the API server sends: every CREATE, every UPDATE that changes
// an image (ephemeral containers included), and no UPDATE that leaves the
// images alone. Any matchCondition evaluation error would surface here as
// a denied request (failurePolicy Fail).
func TestMatchConditionsSkipIrrelevantUpdates(t *testing.T) {
	env := stack.Load(t)
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.RESTConfig(t), client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	rec := &recorder{}
	srv := httptest.NewTLSServer(rec)
	defer srv.Close()
	caBundle := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	run := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano()%100000)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "signet-config-" + run, Labels: map[string]string{"signet-config-test": run}}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), ns) })

	validating, _ := webhookConfigurations(t)
	cfg := validating.DeepCopy()
	cfg.ObjectMeta = metav1.ObjectMeta{Name: "signet-config-test-" + run}
	// The Pod and workload webhooks only: the ClusterImagePolicy webhook
	// (cluster-scoped, no namespaceSelector) would see every policy on the
	// stack, and has no matchConditions to test.
	cfg.Webhooks = slices.DeleteFunc(cfg.Webhooks, func(w admissionregistrationv1.ValidatingWebhook) bool { return w.NamespaceSelector == nil })
	for i := range cfg.Webhooks {
		w := &cfg.Webhooks[i]
		url := srv.URL + *w.ClientConfig.Service.Path
		w.ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caBundle}
		// Only this test's namespace: the shipped selector, plus a label.
		w.NamespaceSelector.MatchLabels = map[string]string{"signet-config-test": run}
	}
	if err := c.Create(ctx, cfg); err != nil {
		t.Fatalf("creating the webhook configuration: %v", err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), cfg) })

	image := func(tag string) string { return "registry.example.com/app:" + tag }
	podSpec := func(tag string) corev1.PodSpec {
		return corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image(tag)}}}
	}
	template := func(tag string) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}}, Spec: podSpec(tag)}
	}
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: ns.Name} }
	selector := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}

	// The API server picks up a new configuration within moments: dry-run
	// Pods until the recorder hears of one.
	deadline := time.Now().Add(30 * time.Second)
	for {
		probe := &corev1.Pod{ObjectMeta: meta("probe"), Spec: podSpec("v1")}
		if err := c.Create(ctx, probe, client.DryRunAll); err != nil {
			t.Fatal(err)
		}
		if len(rec.take("probe")) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the API server never called the webhook")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// step changes obj with mutate (nil: create it) and checks the calls.
	step := func(t *testing.T, obj client.Object, mutate func(), want ...string) {
		t.Helper()
		var err error
		if mutate == nil {
			err = c.Create(ctx, obj)
		} else {
			// Controllers update these objects too: retry on conflict (the
			// API server checks the resourceVersion before admission).
			err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
				if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
					return err
				}
				mutate()
				return c.Update(ctx, obj)
			})
		}
		if err != nil {
			t.Fatalf("%v", err)
		}
		if got := rec.take(obj.GetName()); strings.Join(got, "; ") != strings.Join(want, "; ") {
			t.Fatalf("webhook calls %q, want %q", got, want)
		}
	}
	relabel := func(obj client.Object) func() {
		return func() { obj.SetLabels(map[string]string{"touched": fmt.Sprint(time.Now().UnixNano())}) }
	}

	t.Run("pod", func(t *testing.T) {
		pod := &corev1.Pod{ObjectMeta: meta("pod"), Spec: podSpec("v1")}
		step(t, pod, nil, "pods CREATE pod")
		step(t, pod, relabel(pod))
		step(t, pod, func() { pod.Spec.Containers[0].Image = image("v2") }, "pods UPDATE pod")
		// kubectl debug: the ephemeralcontainers subresource.
		if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := c.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
				return err
			}
			pod.Spec.EphemeralContainers = append(pod.Spec.EphemeralContainers, corev1.EphemeralContainer{
				EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: image("debug"), TerminationMessagePolicy: corev1.TerminationMessageReadFile, ImagePullPolicy: corev1.PullIfNotPresent},
			})
			return c.SubResource("ephemeralcontainers").Update(ctx, pod)
		}); err != nil {
			t.Fatal(err)
		}
		if got, want := rec.take("pod"), []string{"pods/ephemeralcontainers UPDATE pod"}; strings.Join(got, ";") != strings.Join(want, ";") {
			t.Fatalf("webhook calls %q, want %q", got, want)
		}
	})
	t.Run("deployment", func(t *testing.T) {
		d := &appsv1.Deployment{ObjectMeta: meta("deploy"), Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](0), Selector: selector, Template: template("v1")}}
		step(t, d, nil, "deployments CREATE deploy")
		step(t, d, func() { d.Spec.Replicas = ptr.To[int32](2) })
		step(t, d, func() { d.Spec.Template.Annotations = map[string]string{"kubectl.kubernetes.io/restartedAt": "now"} })
		step(t, d, func() {
			d.Spec.Template.Spec.InitContainers = []corev1.Container{{Name: "init", Image: image("init")}}
		}, "deployments UPDATE deploy")
		// Image volumes are pulled like container images.
		step(t, d, func() {
			d.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "model", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: image("model-1")}}}}
		}, "deployments UPDATE deploy")
		step(t, d, func() { d.Spec.Template.Spec.Volumes[0].Image.Reference = image("model-2") }, "deployments UPDATE deploy")
		step(t, d, func() {
			d.Spec.Template.Spec.Volumes = append(d.Spec.Template.Spec.Volumes, corev1.Volume{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		})
	})
	t.Run("replicaset", func(t *testing.T) {
		rs := &appsv1.ReplicaSet{ObjectMeta: meta("rs"), Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](0), Selector: selector, Template: template("v1")}}
		step(t, rs, nil, "replicasets CREATE rs")
		step(t, rs, relabel(rs))
		step(t, rs, func() { rs.Spec.Template.Spec.Containers[0].Image = image("v2") }, "replicasets UPDATE rs")
	})
	t.Run("statefulset", func(t *testing.T) {
		ss := &appsv1.StatefulSet{ObjectMeta: meta("sts"), Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](0), Selector: selector, Template: template("v1")}}
		step(t, ss, nil, "statefulsets CREATE sts")
		step(t, ss, func() { ss.Spec.Replicas = ptr.To[int32](1) })
		step(t, ss, func() { ss.Spec.Template.Spec.Containers[0].Image = image("v2") }, "statefulsets UPDATE sts")
	})
	t.Run("daemonset", func(t *testing.T) {
		ds := &appsv1.DaemonSet{ObjectMeta: meta("ds"), Spec: appsv1.DaemonSetSpec{Selector: selector, Template: template("v1")}}
		step(t, ds, nil, "daemonsets CREATE ds")
		step(t, ds, relabel(ds))
		step(t, ds, func() { ds.Spec.Template.Spec.Containers[0].Image = image("v2") }, "daemonsets UPDATE ds")
	})
	t.Run("job", func(t *testing.T) {
		spec := podSpec("v1")
		spec.RestartPolicy = corev1.RestartPolicyNever
		job := &batchv1.Job{ObjectMeta: meta("job"), Spec: batchv1.JobSpec{Suspend: ptr.To(true), Template: corev1.PodTemplateSpec{Spec: spec}}}
		step(t, job, nil, "jobs CREATE job")
		step(t, job, relabel(job))
		step(t, job, func() { job.Spec.Parallelism = ptr.To[int32](2) })
	})
	t.Run("cronjob", func(t *testing.T) {
		spec := podSpec("v1")
		spec.RestartPolicy = corev1.RestartPolicyNever
		cj := &batchv1.CronJob{ObjectMeta: meta("cron"), Spec: batchv1.CronJobSpec{Schedule: "0 0 1 1 *", Suspend: ptr.To(true),
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: spec}}}}}
		step(t, cj, nil, "cronjobs CREATE cron")
		step(t, cj, func() { cj.Spec.Schedule = "0 0 2 1 *" })
		step(t, cj, func() { cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image = image("v2") }, "cronjobs UPDATE cron")
	})
	t.Run("replicationcontroller", func(t *testing.T) {
		tpl := template("v1")
		rc := &corev1.ReplicationController{ObjectMeta: meta("rc"), Spec: corev1.ReplicationControllerSpec{Replicas: ptr.To[int32](0), Selector: map[string]string{"app": "x"}, Template: &tpl}}
		step(t, rc, nil, "replicationcontrollers CREATE rc")
		step(t, rc, func() { rc.Spec.Replicas = ptr.To[int32](1) })
		step(t, rc, func() { rc.Spec.Template.Spec.Containers[0].Image = image("v2") }, "replicationcontrollers UPDATE rc")
	})
}
