package bgp

import (
	"cmp"
	"context"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// What the announcer knows of each session beyond gobgp's API: the status
// entries, kept in line with SetDesired, and the LastError taken from
// gobgp's peer events, its log records, BFD polls and diagnostic OPENs.

// peerStatus is what the announcer knows of a peer beyond gobgp's ListPeer.
type peerStatus struct {
	name             string
	conf             peerConf
	running          bool // a gobgp neighbour exists (else only ConfigError is meaningful)
	state            string
	since            time.Time
	lastErr          string
	configErr        string
	routes4, routes6 int

	// Diagnostic OPENs (probe.go): one at a time, at most once per
	// probeEvery for the same settings.
	probing     bool
	probedConf  peerConf
	probedAt    time.Time
	probedWords string

	// BFD went down and gobgp asked for a reset of the session: whether the
	// reset's NOTIFICATION left (see flushReset).
	bfdResetPending bool

	// gobgp counts UPDATEs per neighbour, from 0 whenever it re-creates
	// one; Sessions adds what earlier neighbours sent.
	updatesBase, updatesLast uint64
}

// track makes sure name has a status entry for c, indexed by address,
// before gobgp hears of it (so its first events and log records find it).
func (a *Announcer) track(name string, c peerConf) {
	a.st.Lock()
	defer a.st.Unlock()
	ps := a.status[name]
	if ps == nil {
		ps = &peerStatus{name: name, state: "Idle", since: time.Now()}
		a.status[name] = ps
	}
	if ps.conf.addr != c.addr && a.byAddr[ps.conf.addr] == ps {
		delete(a.byAddr, ps.conf.addr)
	}
	ps.conf, ps.running = c, true
	a.byAddr[c.addr] = ps
}

// trackRejected gives a peer that was never applied a status entry, so
// that Sessions reports why.
func (a *Announcer) trackRejected(p Peer) {
	a.st.Lock()
	defer a.st.Unlock()
	if a.status[p.Name] == nil {
		a.status[p.Name] = &peerStatus{name: p.Name, state: "Idle", conf: peerConf{name: p.Name, addr: p.Address}}
	}
}

// publish brings the status entries in line with want after SetDesired.
func (a *Announcer) publish(want map[string]peerConf, configErrs map[string][]string) {
	a.st.Lock()
	defer a.st.Unlock()
	for name, ps := range a.status {
		_, wanted := want[name]
		e := a.peers[name]
		if !wanted && configErrs[name] == nil {
			if a.byAddr[ps.conf.addr] == ps {
				delete(a.byAddr, ps.conf.addr)
			}
			delete(a.status, name)
			continue
		}
		ps.configErr = strings.Join(configErrs[name], "; ")
		ps.running = e != nil && e.added
		ps.routes4, ps.routes6 = 0, 0
		if e != nil {
			for pfx := range e.routes {
				if pfx.Addr().Is4() {
					ps.routes4++
				} else {
					ps.routes6++
				}
			}
		}
	}
}

// Sessions reports every peer of the last SetDesired, sorted by name.
func (a *Announcer) Sessions() []SessionStatus {
	a.st.Lock()
	srv := a.stSrv
	list := make([]peerStatus, 0, len(a.status))
	for _, ps := range a.status {
		list = append(list, *ps)
	}
	a.st.Unlock()
	slices.SortFunc(list, func(x, y peerStatus) int { return strings.Compare(x.name, y.name) })

	live := map[netip.Addr]*api.Peer{}
	if srv != nil {
		_ = srv.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
			if addr, err := netip.ParseAddr(p.GetConf().GetNeighborAddress()); err == nil && p.State != nil {
				live[addr.Unmap()] = p
			}
		})
	}
	out := make([]SessionStatus, len(list))
	updates := map[string]uint64{}
	for i, ps := range list {
		s := SessionStatus{Peer: ps.name, Address: ps.conf.addr, State: "Idle", Since: ps.since,
			LastError: ps.lastErr, ConfigError: ps.configErr}
		if ps.conf.bfd {
			s.BFDState = "Down"
		}
		if p := live[ps.conf.addr]; p != nil && ps.running {
			st := p.State
			s.State = cmp.Or(sessionStates[st.SessionState], "Idle")
			// gobgp's own times (whole seconds): established at, or down
			// since; before the first session, the announcer's.
			up, down := p.GetTimers().GetState().GetUptime(), p.GetTimers().GetState().GetDowntime()
			if st.SessionState == api.PeerState_SESSION_STATE_ESTABLISHED && up.GetSeconds() > 0 {
				s.Since = up.AsTime()
			} else if st.SessionState != api.PeerState_SESSION_STATE_ESTABLISHED && down.GetSeconds() > 0 {
				s.Since = down.AsTime()
			}
			updates[ps.name] = st.GetMessages().GetSent().GetUpdate()
			if ps.conf.bfd && st.BfdState != nil {
				s.BFDState = cmp.Or(bfdStates[st.BfdState.SessionState], "Down")
			}
			if st.SessionState == api.PeerState_SESSION_STATE_ESTABLISHED {
				s.LastError = "" // (the event that clears it may not have arrived yet)
				v4, v6 := negotiated(st)
				if v4 {
					s.PrefixesAdvertised += ps.routes4
				}
				if v6 {
					s.PrefixesAdvertised += ps.routes6
				}
			}
		}
		out[i] = s
	}
	// UpdatesSent never goes back: a neighbour gobgp re-created (new
	// settings) counts from 0 again.
	a.st.Lock()
	for i := range out {
		ps := a.status[out[i].Peer]
		if ps == nil {
			continue
		}
		if n, ok := updates[ps.name]; ok {
			if n < ps.updatesLast {
				ps.updatesBase += ps.updatesLast
			}
			ps.updatesLast = n
		}
		out[i].UpdatesSent = ps.updatesBase + ps.updatesLast
	}
	a.st.Unlock()
	return out
}

// onPeer records a session state change reported by gobgp.
func (a *Announcer) onPeer(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
	if ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	st := &ev.Peer.State
	a.st.Lock()
	ps := a.byAddr[st.NeighborAddress.Unmap()]
	if ps == nil {
		a.st.Unlock()
		return
	}
	prev := ps.state
	if name := fsmStates[st.SessionState]; name != "" && name != ps.state {
		ps.state = name
	}
	switch {
	case st.SessionState == bgp.BGP_FSM_ESTABLISHED:
		ps.lastErr = ""
	case st.DisconnectReason == api.PeerState_DISCONNECT_REASON_INVALID_MSG && prev != "Established":
		// In OpenConfirm this is the router's NOTIFICATION, its code lost.
		a.refused(ps)
	default:
		if msg := reasonWords(st.DisconnectReason, st.DisconnectMessage, &ps.conf); msg != "" {
			ps.lastErr = msg
		}
	}
	a.st.Unlock()
	a.notify()
}

// reasonWords is the LastError for a session that left a state for reason,
// or "" when the reason is no error (our own reset or removal, or one
// reported better by a log record).
func reasonWords(reason api.PeerState_DisconnectReason, msg string, c *peerConf) string {
	switch reason {
	case api.PeerState_DISCONNECT_REASON_HOLD_TIMER_EXPIRED:
		return holdWords(c)
	case api.PeerState_DISCONNECT_REASON_NOTIFICATION_RECEIVED:
		return outgoingWords(msg, c)
	case api.PeerState_DISCONNECT_REASON_NOTIFICATION_SENT:
		code, subcode, ok := parseCodes(msg)
		if !ok || code == 6 && (subcode == 2 || subcode == 3 || subcode == 4 || subcode == 6) {
			return "" // our own shutdown, removal, reset (BFD: see observe) or reconfiguration
		}
		if code == 4 {
			return holdWords(c)
		}
		return sentWords(code, subcode, c)
	case api.PeerState_DISCONNECT_REASON_BAD_PEER_AS:
		return sentWords(2, 2, c)
	case api.PeerState_DISCONNECT_REASON_READ_FAILED:
		return "the router closed the connection"
	case api.PeerState_DISCONNECT_REASON_WRITE_FAILED:
		return "the connection to the router broke while sending"
	case api.PeerState_DISCONNECT_REASON_INVALID_MSG:
		return "the router sent a message gobgp could not accept"
	case api.PeerState_DISCONNECT_REASON_GRACEFUL_RESTART:
		return "the connection to the router dropped (graceful restart: the router may keep our routes for the restart time)"
	case api.PeerState_DISCONNECT_REASON_HARD_RESET:
		return "peer sent NOTIFICATION: hard reset"
	}
	return ""
}

// observe turns gobgp log records about a peer into its LastError.
func (a *Announcer) observe(rec gobgpRecord) {
	if rec.msg == "Can't listen UDP" {
		msg := "BFD cannot run: UDP port 3784 cannot be opened on this node (" + rec.str("Error") + "); is another BFD daemon running?"
		a.st.Lock()
		for _, ps := range a.status {
			if ps.conf.bfd {
				ps.lastErr = msg
			}
		}
		a.st.Unlock()
		a.notify()
		return
	}
	key := cmp.Or(rec.str("Key"), rec.str("Peer"))
	addr, err := netip.ParseAddr(key)
	if err != nil {
		return
	}
	a.st.Lock()
	ps := a.byAddr[addr.Unmap()]
	if ps == nil {
		a.st.Unlock()
		return
	}
	c := &ps.conf
	code, _ := rec.int("Code")
	subcode, _ := rec.int("Subcode")
	var msg string
	switch rec.msg {
	case "failed to connect":
		msg = dialWords(rec.str("Error"), c)
	case "outgoing connection IO error":
		msg = outgoingWords(rec.str("reason"), c)
	case "outgoing connection closing due to hold timer expired in OPEN SENT state":
		msg = "no answer to OPEN: the router accepted the connection but never answered our OPEN"
	case "sent notification":
		if rec.str("Communicated-Reason") == "BFD is down" {
			ps.bfdResetPending = false
		}
		if code == 6 && (subcode == 2 || subcode == 3 || subcode == 4 || subcode == 6) {
			break // our own shutdown, removal, reset (BFD: its own record) or reconfiguration
		}
		if code == 5 && ps.state != "Established" {
			// gobgp's answer to a message other than OPEN after its own
			// OPEN: the router's NOTIFICATION came first.
			before := ps.lastErr
			a.refused(ps)
			msg = ps.lastErr
			ps.lastErr = before
			break
		}
		msg = sentWords(code, subcode, c)
		if code == 4 {
			msg = holdWords(c)
		}
	case "received notification":
		msg = receivedWords(code, subcode, c)
		if r := rec.str("Communicated-Reason"); r != "" {
			msg += ": " + r
		}
	case "hold timer expired":
		msg = holdWords(c)
	case "Expired":
		msg = bfdExpiredWords()
		a.watchReset(ps)
	case "Remote peer signaled BFD down":
		msg = bfdRemoteDownWords
		a.watchReset(ps)
	case "Can't dial UDP":
		msg = "BFD cannot send to the router: " + rec.str("Error")
	}
	changed := msg != "" && msg != ps.lastErr
	if changed {
		ps.lastErr = msg
	}
	a.st.Unlock()
	if changed {
		a.notify()
	}
}

// refusedWords is the LastError for a refused OPEN whose NOTIFICATION
// gobgp did not report, until a diagnostic OPEN tells more.
const refusedWords = "peer sent NOTIFICATION in answer to our OPEN (gobgp does not report which; check myASN, peerASN, the router ID and the router's neighbour configuration)"

// refused handles a refused OPEN whose NOTIFICATION gobgp did not report:
// it says so, with the reason a diagnostic OPEN found for these settings,
// and starts one if none ran lately. a.st must be held.
func (a *Announcer) refused(ps *peerStatus) {
	if ps.probedConf == ps.conf && ps.probedWords != "" {
		ps.lastErr = ps.probedWords
	} else {
		ps.lastErr = refusedWords
	}
	if ps.probing || ps.probedConf == ps.conf && time.Since(ps.probedAt) < probeEvery || a.probeCtx.Err() != nil {
		return
	}
	ps.probing = true
	name, c, rid := ps.name, ps.conf, a.stRouterID
	a.probes.Add(1)
	go func() {
		defer a.probes.Done()
		code, subcode, err := probeOpen(a.probeCtx, c, rid)
		words := ""
		if err == nil {
			words = receivedWords(code, subcode, &c)
		}
		a.log.Debug("diagnostic OPEN", "peer", name, "answer", words, "error", err)
		a.st.Lock()
		changed := false
		if ps := a.status[name]; ps != nil {
			ps.probing = false
			if ps.conf == c {
				ps.probedConf, ps.probedAt, ps.probedWords = c, time.Now(), words
				if words != "" && ps.state != "Established" && ps.lastErr == refusedWords {
					ps.lastErr, changed = words, true
				}
			}
		}
		a.st.Unlock()
		if changed {
			a.notify()
		}
	}()
}

// flushAfter is how long a BFD reset's NOTIFICATION may take to leave
// before watchReset takes it for stuck.
const flushAfter = 500 * time.Millisecond

// watchReset handles a gap in gobgp 4.8: when BFD goes down it resets the
// BGP session by queueing a NOTIFICATION that only an Established session
// sends. If the session is not Established at that moment (BFD went down
// before BGP came up, or while it was being reset), the NOTIFICATION waits
// in its queue and ends the next session the moment it is established. So
// when the reset has not left after flushAfter, the announcer re-adds the
// gobgp neighbour (the session is down anyway), which drops the queue.
// a.st must be held.
func (a *Announcer) watchReset(ps *peerStatus) {
	if ps.bfdResetPending {
		return
	}
	ps.bfdResetPending = true
	name, c := ps.name, ps.conf
	a.probes.Add(1)
	go func() {
		defer a.probes.Done()
		select {
		case <-a.probeCtx.Done():
			return
		case <-time.After(flushAfter):
		}
		a.st.Lock()
		ps := a.status[name]
		stuck := ps != nil && ps.bfdResetPending && ps.conf == c
		if ps != nil {
			ps.bfdResetPending = false
		}
		a.st.Unlock()
		if stuck {
			a.flushReset(name, c)
		}
	}()
}

// flushReset re-adds peer name's gobgp neighbour if it still runs c.
func (a *Announcer) flushReset(name string, c peerConf) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.peers[name]
	if a.closed || a.srv == nil || e == nil || !e.added || e.conf != c {
		return
	}
	a.log.Info("BFD went down while the BGP session was not established: re-adding the gobgp neighbour so that its queued reset does not end the next session", "peer", name)
	ctx := context.Background()
	if err := a.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: c.addr.String()}); err != nil {
		a.log.Warn("re-adding BGP peer: removing it", "peer", name, "error", err)
		return
	}
	e.added = false
	if err := a.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(&c, vrfName(e.vrfID))}); err != nil {
		a.log.Warn("re-adding BGP peer", "peer", name, "error", a.scrub(err, c.password))
		return
	}
	e.added = true
}

// bfdPoll is how often BFD states are read for Changes: gobgp has no BFD
// event.
const bfdPoll = 100 * time.Millisecond

func (a *Announcer) pollBFD(ctx context.Context, srv *server.BgpServer, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(bfdPoll)
	defer t.Stop()
	last := map[string]api.BfdSessionState{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := map[string]api.BfdSessionState{}
		srv.ListBfdPeer(ctx, func(addr string, st *api.BfdPeerState) { cur[addr] = st.SessionState })
		if !maps.Equal(cur, last) {
			last = cur
			a.notify()
		}
	}
}
