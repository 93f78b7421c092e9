package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AddressEntry is one entry of a pool: a CIDR, an inclusive range or a single IP.
// The rules below are the cheap per-entry checks the API server can afford; IPv6
// range order has no affordable CEL form and is checked by the controller and webhook.
//
// +kubebuilder:validation:MinLength=2
// +kubebuilder:validation:MaxLength=81
// +kubebuilder:validation:XValidation:rule="isIP(self) || isCIDR(self) || (self.indexOf('-') > 0 && isIP(self.split('-', 2)[0]) && isIP(self.split('-', 2)[1]))",message="must be a CIDR (192.0.2.0/24), an inclusive range without spaces (192.0.2.10-192.0.2.20) or a single IP (192.0.2.7)"
// +kubebuilder:validation:XValidation:rule="!isCIDR(self) || cidr(self) == cidr(self).masked()",message="CIDR has host bits set: write the network address instead (for 192.0.2.5/24 that is 192.0.2.0/24), or a single IP without a prefix length"
// +kubebuilder:validation:XValidation:rule="!(self.indexOf('-') > 0 && isIP(self.split('-', 2)[0]) && isIP(self.split('-', 2)[1])) || ip(self.split('-', 2)[0]).family() == ip(self.split('-', 2)[1]).family()",message="range mixes IPv4 and IPv6: both ends must be of the same family; write one range per family"
// +kubebuilder:validation:XValidation:rule="!(self.indexOf('-') > 0 && isIP(self.split('-', 2)[0]) && isIP(self.split('-', 2)[1]) && ip(self.split('-', 2)[0]).family() == 4 && ip(self.split('-', 2)[1]).family() == 4) || (int(self.split('-', 2)[0].split('.', 4)[0]) * 16777216 + int(self.split('-', 2)[0].split('.', 4)[1]) * 65536 + int(self.split('-', 2)[0].split('.', 4)[2]) * 256 + int(self.split('-', 2)[0].split('.', 4)[3]) <= int(self.split('-', 2)[1].split('.', 4)[0]) * 16777216 + int(self.split('-', 2)[1].split('.', 4)[1]) * 65536 + int(self.split('-', 2)[1].split('.', 4)[2]) * 256 + int(self.split('-', 2)[1].split('.', 4)[3]))",message="range end is before its start: write the lower address first (192.0.2.10-192.0.2.20)"
type AddressEntry string

// IPAddressPoolSpec is the set of addresses Portico may hand out, and to whom.
type IPAddressPoolSpec struct {
	// Addresses this pool hands out: CIDRs (192.0.2.0/24, 2001:db8::/64), inclusive
	// ranges (192.0.2.10-192.0.2.20) and single IPs (192.0.2.7), IPv4 and IPv6 mixed.
	// A pool with both families can give a dual-stack Service both of its IPs.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	Addresses []AddressEntry `json:"addresses"`

	// AutoAssign lets the controller pick this pool for Services that do not ask for a
	// pool or an IP. When false, the pool is used only for Services that name it with
	// the portico.dev/address-pool annotation or request one of its IPs.
	// +kubebuilder:default=true
	// +optional
	AutoAssign *bool `json:"autoAssign,omitempty"`

	// AvoidBuggyIPs skips IPv4 addresses ending in .0 and .255, which some old
	// clients and routers treat as network or broadcast addresses.
	// +optional
	AvoidBuggyIPs bool `json:"avoidBuggyIPs,omitempty"`

	// Allocation restricts which Services may get addresses from this pool and in
	// which order pools are tried. A pool without it serves every namespace.
	// +optional
	Allocation *ServiceAllocation `json:"allocation,omitempty"`
}

// ServiceAllocation pins a pool to namespaces and Services and orders it among pools.
// A Service is matched when it is in one of Namespaces or a namespace matching
// NamespaceSelector (when either is set), and its labels match ServiceSelector (when
// set). Pinned pools that match a Service are tried before unpinned ones.
type ServiceAllocation struct {
	// Priority orders the pools that match a Service: lower numbers are tried first;
	// pools with equal priority are tried in name order.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	// +optional
	Priority int32 `json:"priority,omitempty"`

	// Namespaces whose Services may use this pool.
	// +kubebuilder:validation:MaxItems=256
	// +listType=set
	// +optional
	Namespaces []string `json:"namespaces,omitempty"`

	// NamespaceSelector selects, by label, namespaces whose Services may use this pool.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// ServiceSelector selects, by label, the Services that may use this pool.
	// +optional
	ServiceSelector *metav1.LabelSelector `json:"serviceSelector,omitempty"`
}

// IPAddressPoolStatus is written by the controller.
type IPAddressPoolStatus struct {
	// Conditions: Ready is True when the pool is valid and hands out addresses; when
	// False its reason and message say why (Invalid, Overlap with another pool, Empty).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// AssignedIPv4 is the number of IPv4 addresses of this pool held by Services.
	// +optional
	AssignedIPv4 int64 `json:"assignedIPv4"`
	// AvailableIPv4 is the number of IPv4 addresses of this pool still free.
	// +optional
	AvailableIPv4 int64 `json:"availableIPv4"`
	// AssignedIPv6 is the number of IPv6 addresses of this pool held by Services.
	// +optional
	AssignedIPv6 int64 `json:"assignedIPv6"`
	// AvailableIPv6 is the number of IPv6 addresses of this pool still free. It stops
	// at 9223372036854775807 for pools larger than that (a /64 holds 2^64).
	// +optional
	AvailableIPv6 int64 `json:"availableIPv6"`

	// ObservedGeneration is the spec generation these counts and conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// IPAddressPool is a set of IP addresses that Portico hands out to LoadBalancer Services.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=ippool
// +kubebuilder:printcolumn:name="Addresses",type=string,JSONPath=`.spec.addresses`
// +kubebuilder:printcolumn:name="Auto Assign",type=boolean,JSONPath=`.spec.autoAssign`,priority=1
// +kubebuilder:printcolumn:name="Assigned v4",type=integer,JSONPath=`.status.assignedIPv4`
// +kubebuilder:printcolumn:name="Available v4",type=integer,JSONPath=`.status.availableIPv4`
// +kubebuilder:printcolumn:name="Assigned v6",type=integer,JSONPath=`.status.assignedIPv6`
// +kubebuilder:printcolumn:name="Available v6",type=integer,JSONPath=`.status.availableIPv6`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type IPAddressPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   IPAddressPoolSpec   `json:"spec"`
	Status IPAddressPoolStatus `json:"status,omitempty"`
}

// IPAddressPoolList is a list of IPAddressPools.
//
// +kubebuilder:object:root=true
type IPAddressPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPAddressPool `json:"items"`
}

func init() {
	register(&IPAddressPool{}, &IPAddressPoolList{})
}
