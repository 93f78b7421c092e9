// Package v1alpha1 is Portico's user-facing API, group portico.dev: the configuration
// kinds users write (IPAddressPool, L2Advertisement, BGPAdvertisement, BGPPeer,
// BFDProfile, Community) and the status kinds the speakers write (SpeakerStatus per
// node, ServiceAnnouncement per Service).
//
// Per-object rules live here as OpenAPI bounds and CEL rules so that the API server
// refuses a bad object even when no webhook runs. Rules that need other objects
// (overlapping pools, a peer naming a missing BFD profile) are the controller's.
//
// +kubebuilder:object:generate=true
// +groupName=portico.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the API group and version of every Portico kind.
	GroupVersion = schema.GroupVersion{Group: "portico.dev", Version: "v1alpha1"}

	// SchemeBuilder registers Portico's kinds with a runtime.Scheme (each
	// kind's file adds its types with register).
	SchemeBuilder = runtime.NewSchemeBuilder()

	// AddToScheme adds Portico's kinds to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// register adds kinds of this group and version to SchemeBuilder, as
// apimachinery's builders do (controller-runtime's scheme.Builder, which did
// this, is deprecated: API packages should depend on apimachinery only).
func register(objs ...runtime.Object) {
	SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(GroupVersion, objs...)
		metav1.AddToGroupVersion(s, GroupVersion)
		return nil
	})
}
