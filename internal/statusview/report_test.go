package statusview

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
)

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(-d)); return &t }

func ready(status metav1.ConditionStatus, reason, msg string) []metav1.Condition {
	return []metav1.Condition{{Type: "Ready", Status: status, Reason: reason, Message: msg, ObservedGeneration: 1}}
}

// fixture is a small cluster: one healthy pool, one overlapping, an L2 and a
// BGP Service, one waiting Service, two speakers that disagree.
func fixture() Sources {
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Generation: 1} }
	pool := func(name string, addrs []v1.AddressEntry, st v1.IPAddressPoolStatus) v1.IPAddressPool {
		return v1.IPAddressPool{ObjectMeta: meta(name), Spec: v1.IPAddressPoolSpec{Addresses: addrs}, Status: st}
	}
	lb := func(ns, name, pool string, ips ...string) corev1.Service {
		s := corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{}},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}
		if pool != "" {
			s.Annotations[AnnAllocatedFromPool] = pool
		}
		for _, ip := range ips {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
		}
		return s
	}
	return Sources{
		Server: "https://192.0.2.1:6443",
		Pools: []v1.IPAddressPool{
			pool("default", []v1.AddressEntry{"192.0.2.0/25", "2001:db8:1::/64"}, v1.IPAddressPoolStatus{AssignedIPv4: 2, AvailableIPv4: 126, AssignedIPv6: 1, AvailableIPv6: 9223372036854775807,
				Conditions: ready("True", "Ready", "the pool hands out addresses")}),
			pool("extra", []v1.AddressEntry{"192.0.2.64/26"}, v1.IPAddressPoolStatus{
				Conditions: ready("False", "Overlap", `spec.addresses: overlaps pool "default" on 192.0.2.64/26; "default" is older and keeps those addresses, so this pool does not allocate them`)}),
		},
		L2Advertisements:  []v1.L2Advertisement{{ObjectMeta: meta("l2"), Status: v1.AdvertisementStatus{Conditions: ready("True", "Ready", "")}}},
		BGPAdvertisements: []v1.BGPAdvertisement{{ObjectMeta: meta("bgp")}},
		BGPPeers: []v1.BGPPeer{{ObjectMeta: metav1.ObjectMeta{Name: "tor", Generation: 2},
			Status: v1.BGPPeerStatus{Conditions: ready("False", "MissingReference", `spec.bfdProfile: BFDProfile "fast" does not exist; create it or clear spec.bfdProfile`)}}},
		Services: []corev1.Service{
			lb("shop", "web", "default", "192.0.2.10", "2001:db8:1::10"),
			lb("infra", "dns", ""),
			{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "internal"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP}},
		},
		Announcements: []v1.ServiceAnnouncement{{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}, Status: v1.ServiceAnnouncementStatus{
			L2:  []v1.L2Announcement{{IP: "192.0.2.10", Node: "node-a", Interfaces: []string{"eth0"}}},
			BGP: []v1.BGPAnnouncement{{IP: "2001:db8:1::10", Node: "node-b", Peers: []string{"tor"}}, {IP: "2001:db8:1::10", Node: "node-a", Peers: []string{"tor"}}},
		}}},
		Speakers: []v1.SpeakerStatus{
			{ObjectMeta: metav1.ObjectMeta{Name: "node-b"}, Status: v1.SpeakerStatusStatus{Members: []string{"node-a", "node-b"}, UpdatedAt: ago(3 * time.Minute),
				BGPSessions: []v1.BGPSessionStatus{{Peer: "tor", Address: "198.51.100.1", State: "Active", LastError: "connection refused"}}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}, Status: v1.SpeakerStatusStatus{Members: []string{"node-a"}, L2IPs: 1, UpdatedAt: ago(30 * time.Second),
				BGPSessions: []v1.BGPSessionStatus{{Peer: "tor", Address: "198.51.100.1", State: "Established", Since: ago(5 * time.Hour), PrefixesAdvertised: 2, BFDState: "Up"}}}},
		},
		Events: []corev1.Event{
			{InvolvedObject: corev1.ObjectReference{Kind: "Service", Namespace: "infra", Name: "dns"}, Message: "old", LastTimestamp: *ago(time.Hour)},
			{InvolvedObject: corev1.ObjectReference{Kind: "Service", Namespace: "infra", Name: "dns"}, Message: `no pool has a free IPv4 address for infra/dns: pool "default" has no free IPv4 address`, LastTimestamp: *ago(time.Minute)},
		},
	}
}

func TestText(t *testing.T) {
	var b strings.Builder
	Build(fixture()).Text(&b, Style{}, now)
	want := `Portico status from https://192.0.2.1:6443

POOLS (2)
  NAME     ADDRESSES                      IPv4 USED/FREE  IPv6 USED/FREE  AUTO  READY
  default  192.0.2.0/25, 2001:db8:1::/64  2/126           1/9.2e18        true  True
  extra    192.0.2.64/26                  0/0             0/0             true  False

SERVICES (2)
  SERVICE    IP              POOL     ANNOUNCED BY
  infra/dns  <pending>                no pool has a free IPv4 address for infra/dns: pool "default" has no free IPv4 address
  shop/web   192.0.2.10      default  L2 node-a (eth0)
             2001:db8:1::10  default  BGP node-a -> tor; node-b -> tor

SPEAKERS (2)
  NODE    MEMBERS             L2 IPs  BGP SESSIONS                                          UPDATED
  node-a  1 (node-a)          1       tor 198.51.100.1 Established 5h (BFD Up), 2 prefixes  30s ago
  node-b  2 (node-a, node-b)  0       tor 198.51.100.1 Active: connection refused           3m ago

PROBLEMS (6)
  IPAddressPool/extra: Overlap: spec.addresses: overlaps pool "default" on 192.0.2.64/26; "default" is older and keeps those addresses, so this pool does not allocate them
  BGPAdvertisement/bgp: NoStatus: the controller has not reported on this object yet: is portico-controller running? (kubectl -n portico-system get pods)
  BGPPeer/tor: MissingReference: spec.bfdProfile: BFDProfile "fast" does not exist; create it or clear spec.bfdProfile (reported for an earlier version of the object; the controller has not caught up yet)
  Service infra/dns: NoAddress: no pool has a free IPv4 address for infra/dns: pool "default" has no free IPv4 address
  SpeakerStatus/node-b: SessionDown: BGP session to tor (198.51.100.1) is Active: connection refused
  memberlist: MemberlistSplit: the speakers do not agree on who is alive: node-a sees [node-a]; node-b sees [node-a, node-b]; a node missing from a view is dead or cannot reach the others on the memberlist port (7946 TCP and UDP)
`
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestTextColourOnlyWhenAsked(t *testing.T) {
	for _, color := range []bool{false, true} {
		var b strings.Builder
		Build(fixture()).Text(&b, Style{Color: color}, now)
		if has := strings.Contains(b.String(), "\x1b["); has != color {
			t.Errorf("colour %v: escape codes present: %v", color, has)
		}
		if color && !strings.Contains(b.String(), "\x1b[31mFalse\x1b[0m") {
			t.Errorf("Ready=False not in red:\n%s", b.String())
		}
	}
}

func TestEmptyCluster(t *testing.T) {
	var b strings.Builder
	Build(Sources{Server: "https://x"}).Text(&b, Style{}, now)
	for _, want := range []string{"none: create an IPAddressPool", "no Service of type LoadBalancer", "is the portico-speaker DaemonSet running?", "No problems."} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in:\n%s", want, b.String())
		}
	}
}
