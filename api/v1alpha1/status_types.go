package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SpeakerStatusStatus is one node's view, written by the speaker on that node.
type SpeakerStatusStatus struct {
	// MemberlistAddress is the host:port this speaker's memberlist listens on; other
	// speakers read it to join, so no Pod listing is needed.
	// +optional
	MemberlistAddress string `json:"memberlistAddress,omitempty"`

	// Members are the speakers this node sees alive, by node name, sorted.
	// +listType=atomic
	// +optional
	Members []string `json:"members,omitempty"`

	// Interfaces this node may announce on, with their link state.
	// +listType=map
	// +listMapKey=name
	// +optional
	Interfaces []InterfaceStatus `json:"interfaces,omitempty"`

	// L2IPs is the number of IPs this node answers ARP/NDP for.
	// +optional
	L2IPs int32 `json:"l2IPs"`

	// BGPSessions are this node's BGP sessions, one per peer.
	// +listType=map
	// +listMapKey=peer
	// +optional
	BGPSessions []BGPSessionStatus `json:"bgpSessions,omitempty"`

	// MemberlistKeys says which memberlist keys this speaker uses: how many, and
	// the fingerprint (first 8 hex digits of the SHA-256) of the one it encrypts
	// with, e.g. "2 keys, encrypting with sha256:1a2b3c4d". A key rotation moves
	// to its next step once every speaker shows the current one.
	// +optional
	MemberlistKeys string `json:"memberlistKeys,omitempty"`

	// LastError is the most recent problem this speaker could not fix by itself.
	// +optional
	LastError string `json:"lastError,omitempty"`

	// UpdatedAt is when the speaker last wrote this status.
	// +optional
	UpdatedAt *metav1.Time `json:"updatedAt,omitempty"`
}

// InterfaceStatus is the state of one network interface on a node.
type InterfaceStatus struct {
	// Name of the interface.
	Name string `json:"name"`
	// MAC address of the interface.
	// +optional
	MAC string `json:"mac,omitempty"`
	// Carrier is true when the link is up with carrier; a node whose interface has
	// no carrier does not announce on it.
	Carrier bool `json:"carrier"`
	// L2IPs is the number of IPs this node answers ARP/NDP for on this interface.
	// +optional
	L2IPs int32 `json:"l2IPs"`
}

// BGPSessionStatus is the state of one BGP session.
type BGPSessionStatus struct {
	// Peer is the BGPPeer's name.
	Peer string `json:"peer"`
	// Address is the router's address.
	// +optional
	Address string `json:"address,omitempty"`
	// State is the BGP FSM state (Idle, Connect, Active, OpenSent, OpenConfirm,
	// Established).
	State string `json:"state"`
	// Since is when the session entered State.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`
	// PrefixesAdvertised is the number of prefixes sent to the peer.
	// +optional
	PrefixesAdvertised int32 `json:"prefixesAdvertised"`
	// BFDState is the BFD session state (Down, Init, Up, AdminDown), empty without BFD.
	// +optional
	BFDState string `json:"bfdState,omitempty"`
	// LastError is the last error on this session, such as a refused OPEN.
	// +optional
	LastError string `json:"lastError,omitempty"`
}

// SpeakerStatus is the speaker's report for one node; its name is the node's name.
// One object per node keeps the number of status objects independent of the number
// of Services.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster
// +kubebuilder:printcolumn:name="Memberlist",type=string,JSONPath=`.status.memberlistAddress`
// +kubebuilder:printcolumn:name="Members",type=string,JSONPath=`.status.members`
// +kubebuilder:printcolumn:name="L2 IPs",type=integer,JSONPath=`.status.l2IPs`
// +kubebuilder:printcolumn:name="BGP Sessions",type=string,JSONPath=`.status.bgpSessions[*].state`
// +kubebuilder:printcolumn:name="Updated",type=date,JSONPath=`.status.updatedAt`
type SpeakerStatus struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Status SpeakerStatusStatus `json:"status,omitempty"`
}

// SpeakerStatusList is a list of SpeakerStatuses.
//
// +kubebuilder:object:root=true
type SpeakerStatusList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SpeakerStatus `json:"items"`
}

// ServiceAnnouncementStatus says who makes a Service's IPs reachable.
type ServiceAnnouncementStatus struct {
	// L2 lists, per IP, the node answering ARP/NDP for it and on which interfaces.
	// +listType=map
	// +listMapKey=ip
	// +optional
	L2 []L2Announcement `json:"l2,omitempty"`

	// BGP lists, per IP and node, the peers that node announces a route for the
	// IP to. Each node writes its own entries.
	// +listType=map
	// +listMapKey=ip
	// +listMapKey=node
	// +optional
	BGP []BGPAnnouncement `json:"bgp,omitempty"`
}

// L2Announcement is the elected announcer of one IP on the local segment.
type L2Announcement struct {
	// IP is the Service IP.
	IP string `json:"ip"`
	// Node answers ARP/NDP for IP; empty when no node is eligible (see Reason).
	// +optional
	Node string `json:"node,omitempty"`
	// Interfaces the node answers on.
	// +listType=atomic
	// +optional
	Interfaces []string `json:"interfaces,omitempty"`
	// Reason explains why no node announces IP, when none does.
	// +optional
	Reason string `json:"reason,omitempty"`
}

// BGPAnnouncement is one node announcing a route for one IP.
type BGPAnnouncement struct {
	// IP is the Service IP.
	IP string `json:"ip"`
	// Node announcing a route for IP.
	Node string `json:"node"`
	// Peers that receive the route from Node (sessions Established), sorted.
	// +listType=atomic
	// +optional
	Peers []string `json:"peers,omitempty"`
}

// ServiceAnnouncement shows who announces a LoadBalancer Service's IPs; it has the
// Service's namespace and name. The same facts appear as events on the Service, so
// `kubectl describe service` shows them.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=svcann
// +kubebuilder:printcolumn:name="L2 Node",type=string,JSONPath=`.status.l2[*].node`
// +kubebuilder:printcolumn:name="BGP Nodes",type=string,JSONPath=`.status.bgp[*].node`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ServiceAnnouncement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Status ServiceAnnouncementStatus `json:"status,omitempty"`
}

// ServiceAnnouncementList is a list of ServiceAnnouncements.
//
// +kubebuilder:object:root=true
type ServiceAnnouncementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ServiceAnnouncement `json:"items"`
}

func init() {
	register(&SpeakerStatus{}, &SpeakerStatusList{}, &ServiceAnnouncement{}, &ServiceAnnouncementList{})
}
