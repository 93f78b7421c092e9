package migrate

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/internal/manifest"
)

// The OpenELB input types: network.kubesphere.io/v1alpha2. BgpPeer and BgpConf
// carry gobgp's configuration shapes.

type oelbEip struct {
	mlbMeta
	Spec struct {
		Address           string            `json:"address"`
		Protocol          string            `json:"protocol"`
		Interface         string            `json:"interface"`
		Disable           bool              `json:"disable"`
		UsingKnownIPs     bool              `json:"usingKnownIPs"`
		Priority          int               `json:"priority"`
		Namespaces        []string          `json:"namespaces"`
		NamespaceSelector map[string]string `json:"namespaceSelector"`
	} `json:"spec"`
}

type oelbGracefulRestart struct {
	Enabled             bool   `json:"enabled"`
	RestartTime         uint32 `json:"restartTime"`
	HelperOnly          bool   `json:"helperOnly"`
	DeferralTime        uint32 `json:"deferralTime"`
	NotificationEnabled bool   `json:"notificationEnabled"`
	LonglivedEnabled    bool   `json:"longlivedEnabled"`
	StaleRoutesTime     uint32 `json:"staleRoutesTime"`
	PeerRestartTime     uint32 `json:"peerRestartTime"`
	PeerRestarting      bool   `json:"peerRestarting"`
	LocalRestarting     bool   `json:"localRestarting"`
	Mode                string `json:"mode"`
}

type oelbBgpConf struct {
	mlbMeta
	Spec struct {
		As               uint32               `json:"as"`
		AsPerRack        map[string]uint32    `json:"asPerRack"`
		RouterID         string               `json:"routerId"`
		ListenPort       int32                `json:"listenPort"`
		ListenAddresses  []string             `json:"listenAddresses"`
		Families         []uint32             `json:"families"`
		UseMultiplePaths bool                 `json:"useMultiplePaths"`
		GracefulRestart  *oelbGracefulRestart `json:"gracefulRestart"`
		Policy           string               `json:"policy"`
	} `json:"spec"`
}

// seconds is a gobgp timer: a number of seconds, written as a number or as a
// string of digits.
type seconds struct {
	set bool
	v   float64
}

func (s *seconds) UnmarshalJSON(b []byte) error {
	b = bytes.Trim(b, `"`)
	if len(b) == 0 {
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil || v < 0 {
		return fmt.Errorf("%q is not a number of seconds", b)
	}
	s.set, s.v = true, v
	return nil
}

func (s seconds) duration() *metav1.Duration {
	if !s.set {
		return nil
	}
	return &metav1.Duration{Duration: time.Duration(s.v * float64(time.Second))}
}

type oelbPeer struct {
	mlbMeta
	Spec struct {
		Conf *struct {
			AuthPassword      string `json:"authPassword"`
			Description       string `json:"description"`
			LocalAs           uint32 `json:"localAs"`
			NeighborAddress   string `json:"neighborAddress"`
			PeerAs            uint32 `json:"peerAs"`
			PeerGroup         string `json:"peerGroup"`
			PeerType          uint32 `json:"peerType"`
			RemovePrivateAs   string `json:"removePrivateAs"`
			RouteFlapDamping  bool   `json:"routeFlapDamping"`
			SendCommunity     uint32 `json:"sendCommunity"`
			NeighborInterface string `json:"neighborInterface"`
			Vrf               string `json:"vrf"`
			AllowOwnAs        uint32 `json:"allowOwnAs"`
			ReplacePeerAs     bool   `json:"replacePeerAs"`
			AdminDown         bool   `json:"adminDown"`
		} `json:"conf"`
		EbgpMultihop *struct {
			Enabled     bool   `json:"enabled"`
			MultihopTTL uint32 `json:"multihopTtl"`
		} `json:"ebgpMultihop"`
		Timers *struct {
			Config *struct {
				ConnectRetry                 seconds `json:"connectRetry"`
				HoldTime                     seconds `json:"holdTime"`
				KeepaliveInterval            seconds `json:"keepaliveInterval"`
				MinimumAdvertisementInterval seconds `json:"minimumAdvertisementInterval"`
			} `json:"config"`
		} `json:"timers"`
		Transport *struct {
			MtuDiscovery  bool   `json:"mtuDiscovery"`
			PassiveMode   bool   `json:"passiveMode"`
			RemoteAddress string `json:"remoteAddress"`
			RemotePort    uint32 `json:"remotePort"`
			TCPMss        uint32 `json:"tcpMss"`
		} `json:"transport"`
		GracefulRestart *oelbGracefulRestart `json:"gracefulRestart"`
		AfiSafis        []*struct {
			MpGracefulRestart *struct {
				Config *struct {
					Enabled bool `json:"enabled"`
				} `json:"config"`
			} `json:"mpGracefulRestart"`
			Config *struct {
				Family *struct {
					Afi  string `json:"afi"`
					Safi string `json:"safi"`
				} `json:"family"`
				Enabled bool `json:"enabled"`
			} `json:"config"`
			AddPaths *struct {
				Config *struct {
					Receive bool   `json:"receive"`
					SendMax uint32 `json:"sendMax"`
				} `json:"config"`
			} `json:"addPaths"`
		} `json:"afiSafis"`
		NodeSelector *metav1.LabelSelector `json:"nodeSelector"`
	} `json:"spec"`
}

const (
	// oelbDefaultEip marks OpenELB's default Eip.
	oelbDefaultEip = "eip.openelb.kubesphere.io/is-default-eip"
	// oelbRackLabel is the node label OpenELB's asPerRack reads.
	oelbRackLabel = "openelb.kubesphere.io/rack"
)

// openelb converts OpenELB objects: the BgpConf first (its AS and graceful
// restart apply to every peer), then the Eips and the peers.
func (c *converter) openelb(docs []manifest.Document) {
	var conf *oelbBgpConf
	var confDoc *manifest.Document
	var eips, peers []*manifest.Document
	for i := range docs {
		d := &docs[i]
		if d.Err != nil {
			c.fail(d, "", "%v", d.Err)
			continue
		}
		group, version := groupVersion(d.APIVersion())
		switch {
		case group != "network.kubesphere.io":
			c.foreign(d, OpenELB)
		case version != "v1alpha2":
			c.fail(d, "apiVersion", "unknown OpenELB version %q: portico migrate reads network.kubesphere.io/v1alpha2 (convert older objects with OpenELB first)", d.APIVersion())
		case d.Kind() == "Eip":
			eips = append(eips, d)
		case d.Kind() == "BgpPeer":
			peers = append(peers, d)
		case d.Kind() == "BgpConf" && d.Name() != "default":
			c.note(d, "metadata.name", "not converted: OpenELB reads only the BgpConf named default and ignores this one")
		case d.Kind() == "BgpConf":
			var in oelbBgpConf
			if c.decode(d, d.Object, &in, "") {
				conf, confDoc = &in, d
			}
		default:
			c.note(d, "", "not converted: Portico has no equivalent of OpenELB's %s", d.Kind())
		}
	}
	if conf != nil {
		c.oelbConf(confDoc, conf)
	}
	for _, d := range eips {
		c.oelbEip(d)
	}
	if len(eips) > 0 {
		d := eips[0]
		n := c.note(d, "", "Services: Portico does not read OpenELB's Service annotations; a Service annotated eip.openelb.kubesphere.io/v1alpha2: NAME needs portico.dev/address-pool: NAME, and one annotated eip.openelb.kubesphere.io/v1alpha1: IP needs portico.dev/loadBalancerIPs: IP (lb.kubesphere.io/v1alpha1 and protocol.openelb.kubesphere.io/v1alpha1 can go)")
		n.Kind, n.Name, n.Position = "", "", ""
	}
	for _, d := range peers {
		c.oelbPeer(d, conf)
	}
}

// oelbConf reports what of the BgpConf cannot be carried over; the rest is
// applied to the peers.
func (c *converter) oelbConf(d *manifest.Document, in *oelbBgpConf) {
	s := in.Spec
	if s.RouterID != "" {
		c.note(d, "spec.routerId", "not carried over: one router ID for every node would make all nodes look like one router to the peer; Portico gives each node its own (its first IPv4 address). Set spec.routerID on a BGPPeer only for a single node")
	}
	if s.ListenPort > 0 {
		c.note(d, "spec.listenPort", "not carried over: Portico's speakers never listen (they dial out to each peer), so nothing binds port %d; the router must accept the nodes' connections (no passive-only setting towards Portico)", s.ListenPort)
	}
	if len(s.ListenAddresses) > 0 {
		c.note(d, "spec.listenAddresses", "not carried over: Portico's speakers never listen; set spec.sourceAddress on a BGPPeer to choose the address sessions start from")
	}
	if len(s.Families) > 0 {
		c.note(d, "spec.families", "not carried over: Portico carries IPv4 and IPv6 unicast routes over every session")
	}
	if s.UseMultiplePaths {
		c.note(d, "spec.useMultiplePaths", "not needed: it concerns routes the speaker receives, and Portico's speakers install none; the router spreads traffic over the nodes (ECMP)")
	}
	if s.Policy != "" {
		c.note(d, "spec.policy", "not carried over: Portico has no routing policies; communities, local preference and aggregation are set on a BGPAdvertisement")
	}
	c.gracefulRestartNotes(d, "spec.gracefulRestart", s.GracefulRestart)
	if len(s.AsPerRack) > 0 {
		c.note(d, "spec.asPerRack", "each BgpPeer becomes one BGPPeer per rack, with the rack's AS as myASN and a node selector on the label %s (and one for nodes in no listed rack, with spec.as)", oelbRackLabel)
	}
}

// gracefulRestartNotes reports gobgp's graceful restart settings beyond
// enabled, which Portico fixes.
func (c *converter) gracefulRestartNotes(d *manifest.Document, field string, gr *oelbGracefulRestart) {
	if gr == nil {
		return
	}
	if gr.Enabled {
		c.note(d, field+".enabled", "carried over as gracefulRestart: true on the BGPPeers (Portico keeps the routes at the router for up to 120 s while a speaker restarts)")
	}
	c.grTimersNote(d, field, gr)
}

// grTimersNote reports graceful restart settings other than enabled.
func (c *converter) grTimersNote(d *manifest.Document, field string, gr *oelbGracefulRestart) {
	if gr == nil {
		return
	}
	extra := *gr
	extra.Enabled = false
	if extra != (oelbGracefulRestart{}) {
		c.note(d, field, "only enabled is carried over: Portico sets the restart timers itself")
	}
}

func (c *converter) oelbEip(d *manifest.Document) {
	var in oelbEip
	if !c.decode(d, d.Object, &in, "") {
		return
	}
	s := in.Spec
	name := c.name(d, "IPAddressPool", in.Metadata.Name)
	pool := &v1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: in.Metadata.Labels}}
	if s.Address == "" {
		c.fail(d, "spec.address", "Required value: an Eip has an address, a CIDR or a range")
		return
	}
	pool.Spec.Addresses = c.addresses(d, "spec.address", []string{s.Address})
	for i := range c.res.Notes { // notes about spec.address[0] are about spec.address
		if n := &c.res.Notes[i]; n.Source == d.Source && n.Position == d.Position() && n.Field == "spec.address[0]" {
			n.Field = "spec.address"
		}
	}
	if s.Priority != 0 || len(s.Namespaces) > 0 || len(s.NamespaceSelector) > 0 {
		al := &v1.ServiceAllocation{Priority: int32(max(0, min(s.Priority, 1000000))), Namespaces: s.Namespaces}
		if len(s.NamespaceSelector) > 0 {
			al.NamespaceSelector = &metav1.LabelSelector{MatchLabels: s.NamespaceSelector}
		}
		pool.Spec.Allocation = al
	}
	isDefault := in.Metadata.Annotations[oelbDefaultEip] == "true"
	delete(in.Metadata.Annotations, oelbDefaultEip)
	c.annotationNotes(d, in.Metadata.Annotations)
	auto := isDefault || len(s.Namespaces) > 0 || len(s.NamespaceSelector) > 0
	switch {
	case s.Disable:
		auto = false
		c.note(d, "spec.disable", "carried over as autoAssign: false: no Service gets an address from this pool unless it names the pool or one of its addresses (OpenELB refused those too)")
	case !auto:
		c.note(d, "", "carried over as autoAssign: false: OpenELB gives addresses from this Eip only to Services that name it (it is not the default Eip and is not assigned to namespaces)")
	}
	pool.Spec.AutoAssign = &auto
	if s.UsingKnownIPs {
		c.note(d, "spec.usingKnownIPs", "not carried over: Portico does not hand out addresses another host already answers for")
	}
	c.add(d, pool)

	sel := v1.PoolAndNodeSelection{IPAddressPools: []string{name}}
	switch s.Protocol {
	case "layer2", "vip":
		l2 := &v1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: c.name(d, "L2Advertisement", name)}, Spec: v1.L2AdvertisementSpec{PoolAndNodeSelection: sel}}
		switch {
		case strings.HasPrefix(s.Interface, "can_reach:"):
			c.note(d, "spec.interface", "not carried over: Portico has no %q; it answers ARP/NDP on every suitable interface: set spec.interfaces on the L2Advertisement to limit it", s.Interface)
		case s.Interface != "":
			l2.Spec.Interfaces = []string{s.Interface}
		}
		if s.Protocol == "vip" {
			c.note(d, "spec.protocol", "vip (keepalived VRRP) becomes layer 2: one node answers ARP/NDP for each address and another takes over when it fails")
		}
		c.add(d, l2)
	case "bgp", "":
		c.add(d, &v1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: c.name(d, "BGPAdvertisement", name)}, Spec: v1.BGPAdvertisementSpec{PoolAndNodeSelection: sel}})
		if s.Interface != "" {
			c.note(d, "spec.interface", "not carried over: OpenELB uses it for layer2 only")
		}
	default:
		c.note(d, "spec.protocol", "unknown protocol %q (OpenELB has bgp, layer2 and vip): the pool is converted without an advertisement", s.Protocol)
	}
}

func (c *converter) oelbPeer(d *manifest.Document, conf *oelbBgpConf) {
	var in oelbPeer
	if !c.decode(d, d.Object, &in, "") {
		return
	}
	s := in.Spec
	name := c.name(d, "BGPPeer", in.Metadata.Name)
	out := &v1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: in.Metadata.Labels}}
	c.annotationNotes(d, in.Metadata.Annotations)
	if s.Conf == nil {
		c.fail(d, "spec.conf", "Required value: a BgpPeer has conf.peerAs and conf.neighborAddress")
		return
	}
	pc := s.Conf
	if pc.AdminDown {
		c.note(d, "spec.conf.adminDown", "not converted: the peer is shut down in OpenELB and Portico has no shut-down peers; convert it again without adminDown when it is wanted")
		return
	}
	out.Spec.PeerASN = v1.ASN(pc.PeerAs)
	out.Spec.PeerAddress = pc.NeighborAddress
	switch {
	case pc.LocalAs != 0:
		out.Spec.MyASN = v1.ASN(pc.LocalAs)
	case conf != nil && conf.Spec.As != 0:
		out.Spec.MyASN = v1.ASN(conf.Spec.As)
	default:
		c.note(d, "spec.conf.localAs", "no AS for the nodes: neither conf.localAs nor a BgpConf named default with spec.as; set spec.myASN in the converted BGPPeer")
	}
	if pc.AuthPassword != "" {
		out.Spec.PasswordSecretRef = c.passwordSecret(d, "spec.conf.authPassword", name, pc.AuthPassword)
	}
	notCarried := []struct {
		set   bool
		field string
		why   string
	}{
		{pc.Description != "", "spec.conf.description", "Portico's BGPPeer has no description"},
		{pc.PeerGroup != "", "spec.conf.peerGroup", "Portico has no peer groups"},
		{pc.PeerType != 0, "spec.conf.peerType", "Portico tells iBGP from eBGP by comparing myASN and peerASN"},
		{pc.RemovePrivateAs != "", "spec.conf.removePrivateAs", "Portico announces only the nodes' own AS path"},
		{pc.RouteFlapDamping, "spec.conf.routeFlapDamping", "it concerns received routes, and Portico's speakers install none"},
		{pc.SendCommunity != 0, "spec.conf.sendCommunity", "Portico sends the communities a BGPAdvertisement lists"},
		{pc.NeighborInterface != "", "spec.conf.neighborInterface", "Portico has no unnumbered BGP; set spec.peerAddress"},
		{pc.Vrf != "", "spec.conf.vrf", "Portico opens sessions in the node's default VRF"},
		{pc.AllowOwnAs != 0, "spec.conf.allowOwnAs", "it concerns received routes, and Portico's speakers install none"},
		{pc.ReplacePeerAs, "spec.conf.replacePeerAs", "Portico does not rewrite AS paths"},
	}
	for _, n := range notCarried {
		if n.set {
			c.note(d, n.field, "not carried over: %s", n.why)
		}
	}
	if mh := s.EbgpMultihop; mh != nil {
		out.Spec.EBGPMultiHop = mh.Enabled
		if mh.MultihopTTL != 0 {
			c.note(d, "spec.ebgpMultihop.multihopTtl", "not carried over: Portico does not set the TTL of multi-hop sessions")
		}
	}
	if t := s.Timers; t != nil && t.Config != nil {
		out.Spec.HoldTime = t.Config.HoldTime.duration()
		out.Spec.KeepaliveTime = t.Config.KeepaliveInterval.duration()
		out.Spec.ConnectTime = t.Config.ConnectRetry.duration()
		if t.Config.MinimumAdvertisementInterval.set {
			c.note(d, "spec.timers.config.minimumAdvertisementInterval", "not carried over: Portico sends updates as soon as they change")
		}
	}
	if tr := s.Transport; tr != nil {
		out.Spec.PeerPort = int32(tr.RemotePort)
		if tr.PassiveMode {
			c.note(d, "spec.transport.passiveMode", "not carried over: Portico's speakers always open the session themselves and never listen; the router must accept their connections")
		}
		if tr.MtuDiscovery || tr.TCPMss != 0 || tr.RemoteAddress != "" {
			c.note(d, "spec.transport", "only remotePort and passiveMode are read: Portico sets the other transport options itself")
		}
	}
	gr := s.GracefulRestart != nil && s.GracefulRestart.Enabled
	if conf != nil && conf.Spec.GracefulRestart != nil && conf.Spec.GracefulRestart.Enabled {
		gr = true
	}
	out.Spec.GracefulRestart = gr
	c.grTimersNote(d, "spec.gracefulRestart", s.GracefulRestart)
	for i, af := range s.AfiSafis {
		if af == nil {
			continue
		}
		f := fmt.Sprintf("spec.afiSafis[%d]", i)
		if cf := af.Config; cf != nil && cf.Family != nil && (cf.Family.Safi != "SAFI_UNICAST" || (cf.Family.Afi != "AFI_IP" && cf.Family.Afi != "AFI_IP6")) {
			c.note(d, f+".config.family", "not carried over: Portico announces IPv4 and IPv6 unicast routes only, not %s/%s", cf.Family.Afi, cf.Family.Safi)
		}
		if ap := af.AddPaths; ap != nil && ap.Config != nil && (ap.Config.SendMax != 0 || ap.Config.Receive) {
			c.note(d, f+".addPaths", "not carried over: Portico does not use ADD-PATH; every node announces its own route and the router spreads traffic over them (ECMP)")
		}
	}
	if s.NodeSelector != nil {
		out.Spec.NodeSelectors = []metav1.LabelSelector{*s.NodeSelector}
	}
	if conf == nil || len(conf.Spec.AsPerRack) == 0 || pc.LocalAs != 0 {
		c.add(d, out)
		return
	}
	c.perRack(d, out, conf.Spec.As, conf.Spec.AsPerRack, s.NodeSelector)
}

// perRack splits a peer by rack, as OpenELB's asPerRack does: nodes labelled
// with a listed rack use its AS, other nodes the BgpConf's.
func (c *converter) perRack(d *manifest.Document, base *v1.BGPPeer, as uint32, racks map[string]uint32, sel *metav1.LabelSelector) {
	with := func(extra func(*metav1.LabelSelector)) []metav1.LabelSelector {
		s := metav1.LabelSelector{}
		if sel != nil {
			sel.DeepCopyInto(&s)
		}
		extra(&s)
		return []metav1.LabelSelector{s}
	}
	names := sortedMapKeys(racks)
	if as != 0 {
		base.Spec.NodeSelectors = with(func(s *metav1.LabelSelector) {
			s.MatchExpressions = append(s.MatchExpressions, metav1.LabelSelectorRequirement{Key: oelbRackLabel, Operator: metav1.LabelSelectorOpNotIn, Values: names})
		})
		c.add(d, base)
	}
	for _, rack := range names {
		if sel != nil && sel.MatchLabels[oelbRackLabel] != "" && sel.MatchLabels[oelbRackLabel] != rack {
			continue // the peer's own selector picks another rack
		}
		p := base.DeepCopy()
		p.Name = c.name(d, "BGPPeer", base.Name+"-"+rack)
		p.Spec.MyASN = v1.ASN(racks[rack])
		p.Spec.NodeSelectors = with(func(s *metav1.LabelSelector) {
			if s.MatchLabels == nil {
				s.MatchLabels = map[string]string{}
			}
			s.MatchLabels[oelbRackLabel] = rack
		})
		if p.Spec.PasswordSecretRef != nil {
			p.Spec.PasswordSecretRef = base.Spec.PasswordSecretRef.DeepCopy()
		}
		c.add(d, p)
	}
}
