package v1alpha1

// Service annotations Portico reads and writes. Each is also read under its
// MetalLB names (metallb.io/NAME and metallb.universe.tf/NAME) so a cluster
// moves over without editing its Services; when a Portico and a MetalLB form are
// both set, the Portico one wins and a warning event (AnnotationConflict) says
// so. docs/reference.md lists them, generated from these comments.
const (
	// AnnotationLoadBalancerIPs requests specific addresses for a Service: a
	// comma-separated list with at most one IPv4 and one IPv6 address, e.g.
	// "192.0.2.10,2001:db8::10". Each must lie in a pool that admits the
	// Service. It takes precedence over spec.loadBalancerIP.
	AnnotationLoadBalancerIPs = "portico.dev/loadBalancerIPs"

	// AnnotationAddressPool restricts a Service to one IPAddressPool, by name.
	// Pools with autoAssign: false are used only by Services that name them
	// here or request one of their addresses.
	AnnotationAddressPool = "portico.dev/address-pool"

	// AnnotationAllowSharedIP sets a sharing key: Services with the same
	// non-empty key may hold the same address when their protocol/port pairs
	// do not overlap (with externalTrafficPolicy: Local, both must be Local and
	// select the same pods). Keys are scoped to the Service's namespace; a key
	// written "cluster:KEY" is cluster-wide, and a key read from a MetalLB
	// annotation is treated as "cluster:KEY", as MetalLB's keys were.
	AnnotationAllowSharedIP = "portico.dev/allow-shared-ip"

	// AnnotationIPAllocatedFromPool records the pool the Service's addresses
	// came from. The controller writes it; do not set it yourself.
	AnnotationIPAllocatedFromPool = "portico.dev/ip-allocated-from-pool"
)

// Labels Portico honours on Nodes.
const (
	// LabelExcludeFromExternalLoadBalancers keeps a Node from being elected to
	// answer ARP/NDP and out of BGP announcements (the Kubernetes well-known
	// label; any value counts).
	LabelExcludeFromExternalLoadBalancers = "node.kubernetes.io/exclude-from-external-load-balancers"
)
