package bgp

import (
	"fmt"
	"net/netip"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// What this file turns into gobgp's API: peers, their VRFs, paths.

const (
	importPolicy = "portico-local-only"
	// rdAdmin is the administrator part of every VRF's route distinguisher
	// and route target. They never leave gobgp: peers negotiate only
	// ipv4-unicast and ipv6-unicast, so no VPN route is ever sent.
	rdAdmin = 65000
)

// vrfName is the gobgp VRF holding the paths of the peer with this id.
func vrfName(id uint32) string { return fmt.Sprintf("portico-peer-%d", id) }

// apiVrf is the VRF of one peer: its own route distinguisher, and a route
// target that it alone imports and exports, so that no other peer's VRF
// takes its paths.
func apiVrf(id uint32) (*api.Vrf, error) {
	rd, err := apiutil.MarshalRD(bgp.NewRouteDistinguisherTwoOctetAS(rdAdmin, id))
	if err != nil {
		return nil, err
	}
	rt, err := apiutil.MarshalRT(bgp.NewTwoOctetAsSpecificExtended(bgp.EC_SUBTYPE_ROUTE_TARGET, rdAdmin, id, true))
	if err != nil {
		return nil, err
	}
	return &api.Vrf{Name: vrfName(id), Id: id, Rd: rd, ImportRt: []*api.RouteTarget{rt}, ExportRt: []*api.RouteTarget{rt}}, nil
}

var (
	familyV4 = &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	familyV6 = &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
)

// apiPeer is the gobgp neighbour for c, enslaved to VRF vrf. Both unicast
// families are enabled on every session (multiprotocol), whatever the
// session's own family.
func apiPeer(c *peerConf, vrf string) *api.Peer {
	p := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: c.addr.String(),
			PeerAsn:         c.peerASN,
			LocalAsn:        c.myASN,
			AuthPassword:    c.password,
			Vrf:             vrf,
		},
		Transport: &api.Transport{RemotePort: uint32(c.port)},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:           c.conn,
			HoldTime:               c.hold,
			KeepaliveInterval:      c.keepalive,
			IdleHoldTimeAfterReset: c.conn,
		}},
		EbgpMultihop: &api.EbgpMultihop{Enabled: c.multihop && !c.ibgp()},
	}
	if c.source.IsValid() {
		p.Transport.LocalAddress = c.source.String()
	}
	if p.EbgpMultihop.Enabled {
		p.EbgpMultihop.MultihopTtl = 255
	}
	if c.gr {
		p.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: uint32(GracefulRestartTime.Seconds())}
	}
	for _, f := range []*api.Family{familyV4, familyV6} {
		p.AfiSafis = append(p.AfiSafis, &api.AfiSafi{
			Config:            &api.AfiSafiConfig{Family: f, Enabled: true},
			MpGracefulRestart: &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: c.gr}},
		})
	}
	if c.bfd {
		p.Bfd = &api.BfdPeerConfig{
			Enabled:                  true,
			DesiredMinimumTxInterval: c.bfdTx,
			RequiredMinimumReceive:   c.bfdRx,
			DetectionMultiplier:      c.bfdMult,
		}
	}
	return p
}

// apiPath is the gobgp path for prefix with r's attributes. An invalid next
// hop becomes the unspecified address of the prefix's family, which gobgp
// replaces with the session's local address. Origin is always IGP: routers
// do not spread traffic (ECMP) over paths of different origins.
func apiPath(prefix netip.Prefix, r *route, withdraw bool) (*apiutil.Path, error) {
	nlri, err := bgp.NewIPAddrPrefix(prefix)
	if err != nil {
		return nil, err
	}
	family, nh := bgp.RF_IPv4_UC, r.nextHop
	if !prefix.Addr().Is4() {
		family = bgp.RF_IPv6_UC
		if !nh.IsValid() {
			nh = netip.IPv6Unspecified()
		}
	} else if !nh.IsValid() {
		nh = netip.IPv4Unspecified()
	}
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if family == bgp.RF_IPv4_UC {
		a, err := bgp.NewPathAttributeNextHop(nh)
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, a)
	} else {
		a, err := bgp.NewPathAttributeMpReachNLRI(family, []bgp.PathNLRI{{NLRI: nlri}}, nh)
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, a)
	}
	if !withdraw {
		if r.hasLocalPref {
			attrs = append(attrs, bgp.NewPathAttributeLocalPref(r.localPref))
		}
		if len(r.communities) > 0 {
			attrs = append(attrs, bgp.NewPathAttributeCommunities(r.communities))
		}
		if len(r.large) > 0 {
			l := make([]*bgp.LargeCommunity, len(r.large))
			for i, c := range r.large {
				l[i] = bgp.NewLargeCommunity(c.GlobalAdmin, c.LocalData1, c.LocalData2)
			}
			attrs = append(attrs, bgp.NewPathAttributeLargeCommunities(l))
		}
	}
	return &apiutil.Path{Family: family, Nlri: nlri, Attrs: attrs, Withdrawal: withdraw}, nil
}

// importPolicyStatement accepts the paths this announcer adds (local ones):
// with the global import default set to reject, routes the routers send are
// never installed.
func importPolicyDef() *api.Policy {
	return &api.Policy{Name: importPolicy, Statements: []*api.Statement{{
		Name:       importPolicy + "-accept",
		Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
		Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT},
	}}}
}

var sessionStates = map[api.PeerState_SessionState]string{
	api.PeerState_SESSION_STATE_IDLE:        "Idle",
	api.PeerState_SESSION_STATE_CONNECT:     "Connect",
	api.PeerState_SESSION_STATE_ACTIVE:      "Active",
	api.PeerState_SESSION_STATE_OPENSENT:    "OpenSent",
	api.PeerState_SESSION_STATE_OPENCONFIRM: "OpenConfirm",
	api.PeerState_SESSION_STATE_ESTABLISHED: "Established",
}

var fsmStates = map[bgp.FSMState]string{
	bgp.BGP_FSM_IDLE:        "Idle",
	bgp.BGP_FSM_CONNECT:     "Connect",
	bgp.BGP_FSM_ACTIVE:      "Active",
	bgp.BGP_FSM_OPENSENT:    "OpenSent",
	bgp.BGP_FSM_OPENCONFIRM: "OpenConfirm",
	bgp.BGP_FSM_ESTABLISHED: "Established",
}

var bfdStates = map[api.BfdSessionState]string{
	api.BfdSessionState_BFD_SESSION_STATE_UP:         "Up",
	api.BfdSessionState_BFD_SESSION_STATE_DOWN:       "Down",
	api.BfdSessionState_BFD_SESSION_STATE_INIT:       "Init",
	api.BfdSessionState_BFD_SESSION_STATE_ADMIN_DOWN: "AdminDown",
}

// negotiated reports which unicast families the peer announced in its OPEN
// (multiprotocol capability); both are ours.
func negotiated(st *api.PeerState) (v4, v6 bool) {
	for _, c := range st.GetRemoteCap() {
		f := c.GetMultiProtocol().GetFamily()
		if f.GetSafi() != api.Family_SAFI_UNICAST {
			continue
		}
		switch f.GetAfi() {
		case api.Family_AFI_IP:
			v4 = true
		case api.Family_AFI_IP6:
			v6 = true
		}
	}
	return v4, v6
}
