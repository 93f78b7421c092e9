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
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the API group and version of every Portico kind.
	GroupVersion = schema.GroupVersion{Group: "portico.dev", Version: "v1alpha1"}

	// SchemeBuilder registers Portico's kinds with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds Portico's kinds to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
