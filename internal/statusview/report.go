// Package statusview gathers what `portico status` shows from the API server and
// renders it: the pools with their usage per family, the LoadBalancer Services
// with their IPs, pools and announcers (the L2 node and interfaces, the BGP nodes
// and peers, from ServiceAnnouncements), the speakers (memberlist view, BGP
// sessions with BFD and errors, from SpeakerStatuses) and every problem: the
// Ready=False conditions on pools, advertisements and peers, objects the
// controller has not reported on, Services waiting for an address, and speakers
// and sessions in trouble.
//
// Gather reads; Build turns the objects into a Report (pure, for tests); Text
// renders it for people, and the Report's JSON and YAML forms are for scripts.
package statusview

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
)

// Report is the whole status. Its JSON form is what --output json prints.
type Report struct {
	// Server is the API server the report was read from.
	Server   string    `json:"server"`
	Pools    []Pool    `json:"pools"`
	Services []Service `json:"services"`
	Speakers []Speaker `json:"speakers"`
	// Problems lists everything that needs attention, each with what to do
	// where the source says it.
	Problems []Problem `json:"problems"`
	// Warnings say what could not be read (for instance, no permission to
	// list events), so a short report is not mistaken for a healthy one.
	Warnings []string `json:"warnings,omitempty"`
}

// Pool is an IPAddressPool with its usage.
type Pool struct {
	Name       string   `json:"name"`
	Addresses  []string `json:"addresses"`
	AutoAssign bool     `json:"autoAssign"`
	IPv4       Usage    `json:"ipv4"`
	IPv6       Usage    `json:"ipv6"`
	// Ready is the Ready condition's status: True, False or Unknown (no
	// condition yet).
	Ready string `json:"ready"`
}

// Usage counts a pool's addresses of one family.
type Usage struct {
	Assigned  int64 `json:"assigned"`
	Available int64 `json:"available"`
}

// Service is a LoadBalancer Service.
type Service struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Class is spec.loadBalancerClass, when set.
	Class string `json:"loadBalancerClass,omitempty"`
	// Pool is the portico.dev/ip-allocated-from-pool annotation.
	Pool                  string      `json:"pool,omitempty"`
	ExternalTrafficPolicy string      `json:"externalTrafficPolicy,omitempty"`
	IPs                   []ServiceIP `json:"ips"`
	// Pending says why the Service has no address, when it has none: the
	// latest AllocationFailed event's message.
	Pending string `json:"pending,omitempty"`
}

// ServiceIP is one address of a Service and who announces it.
type ServiceIP struct {
	IP  string         `json:"ip"`
	L2  *L2Announcer   `json:"l2,omitempty"`
	BGP []BGPAnnouncer `json:"bgp,omitempty"`
}

// L2Announcer is the node answering ARP/NDP for an IP.
type L2Announcer struct {
	Node       string   `json:"node,omitempty"`
	Interfaces []string `json:"interfaces,omitempty"`
	// Reason says why no node announces the IP.
	Reason string `json:"reason,omitempty"`
}

// BGPAnnouncer is a node announcing a route for an IP, and to which peers.
type BGPAnnouncer struct {
	Node  string   `json:"node"`
	Peers []string `json:"peers"`
}

// Speaker is one node's speaker.
type Speaker struct {
	Node              string     `json:"node"`
	MemberlistAddress string     `json:"memberlistAddress,omitempty"`
	Members           []string   `json:"members"`
	L2IPs             int32      `json:"l2IPs"`
	Interfaces        []string   `json:"interfaces,omitempty"`
	Sessions          []Session  `json:"bgpSessions,omitempty"`
	LastError         string     `json:"lastError,omitempty"`
	UpdatedAt         *time.Time `json:"updatedAt,omitempty"`
}

// Session is one BGP session of a speaker.
type Session struct {
	Peer               string     `json:"peer"`
	Address            string     `json:"address,omitempty"`
	State              string     `json:"state"`
	Since              *time.Time `json:"since,omitempty"`
	PrefixesAdvertised int32      `json:"prefixesAdvertised"`
	BFDState           string     `json:"bfdState,omitempty"`
	LastError          string     `json:"lastError,omitempty"`
}

// Problem is one thing that needs attention.
type Problem struct {
	// Object is KIND/NAME (NAMESPACE/NAME for a Service).
	Object string `json:"object"`
	// Reason is a short token: the condition's reason, or NoStatus,
	// NoAddress, SessionDown, SpeakerError, MemberlistSplit.
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// Sources are the objects a Report is built from.
type Sources struct {
	Server            string
	Pools             []v1.IPAddressPool
	L2Advertisements  []v1.L2Advertisement
	BGPAdvertisements []v1.BGPAdvertisement
	BGPPeers          []v1.BGPPeer
	Services          []corev1.Service
	Announcements     []v1.ServiceAnnouncement
	Speakers          []v1.SpeakerStatus
	// Events are AllocationFailed events, for the reason a Service waits.
	Events   []corev1.Event
	Warnings []string
}

// AnnAllocatedFromPool is written on a Service by the controller.
const AnnAllocatedFromPool = "portico.dev/ip-allocated-from-pool"

// Build turns the objects into a Report, everything sorted by name.
func Build(s Sources) *Report {
	r := &Report{Server: s.Server, Warnings: s.Warnings, Pools: []Pool{}, Services: []Service{}, Speakers: []Speaker{}, Problems: []Problem{}}
	for _, p := range s.Pools {
		pool := Pool{Name: p.Name, AutoAssign: p.Spec.AutoAssign == nil || *p.Spec.AutoAssign,
			IPv4:  Usage{p.Status.AssignedIPv4, p.Status.AvailableIPv4},
			IPv6:  Usage{p.Status.AssignedIPv6, p.Status.AvailableIPv6},
			Ready: string(metav1.ConditionUnknown)}
		for _, a := range p.Spec.Addresses {
			pool.Addresses = append(pool.Addresses, string(a))
		}
		pool.Ready = r.condition("IPAddressPool", p.Name, p.Generation, p.Status.Conditions)
		r.Pools = append(r.Pools, pool)
	}
	for _, a := range s.L2Advertisements {
		r.condition("L2Advertisement", a.Name, a.Generation, a.Status.Conditions)
	}
	for _, a := range s.BGPAdvertisements {
		r.condition("BGPAdvertisement", a.Name, a.Generation, a.Status.Conditions)
	}
	for _, p := range s.BGPPeers {
		r.condition("BGPPeer", p.Name, p.Generation, p.Status.Conditions)
	}
	r.services(s)
	r.speakers(s.Speakers)
	slices.SortFunc(r.Pools, func(a, b Pool) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(r.Services, func(a, b Service) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	slices.SortFunc(r.Speakers, func(a, b Speaker) int { return strings.Compare(a.Node, b.Node) })
	return r
}

// condition reports the Ready condition of one object as a problem when it is
// not True, and returns its status.
func (r *Report) condition(kind, name string, generation int64, conds []metav1.Condition) string {
	obj := kind + "/" + name
	c := meta.FindStatusCondition(conds, "Ready")
	if c == nil {
		r.Problems = append(r.Problems, Problem{Object: obj, Reason: "NoStatus",
			Message: "the controller has not reported on this object yet: is portico-controller running? (kubectl -n portico-system get pods)"})
		return string(metav1.ConditionUnknown)
	}
	if c.Status != metav1.ConditionTrue {
		msg := c.Message
		if c.ObservedGeneration != 0 && c.ObservedGeneration < generation {
			msg += " (reported for an earlier version of the object; the controller has not caught up yet)"
		}
		r.Problems = append(r.Problems, Problem{Object: obj, Reason: c.Reason, Message: msg})
	}
	return string(c.Status)
}

func (r *Report) services(s Sources) {
	ann := map[string]*v1.ServiceAnnouncement{}
	for i := range s.Announcements {
		a := &s.Announcements[i]
		ann[a.Namespace+"/"+a.Name] = a
	}
	failed := map[string]*corev1.Event{}
	for i := range s.Events {
		e := &s.Events[i]
		key := e.InvolvedObject.Namespace + "/" + e.InvolvedObject.Name
		if e.InvolvedObject.Kind != "Service" {
			continue
		}
		if cur := failed[key]; cur == nil || eventTime(e).After(eventTime(cur)) {
			failed[key] = e
		}
	}
	for _, svc := range s.Services {
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		key := svc.Namespace + "/" + svc.Name
		out := Service{Namespace: svc.Namespace, Name: svc.Name, Pool: svc.Annotations[AnnAllocatedFromPool],
			ExternalTrafficPolicy: string(svc.Spec.ExternalTrafficPolicy), IPs: []ServiceIP{}}
		if svc.Spec.LoadBalancerClass != nil {
			out.Class = *svc.Spec.LoadBalancerClass
		}
		a := ann[key]
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			if ing.IP != "" {
				out.IPs = append(out.IPs, announcers(ing.IP, a))
			}
		}
		if len(out.IPs) == 0 {
			out.Pending = "no address yet"
			if e := failed[key]; e != nil {
				out.Pending = e.Message
			}
			r.Problems = append(r.Problems, Problem{Object: "Service " + key, Reason: "NoAddress", Message: out.Pending})
		}
		r.Services = append(r.Services, out)
	}
}

func eventTime(e *corev1.Event) time.Time {
	for _, t := range []time.Time{e.LastTimestamp.Time, e.EventTime.Time, e.FirstTimestamp.Time, e.CreationTimestamp.Time} {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

// announcers returns who announces ip according to the ServiceAnnouncement a
// (nil when there is none).
func announcers(ip string, a *v1.ServiceAnnouncement) ServiceIP {
	out := ServiceIP{IP: ip}
	if a == nil {
		return out
	}
	for _, l := range a.Status.L2 {
		if l.IP == ip {
			out.L2 = &L2Announcer{Node: l.Node, Interfaces: l.Interfaces, Reason: l.Reason}
		}
	}
	for _, b := range a.Status.BGP {
		if b.IP == ip {
			out.BGP = append(out.BGP, BGPAnnouncer{Node: b.Node, Peers: append([]string{}, b.Peers...)})
		}
	}
	slices.SortFunc(out.BGP, func(x, y BGPAnnouncer) int { return strings.Compare(x.Node, y.Node) })
	return out
}

func (r *Report) speakers(list []v1.SpeakerStatus) {
	views := map[string][]string{}
	for _, s := range list {
		st := s.Status
		sp := Speaker{Node: s.Name, MemberlistAddress: st.MemberlistAddress, Members: append([]string{}, st.Members...),
			L2IPs: st.L2IPs, LastError: st.LastError, UpdatedAt: timePtr(st.UpdatedAt)}
		for _, i := range st.Interfaces {
			name := i.Name
			if !i.Carrier {
				name += " (no carrier)"
			}
			sp.Interfaces = append(sp.Interfaces, name)
		}
		for _, b := range st.BGPSessions {
			sp.Sessions = append(sp.Sessions, Session{Peer: b.Peer, Address: b.Address, State: b.State, Since: timePtr(b.Since),
				PrefixesAdvertised: b.PrefixesAdvertised, BFDState: b.BFDState, LastError: b.LastError})
			if b.State != "Established" {
				msg := fmt.Sprintf("BGP session to %s (%s) is %s", b.Peer, b.Address, b.State)
				if b.LastError != "" {
					msg += ": " + b.LastError
				}
				r.Problems = append(r.Problems, Problem{Object: "SpeakerStatus/" + s.Name, Reason: "SessionDown", Message: msg})
			}
		}
		if st.LastError != "" {
			r.Problems = append(r.Problems, Problem{Object: "SpeakerStatus/" + s.Name, Reason: "SpeakerError", Message: st.LastError})
		}
		views[strings.Join(st.Members, ",")] = append(views[strings.Join(st.Members, ",")], s.Name)
		r.Speakers = append(r.Speakers, sp)
	}
	if len(views) > 1 {
		var parts []string
		for _, members := range sortedKeys(views) {
			verb := "see"
			if len(views[members]) == 1 {
				verb = "sees"
			}
			parts = append(parts, fmt.Sprintf("%s %s [%s]", strings.Join(views[members], ", "), verb, strings.ReplaceAll(members, ",", ", ")))
		}
		r.Problems = append(r.Problems, Problem{Object: "memberlist", Reason: "MemberlistSplit",
			Message: "the speakers do not agree on who is alive: " + strings.Join(parts, "; ") +
				"; a node missing from a view is dead or cannot reach the others on the memberlist port (7946 TCP and UDP)"})
	}
}

func timePtr(t *metav1.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	v := t.Time
	return &v
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
