// Package v1alpha1 holds the ClusterImagePolicy API, group signet.dev.
//
// It is a leaf package: it imports apimachinery only, so any tool can
// depend on the API without pulling in Signet's machinery.
//
// +kubebuilder:object:generate=true
// +groupName=signet.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the API's group and version.
	GroupVersion = schema.GroupVersion{Group: "signet.dev", Version: "v1alpha1"}
	// SchemeGroupVersion is GroupVersion under the name client-go's
	// generators and listers expect.
	SchemeGroupVersion = GroupVersion

	// SchemeBuilder registers the API's types.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds the API's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &ClusterImagePolicy{}, &ClusterImagePolicyList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
