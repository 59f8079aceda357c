package admission

import (
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Paths the validating webhooks are served on; config/webhook and the Helm
// chart point the API server at them.
const (
	PathPods                   = "/validate/pods"
	PathDeployments            = "/validate/deployments"
	PathReplicaSets            = "/validate/replicasets"
	PathStatefulSets           = "/validate/statefulsets"
	PathDaemonSets             = "/validate/daemonsets"
	PathJobs                   = "/validate/jobs"
	PathCronJobs               = "/validate/cronjobs"
	PathReplicationControllers = "/validate/replicationcontrollers"
)

// Register serves a validating webhook per Pod-bearing kind on srv.
func Register(srv webhook.Server, scheme *runtime.Scheme, j *Judge) {
	srv.Register(PathPods, withValidator[*corev1.Pod](scheme, j))
	srv.Register(PathDeployments, withValidator[*appsv1.Deployment](scheme, j))
	srv.Register(PathReplicaSets, withValidator[*appsv1.ReplicaSet](scheme, j))
	srv.Register(PathStatefulSets, withValidator[*appsv1.StatefulSet](scheme, j))
	srv.Register(PathDaemonSets, withValidator[*appsv1.DaemonSet](scheme, j))
	srv.Register(PathJobs, withValidator[*batchv1.Job](scheme, j))
	srv.Register(PathCronJobs, withValidator[*batchv1.CronJob](scheme, j))
	srv.Register(PathReplicationControllers, withValidator[*corev1.ReplicationController](scheme, j))
}

func withValidator[T client.Object](scheme *runtime.Scheme, j *Judge) *admission.Webhook {
	return admission.WithValidator[T](scheme, Validator[T]{Judge: j})
}
