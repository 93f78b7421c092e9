package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ASN is a BGP autonomous system number (4-byte ASNs included).
// +kubebuilder:validation:Minimum=1
// +kubebuilder:validation:Maximum=4294967295
type ASN int64

// BGPPeerSpec is one BGP session each selected node opens to a router.
//
// +kubebuilder:validation:XValidation:rule="!has(self.keepaliveTime) || !has(self.holdTime) || !self.keepaliveTime.matches('^([0-9]+(\\\\.[0-9]+)?(ms|s|m|h))+$') || !self.holdTime.matches('^([0-9]+(\\\\.[0-9]+)?(ms|s|m|h))+$') || duration(self.keepaliveTime) <= duration(self.holdTime)",message="keepaliveTime must not be greater than holdTime (a keepalive of one third of the hold time is usual)"
type BGPPeerSpec struct {
	// MyASN is the ASN the speakers use for this session.
	MyASN ASN `json:"myASN"`

	// PeerASN is the router's ASN. Equal to MyASN for iBGP.
	PeerASN ASN `json:"peerASN"`

	// PeerAddress is the router's IPv4 or IPv6 address.
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="must be an IPv4 or IPv6 address without a prefix length, e.g. 198.51.100.1 or 2001:db8::1"
	PeerAddress string `json:"peerAddress"`

	// PeerPort is the router's BGP port.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:default=179
	// +optional
	PeerPort int32 `json:"peerPort,omitempty"`

	// SourceAddress is the local address the session is opened from. When empty, the
	// kernel chooses by route.
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="must be an IPv4 or IPv6 address without a prefix length"
	// +optional
	SourceAddress string `json:"sourceAddress,omitempty"`

	// RouterID is the BGP router ID (an IPv4 address). When empty, each node uses its
	// first IPv4 address.
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:XValidation:rule="isIP(self) && ip(self).family() == 4",message="must be an IPv4 address, e.g. 192.0.2.1 (a BGP router ID is 32 bits even on IPv6 sessions)"
	// +optional
	RouterID string `json:"routerID,omitempty"`

	// HoldTime is the BGP hold time: the session drops when the router is silent this
	// long. 0s disables keepalives; otherwise it must be at least 3s (RFC 4271).
	// +kubebuilder:default="90s"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+(\\\\.[0-9]+)?(ms|s|m|h))+$') || duration(self) == duration('0s') || duration(self) >= duration('3s')",message="must be 0s (no keepalives) or at least 3s (RFC 4271); for fast failure detection use a BFDProfile instead"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ms|s|m|h))+$')",message="must be a duration such as 90s, 1m30s or 500ms"
	// +optional
	HoldTime *metav1.Duration `json:"holdTime,omitempty"`

	// KeepaliveTime is the interval between keepalives. When empty, a third of HoldTime.
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ms|s|m|h))+$')",message="must be a duration such as 90s, 1m30s or 500ms"
	// +optional
	KeepaliveTime *metav1.Duration `json:"keepaliveTime,omitempty"`

	// ConnectTime is the wait between connection attempts while the session is down.
	// +kubebuilder:default="5s"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+(\\\\.[0-9]+)?(ms|s|m|h))+$') || duration(self) >= duration('1s') && duration(self) <= duration('65535s')",message="must be between 1s and 65535s"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ms|s|m|h))+$')",message="must be a duration such as 90s, 1m30s or 500ms"
	// +optional
	ConnectTime *metav1.Duration `json:"connectTime,omitempty"`

	// EBGPMultiHop allows an eBGP router that is not directly connected.
	// +optional
	EBGPMultiHop bool `json:"ebgpMultiHop,omitempty"`

	// PasswordSecretRef names a Secret holding the TCP MD5 password; there is
	// deliberately no plain-text password field.
	// +optional
	PasswordSecretRef *SecretKeyRef `json:"passwordSecretRef,omitempty"`

	// BFDProfile names a BFDProfile; when set, the session runs BFD and drops within
	// the profile's detection time when the path fails.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	BFDProfile string `json:"bfdProfile,omitempty"`

	// GracefulRestart asks the router to keep this node's routes while its speaker
	// restarts (RFC 4724).
	// +optional
	GracefulRestart bool `json:"gracefulRestart,omitempty"`

	// NodeSelectors limit the nodes that open this session: a node matching any
	// selector does. When empty, every node does.
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`
}

// SecretKeyRef points at one key of a Secret.
type SecretKeyRef struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Namespace of the Secret. When empty, the namespace Portico runs in.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// Key in the Secret's data.
	// +kubebuilder:default=password
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Key string `json:"key,omitempty"`
}

// BGPPeerStatus is written by the controller.
type BGPPeerStatus struct {
	// Conditions: Ready is False when the peer names a BFDProfile or Secret that does
	// not exist, and the message says which. Session state per node is in
	// SpeakerStatus.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// BGPPeer is a router the speakers open BGP sessions to.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.peerAddress`
// +kubebuilder:printcolumn:name="My ASN",type=integer,JSONPath=`.spec.myASN`
// +kubebuilder:printcolumn:name="Peer ASN",type=integer,JSONPath=`.spec.peerASN`
// +kubebuilder:printcolumn:name="BFD",type=string,JSONPath=`.spec.bfdProfile`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BGPPeer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BGPPeerSpec   `json:"spec"`
	Status BGPPeerStatus `json:"status,omitempty"`
}

// BGPPeerList is a list of BGPPeers.
//
// +kubebuilder:object:root=true
type BGPPeerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPPeer `json:"items"`
}

// BFDProfileSpec sets the BFD timers of the sessions that name the profile. The
// detection time is detectMultiplier x the negotiated receive interval.
type BFDProfileSpec struct {
	// ReceiveInterval is the minimum interval, in milliseconds, at which this side can
	// receive control packets.
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=60000
	// +kubebuilder:default=300
	// +optional
	ReceiveInterval *int32 `json:"receiveInterval,omitempty"`

	// TransmitInterval is the minimum interval, in milliseconds, at which this side
	// sends control packets.
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=60000
	// +kubebuilder:default=300
	// +optional
	TransmitInterval *int32 `json:"transmitInterval,omitempty"`

	// DetectMultiplier is the number of missed packets that declares the path down.
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=255
	// +kubebuilder:default=3
	// +optional
	DetectMultiplier *int32 `json:"detectMultiplier,omitempty"`

	// PassiveMode waits for the router to start BFD instead of sending first.
	// +optional
	PassiveMode bool `json:"passiveMode,omitempty"`

	// MinimumTTL is the lowest TTL accepted on incoming packets (254 for a directly
	// connected router; lower for multi-hop).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=254
	// +kubebuilder:default=254
	// +optional
	MinimumTTL *int32 `json:"minimumTTL,omitempty"`
}

// BFDProfile is a named set of BFD timers for BGP sessions.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster
// +kubebuilder:printcolumn:name="Receive ms",type=integer,JSONPath=`.spec.receiveInterval`
// +kubebuilder:printcolumn:name="Transmit ms",type=integer,JSONPath=`.spec.transmitInterval`
// +kubebuilder:printcolumn:name="Multiplier",type=integer,JSONPath=`.spec.detectMultiplier`
// +kubebuilder:printcolumn:name="Passive",type=boolean,JSONPath=`.spec.passiveMode`
type BFDProfile struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BFDProfileSpec `json:"spec,omitempty"`
}

// BFDProfileList is a list of BFDProfiles.
//
// +kubebuilder:object:root=true
type BFDProfileList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BFDProfile `json:"items"`
}

// CommunityValue is a BGP community value: standard A:B or large:A:B:C.
//
// +kubebuilder:validation:MaxLength=39
// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9]{1,5}:[0-9]{1,5}$') ? (int(self.split(':', 2)[0]) <= 65535 && int(self.split(':', 2)[1]) <= 65535) : (self.matches('^large:[0-9]{1,10}:[0-9]{1,10}:[0-9]{1,10}$') && int(self.split(':', 4)[1]) <= 4294967295 && int(self.split(':', 4)[2]) <= 4294967295 && int(self.split(':', 4)[3]) <= 4294967295)",message="must be a standard community A:B (each 0-65535, e.g. 64500:100) or a large community large:A:B:C (each 0-4294967295, e.g. large:64500:1:2)"
type CommunityValue string

// CommunityAlias gives a community value a name that BGPAdvertisements can use.
type CommunityAlias struct {
	// Name of the alias, used in BGPAdvertisement communities.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// Value of the community.
	Value CommunityValue `json:"value"`
}

// CommunitySpec lists community aliases.
type CommunitySpec struct {
	// Communities are the aliases this object defines. Names must be unique across
	// all Community objects; the controller reports duplicates.
	// +kubebuilder:validation:MaxItems=128
	// +listType=map
	// +listMapKey=name
	// +optional
	Communities []CommunityAlias `json:"communities,omitempty"`
}

// Community defines named aliases for BGP community values.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster
type Community struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec CommunitySpec `json:"spec,omitempty"`
}

// CommunityList is a list of Communities.
//
// +kubebuilder:object:root=true
type CommunityList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Community `json:"items"`
}

func init() {
	register(&BGPPeer{}, &BGPPeerList{}, &BFDProfile{}, &BFDProfileList{}, &Community{}, &CommunityList{})
}
