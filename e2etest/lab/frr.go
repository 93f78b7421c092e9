package lab

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Family is an address family of the router's BGP tables.
type Family string

const (
	IPv4 Family = "ipv4"
	IPv6 Family = "ipv6"
)

// FamilyOf returns the family of ip's or prefix's address.
func FamilyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

// vtysh runs vtysh against this router's daemons with args and returns what
// it printed on stdout; a failing command (FRR's "% ..." answer) is an error
// quoting both outputs.
func (r *Router) vtysh(args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", r.NS, "vtysh", "--vty_socket", r.Dir, "--config_dir", r.Dir}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("router: vtysh %q: %v: %s", args, err, strings.TrimSpace(string(out)+"\n"+stderr.String()))
	}
	return string(out), nil
}

// Show runs one show command (ending in "json") and decodes its answer into v.
func (r *Router) Show(cmd string, v any) error {
	out, err := r.vtysh("-c", cmd)
	if err != nil {
		return err
	}
	return decode(cmd, []byte(out), v)
}

func decode(what string, data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("router: %s: %w: %.300s", what, err, data)
	}
	return nil
}

// query runs a show command and hands its raw answer to parse.
func query[T any](r *Router, cmd string, parse func([]byte) (T, error)) (T, error) {
	out, err := r.vtysh("-c", cmd)
	if err != nil {
		var zero T
		return zero, err
	}
	return parse([]byte(out))
}

// VTY runs commands in one vtysh session, in order, and returns the output;
// it fails on the first command FRR refuses. Configuration starts with
// "configure terminal", e.g.
//
//	r.VTY("configure terminal", "router bgp 64500", "neighbor 198.51.100.11 password secret")
//
// (Neighbor does exactly this for one neighbour). Changes last until the lab
// is torn down: tests undo theirs. "write" and "copy" are refused: the
// router starts from the lab's configs every time and saves nothing.
func (r *Router) VTY(cmds ...string) (string, error) {
	args := make([]string, 0, 2*len(cmds))
	for _, c := range cmds {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(c), "do "))
		if len(f) > 0 && (strings.HasPrefix("write", f[0]) || strings.HasPrefix("copy", f[0])) {
			return "", fmt.Errorf("router: %q refused: the lab's router never saves its configuration", c)
		}
		args = append(args, "-c", c)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.vtysh(args...)
}

// Neighbor applies settings to the BGP neighbour addr, each a line of FRR's
// "neighbor ADDR ..." command without that prefix; a leading "no " is kept in
// front. For example
//
//	r.Neighbor(n.IPv4, "password secret", "bfd profile lab")
//	r.Neighbor(n.IPv4, "no password", "no bfd")
//	r.Neighbor(n.IPv4, "timers 1 3")
func (r *Router) Neighbor(addr string, settings ...string) error {
	cmds := []string{"configure terminal", fmt.Sprintf("router bgp %d", r.ASN)}
	for _, s := range settings {
		if rest, ok := strings.CutPrefix(s, "no "); ok {
			cmds = append(cmds, "no neighbor "+addr+" "+rest)
		} else {
			cmds = append(cmds, "neighbor "+addr+" "+s)
		}
	}
	_, err := r.VTY(cmds...)
	return err
}

// Route is one prefix of the router's BGP table with every path it has.
type Route struct {
	Prefix netip.Prefix
	Paths  []Path
}

// Path is one BGP path for a prefix.
type Path struct {
	// Peer is the neighbour the path came from, NextHops its global next
	// hops (the link-local one of an IPv6 path left out).
	Peer     netip.Addr
	NextHops []netip.Addr
	// ASPath as FRR prints it ("64501"; "" for none), Origin "IGP", ...
	ASPath string
	Origin string
	MED    uint32
	// LocalPref is nil when the path carries none (eBGP).
	LocalPref *uint32
	// Communities and LargeCommunities as FRR writes them ("64500:100",
	// "noExport", "64500:1:2"). Only Router.Route fills them: FRR's table
	// listing (Router.Routes) has no communities.
	Communities, LargeCommunities []string
	Valid                         bool
	// Best is the best path; Multipath marks the paths FRR uses beside it
	// for ECMP (Route's detail marks the best one too, Routes' listing does
	// not): Route.ECMP takes both.
	Best, Multipath bool
}

// ECMP returns the sorted, distinct next hops of the paths the router uses
// (the best path and its multipaths): one per announcing node when ECMP
// works.
func (rt *Route) ECMP() []netip.Addr {
	var out []netip.Addr
	for _, p := range rt.Paths {
		if p.Best || p.Multipath {
			for _, nh := range p.NextHops {
				if !slices.Contains(out, nh) {
					out = append(out, nh)
				}
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Best returns the best path, or nil.
func (rt *Route) Best() *Path {
	for i := range rt.Paths {
		if rt.Paths[i].Best {
			return &rt.Paths[i]
		}
	}
	return nil
}

// frrPath is a path in either of FRR's JSON forms: the table listing
// ("bestpath": true, "path": "64501", "peerId") or the prefix detail
// ("bestpath": {"overall": true}, "aspath": {"string": ...}, "peer": {...}).
type frrPath struct {
	Valid     bool            `json:"valid"`
	Multipath bool            `json:"multipath"`
	BestPath  json.RawMessage `json:"bestpath"`
	PeerID    string          `json:"peerId"`
	Peer      struct {
		PeerID string `json:"peerId"`
	} `json:"peer"`
	Path   string `json:"path"`
	ASPath struct {
		String string `json:"string"`
	} `json:"aspath"`
	Origin   string  `json:"origin"`
	Metric   uint32  `json:"metric"`
	LocPrf   *uint32 `json:"locPrf"`
	NextHops []struct {
		IP    string `json:"ip"`
		Scope string `json:"scope"`
	} `json:"nexthops"`
	Community struct {
		List []string `json:"list"`
	} `json:"community"`
	LargeCommunity struct {
		List []string `json:"list"`
	} `json:"largeCommunity"`
}

func (f *frrPath) path() Path {
	p := Path{ASPath: f.Path, Origin: f.Origin, MED: f.Metric, LocalPref: f.LocPrf, Valid: f.Valid, Multipath: f.Multipath,
		Communities: f.Community.List, LargeCommunities: f.LargeCommunity.List}
	if f.ASPath.String != "" || f.Path == "" {
		p.ASPath = f.ASPath.String
	}
	peer := f.PeerID
	if peer == "" {
		peer = f.Peer.PeerID
	}
	p.Peer, _ = netip.ParseAddr(peer)
	var best struct {
		Overall bool `json:"overall"`
	}
	p.Best = string(f.BestPath) == "true" || (json.Unmarshal(f.BestPath, &best) == nil && best.Overall)
	for _, nh := range f.NextHops {
		if a, err := netip.ParseAddr(nh.IP); err == nil && nh.Scope != "link-local" && !a.IsLinkLocalUnicast() {
			p.NextHops = append(p.NextHops, a)
		}
	}
	return p
}

// Routes returns the router's BGP table for a family (show bgp FAMILY unicast
// json), without communities (see Route).
func (r *Router) Routes(f Family) (map[netip.Prefix]*Route, error) {
	return query(r, "show bgp "+string(f)+" unicast json", parseRoutes)
}

func parseRoutes(data []byte) (map[netip.Prefix]*Route, error) {
	var table struct {
		Routes map[string][]frrPath `json:"routes"`
	}
	if err := decode("BGP table", data, &table); err != nil {
		return nil, err
	}
	out := map[netip.Prefix]*Route{}
	for s, paths := range table.Routes {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("router: prefix %q in the BGP table: %w", s, err)
		}
		out[p] = newRoute(p, paths)
	}
	return out, nil
}

func newRoute(p netip.Prefix, paths []frrPath) *Route {
	rt := &Route{Prefix: p}
	for i := range paths {
		rt.Paths = append(rt.Paths, paths[i].path())
	}
	return rt
}

// Route returns every path the router has for exactly prefix p, with
// communities and local preference (show bgp FAMILY unicast P json), or nil
// when it has none.
func (r *Router) Route(p netip.Prefix) (*Route, error) {
	return query(r, fmt.Sprintf("show bgp %s unicast %s json", FamilyOf(p.Addr()), p), func(data []byte) (*Route, error) {
		return parseRoute(p, data)
	})
}

func parseRoute(p netip.Prefix, data []byte) (*Route, error) {
	var detail struct {
		Paths []frrPath `json:"paths"`
	}
	if err := decode("BGP route "+p.String(), data, &detail); err != nil || len(detail.Paths) == 0 {
		return nil, err
	}
	return newRoute(p, detail.Paths), nil
}

// FIBRoute is the route zebra selected for a prefix and what the kernel got.
type FIBRoute struct {
	Prefix    netip.Prefix
	Protocol  string // "bgp", "connected", ...
	Installed bool   // in the kernel
	// NextHops are the next hops installed in the kernel, sorted.
	NextHops []netip.Addr
}

// FIB returns zebra's selected route for exactly prefix p (show ip route P
// json, show ipv6 route P json), or nil when it has none: it shows whether
// the ECMP next hops BGP chose reached the kernel.
func (r *Router) FIB(p netip.Prefix) (*FIBRoute, error) {
	cmd := "show ip route "
	if p.Addr().Is6() {
		cmd = "show ipv6 route "
	}
	return query(r, cmd+p.String()+" json", func(data []byte) (*FIBRoute, error) {
		return parseFIB(p, data)
	})
}

func parseFIB(p netip.Prefix, data []byte) (*FIBRoute, error) {
	var routes map[string][]struct {
		Protocol  string `json:"protocol"`
		Selected  bool   `json:"selected"`
		Installed bool   `json:"installed"`
		NextHops  []struct {
			IP  string `json:"ip"`
			FIB bool   `json:"fib"`
		} `json:"nexthops"`
	}
	if err := decode("route "+p.String(), data, &routes); err != nil {
		return nil, err
	}
	for s, entries := range routes {
		if got, err := netip.ParsePrefix(s); err != nil || got != p {
			continue
		}
		for _, e := range entries {
			if !e.Selected {
				continue
			}
			fr := &FIBRoute{Prefix: p, Protocol: e.Protocol, Installed: e.Installed}
			for _, nh := range e.NextHops {
				if a, err := netip.ParseAddr(nh.IP); err == nil && nh.FIB {
					fr.NextHops = append(fr.NextHops, a)
				}
			}
			slices.SortFunc(fr.NextHops, netip.Addr.Compare)
			return fr, nil
		}
	}
	return nil, nil
}

// Neighbor is the router's view of one BGP neighbour.
type Neighbor struct {
	Addr     netip.Addr
	State    string // "Established", "Active", "Idle", "Connect", "OpenSent", ...
	RemoteAS uint32 // 0 before the first OPEN
	Hostname string // the hostname capability the peer sent, if any
	// Uptime is how long the session has been Established (0 when it is
	// not); HoldTime the negotiated hold time.
	Uptime   time.Duration
	HoldTime time.Duration
	// PrefixesReceived counts the accepted prefixes per family.
	PrefixesReceived map[Family]int
	// LastNotification is the reason of the last NOTIFICATION sent or
	// received ("Cease/Other Configuration Change"), LastReset why the last
	// session went down ("BGP Notification received"), LastErrorCode its
	// code and subcode in hex ("0606").
	LastNotification, LastReset, LastErrorCode string
	ConnectionsEstablished, ConnectionsDropped int
	// BFDStatus is bgpd's view of the neighbour's BFD session ("Up",
	// "Down", ...), "" when BFD is not configured on it.
	BFDStatus string
	// Password reports whether a TCP MD5 password is configured.
	Password bool
}

// Neighbors returns every configured neighbour by address (show bgp
// neighbors json).
func (r *Router) Neighbors() (map[netip.Addr]*Neighbor, error) {
	return query(r, "show bgp neighbors json", parseNeighbors)
}

func parseNeighbors(data []byte) (map[netip.Addr]*Neighbor, error) {
	var raw map[string]json.RawMessage
	if err := decode("BGP neighbours", data, &raw); err != nil {
		return nil, err
	}
	out := map[netip.Addr]*Neighbor{}
	for addr, msg := range raw {
		a, err := netip.ParseAddr(addr)
		if err != nil {
			continue // not a neighbour entry
		}
		var n struct {
			State      string `json:"bgpState"`
			RemoteAS   uint32 `json:"remoteAs"`
			Hostname   string `json:"hostname"`
			UpMsec     int64  `json:"bgpTimerUpMsec"`
			HoldMsec   int64  `json:"bgpTimerHoldTimeMsecs"`
			NotifReas  string `json:"lastNotificationReason"`
			ResetDueTo string `json:"lastResetDueTo"`
			ErrCode    string `json:"lastErrorCodeSubcode"`
			Est        int    `json:"connectionsEstablished"`
			Dropped    int    `json:"connectionsDropped"`
			Auth       int    `json:"authenticationEnabled"`
			AFs        map[string]struct {
				Accepted int `json:"acceptedPrefixCounter"`
			} `json:"addressFamilyInfo"`
			BFD *struct {
				Status string `json:"status"`
			} `json:"peerBfdInfo"`
		}
		if err := decode("BGP neighbour "+addr, msg, &n); err != nil {
			return nil, err
		}
		nb := &Neighbor{Addr: a, State: n.State, RemoteAS: n.RemoteAS, Hostname: n.Hostname,
			HoldTime: time.Duration(n.HoldMsec) * time.Millisecond, LastNotification: n.NotifReas,
			LastReset: n.ResetDueTo, LastErrorCode: n.ErrCode, ConnectionsEstablished: n.Est,
			ConnectionsDropped: n.Dropped, Password: n.Auth != 0, PrefixesReceived: map[Family]int{}}
		if n.State == "Established" {
			nb.Uptime = time.Duration(n.UpMsec) * time.Millisecond
		}
		for af, info := range n.AFs {
			switch af {
			case "ipv4Unicast":
				nb.PrefixesReceived[IPv4] = info.Accepted
			case "ipv6Unicast":
				nb.PrefixesReceived[IPv6] = info.Accepted
			}
		}
		if n.BFD != nil {
			nb.BFDStatus = n.BFD.Status
		}
		out[a] = nb
	}
	return out, nil
}

// BFDPeer is one of bfdd's sessions (show bfd peers json).
type BFDPeer struct {
	Peer, Local netip.Addr
	Interface   string
	Status      string // "up", "down", "init", "shutdown"
	// Local timers (the profile's) and the ones the peer advertised.
	ReceiveInterval, TransmitInterval             time.Duration
	DetectMultiplier                              int
	RemoteReceiveInterval, RemoteTransmitInterval time.Duration
	RemoteDetectMultiplier                        int
	// Diagnostic is the local diagnostic ("ok", "control detection time
	// expired", ...), RemoteDiagnostic the peer's.
	Diagnostic, RemoteDiagnostic string
	// Uptime or Downtime: how long the session has been up, or down.
	Uptime, Downtime time.Duration
	Passive          bool
}

// BFDPeers returns bfdd's sessions: one per neighbour a test attached BFD to.
func (r *Router) BFDPeers() ([]BFDPeer, error) {
	return query(r, "show bfd peers json", parseBFDPeers)
}

func parseBFDPeers(data []byte) ([]BFDPeer, error) {
	var raw []struct {
		Peer       string `json:"peer"`
		Local      string `json:"local"`
		Interface  string `json:"interface"`
		Status     string `json:"status"`
		Rx         int64  `json:"receive-interval"`
		Tx         int64  `json:"transmit-interval"`
		Mult       int    `json:"detect-multiplier"`
		RemoteRx   int64  `json:"remote-receive-interval"`
		RemoteTx   int64  `json:"remote-transmit-interval"`
		RemoteMult int    `json:"remote-detect-multiplier"`
		Diag       string `json:"diagnostic"`
		RemoteDiag string `json:"remote-diagnostic"`
		Uptime     int64  `json:"uptime"`
		Downtime   int64  `json:"downtime"`
		Passive    bool   `json:"passive-mode"`
	}
	if err := decode("BFD peers", data, &raw); err != nil {
		return nil, err
	}
	ms := func(v int64) time.Duration { return time.Duration(v) * time.Millisecond }
	out := make([]BFDPeer, 0, len(raw))
	for _, p := range raw {
		b := BFDPeer{Interface: p.Interface, Status: p.Status, ReceiveInterval: ms(p.Rx), TransmitInterval: ms(p.Tx),
			DetectMultiplier: p.Mult, RemoteReceiveInterval: ms(p.RemoteRx), RemoteTransmitInterval: ms(p.RemoteTx),
			RemoteDetectMultiplier: p.RemoteMult, Diagnostic: p.Diag, RemoteDiagnostic: p.RemoteDiag,
			Uptime: time.Duration(p.Uptime) * time.Second, Downtime: time.Duration(p.Downtime) * time.Second, Passive: p.Passive}
		b.Peer, _ = netip.ParseAddr(p.Peer)
		b.Local, _ = netip.ParseAddr(p.Local)
		out = append(out, b)
	}
	return out, nil
}

// BFDProfileConfig is one of bfdd's profiles.
type BFDProfileConfig struct {
	ReceiveInterval, TransmitInterval time.Duration
	DetectMultiplier                  int
	Passive                           bool
}

// BFDProfiles returns bfdd's profiles by name. FRR 8.4 has no show command
// for them: they are read from bfdd's running config, where settings left at
// FRR's defaults (300 ms, 300 ms, x3) do not appear.
func (r *Router) BFDProfiles() (map[string]BFDProfileConfig, error) {
	out, err := r.vtysh("-d", "bfdd", "-c", "show running-config")
	if err != nil {
		return nil, err
	}
	return parseBFDProfiles(out), nil
}

func parseBFDProfiles(out string) map[string]BFDProfileConfig {
	profiles := map[string]BFDProfileConfig{}
	var name string
	var cur BFDProfileConfig
	inBFD := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		switch {
		case line == "bfd":
			inBFD = true
		case !inBFD:
		case line == "exit" || line == "end":
			inBFD = false
		case len(f) == 2 && f[0] == "profile" && strings.HasPrefix(line, " profile"):
			name, cur = f[1], BFDProfileConfig{ReceiveInterval: 300 * time.Millisecond, TransmitInterval: 300 * time.Millisecond, DetectMultiplier: 3}
		case name != "" && len(f) == 1 && f[0] == "exit" && strings.HasPrefix(line, " exit"):
			profiles[name], name = cur, ""
		case name != "" && len(f) == 1 && f[0] == "passive-mode":
			cur.Passive = true
		case name != "" && len(f) == 2:
			v, err := strconv.Atoi(f[1])
			if err != nil {
				continue
			}
			switch f[0] {
			case "receive-interval":
				cur.ReceiveInterval = time.Duration(v) * time.Millisecond
			case "transmit-interval":
				cur.TransmitInterval = time.Duration(v) * time.Millisecond
			case "detect-multiplier":
				cur.DetectMultiplier = v
			}
		}
	}
	return profiles
}
