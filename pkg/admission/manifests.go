package admission

// This file holds the controller-gen markers `make generate` turns into
// config/rbac/role.yaml; a test (config/manifests_test.go) fails when it is
// stale, and applies it to a real kube-apiserver. The webhook
// configurations are not markers: hack/webhookgen generates them from
// Kinds (configurations.go). The Helm chart (charts/signet) follows both.
//
// RBAC of the admission side: namespace labels for policies'
// namespaceSelectors (read through the manager's cache: list and watch);
// Pods' imagePullSecrets and their service accounts' (read on demand with
// an uncached reader: get only, no cluster-wide watch of Secrets); the
// MutatingWebhookConfiguration, watched by name, to know whether digest
// pinning is installed (a validator that believed it was would deny every
// tag).
//
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets;serviceaccounts,verbs=get
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations,resourceNames=signet-mutating,verbs=get;list;watch
