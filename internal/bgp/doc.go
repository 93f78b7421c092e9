// Package bgp is the speaker's BGP announcer: it owns this node's BGP
// sessions to its routers and the routes it announces on them, through an
// embedded gobgp v4 (github.com/osrg/gobgp/v4, no gobgpd process), with
// gobgp's own BFD. It decides nothing: the speaker's plan (which sessions,
// which prefixes with which attributes to which peers) comes in whole
// through Announcer.SetDesired, as for layer2.Announcer.SetOwned, and the
// announcer makes gobgp match it with as little change on the wire as it
// can. Sessions reports each session in words; Changes signals when that
// report changed.
//
// # How the plan maps onto gobgp
//
//   - gobgp never listens on port 179 (ListenPort -1): it only dials out, so
//     it coexists with a CNI's BGP daemon on the node. With BFD on, gobgp's
//     BFD listens on UDP 3784 (RFC 5881), which another BFD daemon on the
//     node would hold already; Sessions says so.
//   - Every peer gets its own gobgp VRF (route distinguisher and route target
//     of its own, never on the wire: only ipv4-unicast and ipv6-unicast are
//     negotiated, on every session, so IPv4 and IPv6 prefixes go over either
//     session family). A path is added to the VRF of each peer it names,
//     with that peer's attributes, so each peer gets exactly its paths;
//     adding, changing or removing one sends one UPDATE to the peers it
//     concerns and nothing else, and moving a path between peers needs no
//     policy change and no soft reset. (Per-peer export policies on one
//     shared table would need a soft reset out, which resends every path to
//     the peer, for each change of a peer list.)
//   - Routes the routers send are not installed (a global import policy
//     accepts local paths only).
//   - Origin is IGP on every path (routers do not spread traffic over paths of
//     different origins). An invalid Path.NextHop means the session's local
//     address, which gobgp fills in per session.
//   - gobgp has one router ID for all sessions: Config.RouterID, else the
//     first Peer.RouterID, else the host's first global IPv4 address. A peer
//     asking for another is reported in its ConfigError; a change of the
//     chosen router ID restarts gobgp (every session resets).
//   - Peer settings carried in OPEN (ASNs, password, source address, port,
//     graceful restart, multihop) reset the session when they change: gobgp
//     re-creates the neighbour. Timers and BFD change in place; the hold and
//     keepalive times apply from the next session, as in FRR.
//   - Graceful restart: Close withdraws every path and sends a Cease, so
//     routers move traffic at once; CloseForRestart and a crash close the
//     connection without a NOTIFICATION, and routers that negotiated
//     graceful restart keep the routes, marked stale, for
//     GracefulRestartTime until the next process announces them again.
//
// # Session errors in words
//
// LastError comes from gobgp's peer events and, where gobgp reports an
// error only in its log (a refused or timed-out connect, a NOTIFICATION
// answering our OPEN, BFD expiry), from its log records, which the announcer
// reads before passing them on (gobgp's chatter at debug level, its warnings
// at warn). Passwords never appear in errors, status or logs: they are
// replaced in gobgp's records, and Peer formats and logs without them.
//
// gobgp 4.8 gaps the announcer works around, each tested against FRR:
//
//   - A NOTIFICATION the router sends after its own OPEN (FRR's answer to a
//     bad peer AS) reaches gobgp in OpenConfirm, which reports "invalid-msg"
//     and drops the code. The announcer then sends one diagnostic OPEN of
//     its own (probe.go; same source address, password and TTL) to read the
//     router's NOTIFICATION, at most once a minute per peer setting.
//   - When BFD goes down, gobgp resets the session by queueing a NOTIFICATION
//     that only an Established session sends: if the session was not
//     Established, it ends the next session the moment that comes up. The
//     announcer re-adds the gobgp neighbour in that case, which drops it,
//     500 ms after BFD went down (flushAfter): a session established
//     within that time is still ended once, and comes back after the idle
//     hold time.
//
// # BFD against FRR (bfdd 8.4)
//
// gobgp's BFD comes up with FRR's bfdd, with the profile's timers on both
// sides, and a link cut drops the session within the detection time (300 ms
// x 3: about 0.9 s in the lab). What the router must be set to, and what to
// expect:
//
//   - gobgp knows a BFD peer by the source address of its packets: the
//     router must send BFD from the address the speaker peers with (FRR:
//     "neighbor X update-source Y" where the router has several addresses).
//   - gobgp sends at its own transmit interval and does not slow down to the
//     router's required minimum receive interval (RFC 5880 asks it to); it
//     computes its detection time as RFC 5880 says, from the router's
//     multiplier and the slower of its own receive interval and the router's
//     transmit interval, and FRR adapts its transmit interval to gobgp's
//     receive interval. Unequal profiles therefore work (tested: speaker
//     200 ms x 5, router 300 ms x 3, no flap), but a router that asks for
//     fewer packets still gets the speaker's rate: keep the speaker
//     profile's transmit interval at or above the router's receive
//     interval.
//   - FRR 8.4's bgpd restarts its BFD session when the BGP session comes up
//     (FRR issue 17337, fixed in FRR 10.2), which resets the new BGP session
//     once, on both sides, a few seconds after it first comes up.
//   - gobgp has no passive mode (reported in ConfigError; BFD then runs
//     active), no echo mode, no authentication, no multihop BFD.
//
// # Network namespaces
//
// gobgp opens its sockets (BGP connections, BFD's UDP sockets) from its own
// goroutines, long after the call that configured them, on whatever OS thread
// the runtime picks; a thread switched into a network namespace (as
// netnstest.NS.Do does for the layer2 tests) does not carry them along, and
// new threads start in the process's namespace. So the announcer works in the
// network namespace of its process. The speaker runs in the host's; the
// tests run the announcer in a process of its own, the test binary started
// again with "ip netns exec" inside the speaker's namespace (lab_test.go).
package bgp
