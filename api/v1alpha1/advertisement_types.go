package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PoolAndNodeSelection says which pools an advertisement covers and from which nodes.
// It is shared by L2Advertisement and BGPAdvertisement.
type PoolAndNodeSelection struct {
	// IPAddressPools names the pools whose addresses are advertised. When neither this
	// nor IPAddressPoolSelectors is set, every pool is advertised.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=set
	// +optional
	IPAddressPools []string `json:"ipAddressPools,omitempty"`

	// IPAddressPoolSelectors select pools by label; a pool matching any is advertised.
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors,omitempty"`

	// NodeSelectors limit the nodes that may announce: a node matching any selector
	// is a candidate. When empty, every node is a candidate.
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`
}

// AdvertisementStatus is written by the controller.
type AdvertisementStatus struct {
	// Conditions: Ready is False when the advertisement names a pool, peer or
	// interface that does not exist, and the message says which.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// L2AdvertisementSpec announces pool addresses on the local segment with ARP and NDP.
type L2AdvertisementSpec struct {
	PoolAndNodeSelection `json:",inline"`

	// Interfaces the elected node answers ARP/NDP on. When empty, every interface that
	// is up and is not a loopback, veth, bridge or container-network interface.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=15
	// +listType=set
	// +optional
	Interfaces []string `json:"interfaces,omitempty"`
}

// L2Advertisement makes the addresses of the selected pools reachable on the local
// segment: one elected node per IP answers ARP (IPv4) and NDP (IPv6) for it.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=l2adv
// +kubebuilder:printcolumn:name="Pools",type=string,JSONPath=`.spec.ipAddressPools`
// +kubebuilder:printcolumn:name="Interfaces",type=string,JSONPath=`.spec.interfaces`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type L2Advertisement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   L2AdvertisementSpec `json:"spec,omitempty"`
	Status AdvertisementStatus `json:"status,omitempty"`
}

// L2AdvertisementList is a list of L2Advertisements.
//
// +kubebuilder:object:root=true
type L2AdvertisementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []L2Advertisement `json:"items"`
}

// CommunityRef is a BGP community given as a value or as the name of an alias defined
// in a Community object.
//
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9]{1,5}:[0-9]{1,5}$') ? (int(self.split(':', 2)[0]) <= 65535 && int(self.split(':', 2)[1]) <= 65535) : (self.matches('^large:[0-9]{1,10}:[0-9]{1,10}:[0-9]{1,10}$') ? (int(self.split(':', 4)[1]) <= 4294967295 && int(self.split(':', 4)[2]) <= 4294967295 && int(self.split(':', 4)[3]) <= 4294967295) : self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))",message="must be a standard community A:B (each 0-65535, e.g. 64500:100), a large community large:A:B:C (each 0-4294967295, e.g. large:64500:1:2), or the name of an alias in a Community object (lowercase letters, digits and '-')"
type CommunityRef string

// BGPAdvertisementSpec announces pool addresses as routes to BGP peers.
type BGPAdvertisementSpec struct {
	PoolAndNodeSelection `json:",inline"`

	// Peers names the BGPPeers that receive the routes. When empty, every peer does.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=set
	// +optional
	Peers []string `json:"peers,omitempty"`

	// AggregationLength is the prefix length of the IPv4 routes announced: 32 announces
	// each Service IP on its own; shorter lengths announce the covering prefix. It must
	// not be shorter than the prefix of a pool CIDR it covers (the controller reports
	// that case on the advertisement).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=32
	// +kubebuilder:default=32
	// +optional
	AggregationLength *int32 `json:"aggregationLength,omitempty"`

	// AggregationLengthV6 is AggregationLength for IPv6 routes.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=128
	// +kubebuilder:default=128
	// +optional
	AggregationLengthV6 *int32 `json:"aggregationLengthV6,omitempty"`

	// LocalPref is the LOCAL_PREF attribute sent to iBGP peers (ignored for eBGP).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4294967295
	// +optional
	LocalPref *int64 `json:"localPref,omitempty"`

	// Communities attached to the routes: standard (64500:100), large
	// (large:64500:1:2) or alias names from Community objects.
	// +kubebuilder:validation:MaxItems=32
	// +listType=set
	// +optional
	Communities []CommunityRef `json:"communities,omitempty"`
}

// BGPAdvertisement announces the addresses of the selected pools as routes to BGP
// peers, from every eligible node (ECMP).
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=bgpadv
// +kubebuilder:printcolumn:name="Pools",type=string,JSONPath=`.spec.ipAddressPools`
// +kubebuilder:printcolumn:name="Peers",type=string,JSONPath=`.spec.peers`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BGPAdvertisement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BGPAdvertisementSpec `json:"spec,omitempty"`
	Status AdvertisementStatus  `json:"status,omitempty"`
}

// BGPAdvertisementList is a list of BGPAdvertisements.
//
// +kubebuilder:object:root=true
type BGPAdvertisementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPAdvertisement `json:"items"`
}

func init() {
	register(&L2Advertisement{}, &L2AdvertisementList{}, &BGPAdvertisement{}, &BGPAdvertisementList{})
}
