package admission

import (
	"fmt"
	"sort"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
)

// ConfigurationOptions say where the API server finds Signet and which
// objects it sends; WebhookConfigurations fills in everything else from
// Kinds, so config/webhook, the chart (tested against it), the e2e harness
// and the demo register the same webhooks.
type ConfigurationOptions struct {
	// Name of the ValidatingWebhookConfiguration and the
	// MutatingWebhookConfiguration ("signet" makes signet-validating and
	// signet-mutating).
	Name string
	// Client returns how the API server reaches the handler served on path
	// (a Service or a URL, with its caBundle).
	Client func(path string) admissionregistrationv1.WebhookClientConfig
	// NamespaceSelector picks the namespaces whose Pods and workloads are
	// judged (the system namespaces and Signet's own stay out, so Signet can
	// always restart itself).
	NamespaceSelector *metav1.LabelSelector
	// PolicySelector picks the ClusterImagePolicies the policy webhook
	// checks (cluster-scoped, so an objectSelector); nil: all.
	PolicySelector *metav1.LabelSelector
	// TimeoutSeconds is the API server's limit (--webhook-timeout).
	TimeoutSeconds int32
}

// WebhookConfigurations returns Signet's validating configuration (one
// webhook per kind in Kinds and the ClusterImagePolicy webhook) and its
// digest-pinning configuration (one mutating webhook per kind), webhooks
// sorted by name.
//
// Every webhook fails closed (failurePolicy Fail: an unreachable Signet
// stops Pods rather than admitting unverified images) and has no side
// effects (dry-run requests are judged too). matchConditions skip UPDATEs
// that change no image, so label, annotation, replica and finalizer changes
// never reach Signet; status updates never do, as the rules name no status
// subresource. The pinning webhooks run before the validators (mutating
// webhooks always do), which then judge the pinned references from the
// verdict cache; reinvocationPolicy Never, as a later mutation that changes
// an image is judged by the validators anyway.
func WebhookConfigurations(o ConfigurationOptions) (*admissionregistrationv1.ValidatingWebhookConfiguration, *admissionregistrationv1.MutatingWebhookConfiguration) {
	fail := admissionregistrationv1.Fail
	equivalent := admissionregistrationv1.Equivalent
	none := admissionregistrationv1.SideEffectClassNone
	never := admissionregistrationv1.NeverReinvocationPolicy
	timeout := o.TimeoutSeconds
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Name + "-validating"},
	}
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Name + "-mutating"},
	}
	validating := func(name, path string, rule admissionregistrationv1.RuleWithOperations) admissionregistrationv1.ValidatingWebhook {
		return admissionregistrationv1.ValidatingWebhook{
			Name: name, ClientConfig: o.Client(path), Rules: []admissionregistrationv1.RuleWithOperations{rule},
			FailurePolicy: &fail, MatchPolicy: &equivalent, SideEffects: &none, TimeoutSeconds: &timeout,
			AdmissionReviewVersions: []string{"v1"},
		}
	}
	for _, k := range Kinds {
		rule := k.rule()
		v := validating(k.Resource+".validate.signet.dev", k.ValidatePath(), rule)
		v.NamespaceSelector = o.NamespaceSelector.DeepCopy()
		v.MatchConditions = k.matchConditions()
		vwc.Webhooks = append(vwc.Webhooks, v)
		mwc.Webhooks = append(mwc.Webhooks, admissionregistrationv1.MutatingWebhook{
			Name: k.Resource + ".pin.signet.dev", ClientConfig: o.Client(k.PinPath()), Rules: v.Rules,
			FailurePolicy: &fail, MatchPolicy: &equivalent, SideEffects: &none, TimeoutSeconds: &timeout,
			AdmissionReviewVersions: []string{"v1"}, NamespaceSelector: o.NamespaceSelector.DeepCopy(),
			MatchConditions: k.matchConditions(), ReinvocationPolicy: &never,
		})
	}
	// Policies are cluster-scoped: no namespaceSelector. UPDATEs that leave
	// the spec alone are skipped by the handler (and never denied).
	p := validating("clusterimagepolicies.validate.signet.dev", PathClusterImagePolicies, admissionregistrationv1.RuleWithOperations{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		Rule: admissionregistrationv1.Rule{APIGroups: []string{v1alpha1.GroupVersion.Group}, APIVersions: []string{v1alpha1.GroupVersion.Version},
			Resources: []string{"clusterimagepolicies"}},
	})
	p.ObjectSelector = o.PolicySelector.DeepCopy()
	vwc.Webhooks = append(vwc.Webhooks, p)
	sort.Slice(vwc.Webhooks, func(i, j int) bool { return vwc.Webhooks[i].Name < vwc.Webhooks[j].Name })
	sort.Slice(mwc.Webhooks, func(i, j int) bool { return mwc.Webhooks[i].Name < mwc.Webhooks[j].Name })
	return vwc, mwc
}

// ExcludeNamespaces selects every namespace but those named.
func ExcludeNamespaces(names ...string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: names,
	}}}
}

func (k Kind) rule() admissionregistrationv1.RuleWithOperations {
	return admissionregistrationv1.RuleWithOperations{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		Rule: admissionregistrationv1.Rule{APIGroups: []string{k.Group}, APIVersions: []string{k.Version},
			Resources: append([]string{k.Resource}, k.Subresources...)},
	}
}

// matchConditions: CREATE, or an UPDATE that changes an image of a
// container of any kind or of an image volume. Absent fields read as empty
// (optional chaining), so the condition cannot fail on any valid object;
// with failurePolicy Fail an evaluation error would deny the request.
func (k Kind) matchConditions() []admissionregistrationv1.MatchCondition {
	spec := ""
	for _, f := range k.SpecPath {
		spec += ".?" + f
	}
	containers := fmt.Sprintf("['initContainers', 'containers', 'ephemeralContainers'].exists(k, "+
		"object%[1]s[?k].orValue([]).map(c, c.?image.orValue('')) != oldObject%[1]s[?k].orValue([]).map(c, c.?image.orValue('')))", spec)
	volumes := fmt.Sprintf("object%[1]s.?volumes.orValue([]).filter(v, has(v.image)).map(v, v.image.?reference.orValue('')) != "+
		"oldObject%[1]s.?volumes.orValue([]).filter(v, has(v.image)).map(v, v.image.?reference.orValue(''))", spec)
	return []admissionregistrationv1.MatchCondition{{
		Name:       "create-or-images-changed",
		Expression: strings.Join([]string{"request.operation != 'UPDATE'", containers, volumes}, " || "),
	}}
}
