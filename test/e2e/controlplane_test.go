package e2e

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/signet-dev/signet/test/stack"
)

// TestControllersCreatePods proves the stack's premise for admission tests:
// a Deployment becomes a ReplicaSet and Pods through kube-controller-manager,
// so workload admission is exercised one level down, as in a real cluster.
func TestControllersCreatePods(t *testing.T) {
	env := stack.Load(t)
	cs, err := kubernetes.NewForConfig(env.RESTConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-controlplane-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{}) })

	replicas := int32(2)
	labels := map[string]string{"app": "demo"}
	_, err = cs.AppsV1().Deployments(ns.Name).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "demo"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example.com/app:v1"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		pods, err := cs.CoreV1().Pods(ns.Name).List(ctx, metav1.ListOptions{LabelSelector: "app=demo"})
		if err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) == 2 {
			owner := metav1.GetControllerOf(&pods.Items[0])
			if owner == nil || owner.Kind != "ReplicaSet" {
				t.Fatalf("pod owner = %v, want a ReplicaSet", owner)
			}
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the Deployment made %d Pods, want 2", len(pods.Items))
		case <-time.After(200 * time.Millisecond):
		}
	}
}
