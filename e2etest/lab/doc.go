// Package lab runs a whole Portico cluster on one machine, as root, for the
// end-to-end tests, the benchmarks and `make demo`.
//
// Everything is real: etcd and kube-apiserver (built by
// hack/build-control-plane.sh), bin/portico-controller and one
// bin/portico-speaker per node, each a separate process. There is no kubelet and
// no kube-proxy: the lab creates Node objects and EndpointSlices itself and
// stands in for kube-proxy (see below).
//
// Portico's CRDs, ServiceAccounts, roles and bindings come from the Helm
// chart's rendered output (helm template of charts/portico, once per lab,
// with bin/tools/helm from hack/install-tools.sh); the controller and the
// speakers authenticate as the chart's ServiceAccounts with tokens from the
// TokenRequest API, so every lab run proves the chart's roles are enough.
//
// # Topology
//
// Every name starts with the lab's prefix (Opts.Name, default "ptc"):
//
//	ptc-ctl      etcd, kube-apiserver (203.0.113.1:6443), portico-controller;
//	             bridge "brm" (203.0.113.1/25): the management network
//	ptc-l2       bridge "br0" (stp_state 0, forward_delay 0, mcast_snooping 0):
//	             the data segment, nothing else
//	ptc-nodeN    portico-speaker --node-name nodeN; mgmt0 203.0.113.(10+N)/25 on brm,
//	             eth0 198.51.100.(10+N)/24 and 2001:db8:1::(10+N)/64 on br0
//	             (MAC 02:70:74:63:01:0N), service IPs on lo, HTTP responder on :80
//	ptc-client   eth0 198.51.100.2/24, 2001:db8:1::2/64 on br0
//	ptc-router   FRR (zebra, bfdd, bgpd): eth0 198.51.100.1/24 and
//	             2001:db8:1::1/64 on br0 (MAC 02:70:74:63:00:01), ext0
//	             203.0.113.193/26 and 2001:db8:2::1/64; forwards both
//	             families, ECMP hashed on ports too
//	ptc-ext      the external client behind the router: eth0
//	             203.0.113.194/26 and 2001:db8:2::2/64 (a veth to the
//	             router's ext0), default routes via the router
//	ptc-pods     only with StartBackends: backend pods for an Ingress
//	             controller, eth0 on br0 with one address per pod
//	             (198.51.100.51 and up)
//
// Every node's default routes point at the router (198.51.100.1 and
// 2001:db8:1::1 on eth0), as a real node's point at its top-of-rack router,
// so answers to the external client go back through it. The client on br0
// keeps reaching the L2 pools on-link.
//
// Lab addresses come only from the documentation ranges and exist only inside
// the lab's namespaces. 192.0.2.0/24 is avoided on purpose: the machines this
// project runs on use it for their own network. The L2 service pools are
// 198.51.100.100-198.51.100.199 and 2001:db8:1::100-2001:db8:1::1ff (on-link
// for the client), the BGP ones 198.51.100.200-198.51.100.239 and
// 2001:db8:1::200-2001:db8:1::2ff (routed by the router; a /32 or /128 route
// wins over its connected /24 or /64), ClusterIPs come from 203.0.113.128/26
// and 2001:db8:ffff::/108 (203.0.113.192/26 is the external client's
// subnet). The lab changes nothing in the root namespace's routing (on these
// machines the Go module proxy's address falls inside a documentation range,
// so a host route for a whole range would break module downloads while a lab
// runs), and nothing it does sends traffic from the root namespace.
//
// # The router
//
// The router runs Debian's FRR 8.4 as three lab processes (router-zebra,
// router-bfdd, router-bgpd), each with its own config, PID file and sockets
// in RunDir/router (owned by user frr, whom the daemons run as), no TCP vty,
// and its log in RunDir/router-DAEMON.log; they are stopped by PID like every
// lab process and never touch a system FRR. Up checks that each daemon runs
// the config written for it (FRR starts a daemon whose config it cannot read
// with an empty one, saying so only in its log).
//
// bgpd is AS 64500 (RouterASN) with one eBGP neighbour per node address, IPv4
// and IPv6 ("remote-as external": the nodes use AS 64501, NodeASN), each
// passive (the speakers dial out), both unicast families activated on every
// session, hold time Opts.RouterHoldTime (default 9 s, keepalive a third),
// connect timer 5 s, no ebgp-requires-policy, ECMP over up to 16 paths with
// as-path multipath-relax. It sends the nodes no routes (route-map
// lab-to-nodes deny on every neighbour): in a trial with FRR stand-ins for
// the speakers, an IPv6 route the router passed on from one node to another
// over an IPv4 session was refused as malformed ("UPDATE Message
// Error/Invalid Network Field") and the session reset. bfdd has the profile "lab" (100 ms, 100
// ms, x3), attached to no neighbour: tests attach it with
// Router.Neighbor(addr, "bfd profile lab"), set passwords with
// Router.Neighbor(addr, "password ..."), and undo what they change. Router's
// other methods read FRR's JSON: Routes, Route (communities, local
// preference), FIB (the next hops in the kernel), Neighbors, BFDPeers,
// BFDProfiles; VTY runs any vtysh commands. From the root namespace:
//
//	vtysh --vty_socket RUNDIR/router --config_dir RUNDIR/router -c 'show bgp summary'
//	ip netns exec ptc-ext curl http://IP/
//
// The root namespace reaches the API server through a small TCP proxy on
// 127.0.0.1 whose upstream sockets are opened inside ptc-ctl (the kubeconfig
// at Lab.Kubeconfig, for kubectl); the lab's own Go clients dial inside ptc-ctl
// directly.
//
// # The kube-proxy stand-in
//
// kube-proxy's IPVS mode puts every LoadBalancer IP on a dummy interface of
// every node, with "strict ARP". This kernel has no dummy link type, so the lab
// watches Services and puts every ingress IP on lo in every node namespace,
// with net.ipv4.conf.all.arp_ignore=1 and arp_announce=2 in the node
// namespaces. Checked on these machines with arping: with arp_ignore=0 the
// node's kernel answers ARP on eth0 for an IPv4 address on lo; with
// arp_ignore=1 it does not, which leaves ARP to the speaker. For IPv6 nothing
// extra is needed: the kernel answers a neighbour solicitation only for
// addresses on the interface it arrived on (ndisc_recv_ns looks the target up
// strictly per device), so an address on lo (added with nodad) gets no NDP
// answer on eth0 (checked with ndisc6: "Timed out"), while traffic to it is
// still delivered locally. No nftables rules are needed.
//
// Each node namespace also has an HTTP responder on port 80 (all addresses)
// that answers with the node's name, so a client request shows which node
// received it.
//
// # An Ingress controller
//
// StartIngressController runs a real Traefik (bin/traefik/traefik, built by
// hack/build-traefik.sh) in every node namespace, behind a LoadBalancer
// Service of its own with ports 80 and 443; StartBackends adds the pods it
// routes to. See traefik.go for how it reads the API server, and why its
// ports are redirected with nftables.
//
// # Processes, logs and teardown
//
// Every process writes its log to the run folder (Lab.RunDir, under
// /tmp/portico-lab). The lab records itself in a state file under
// /run/portico-lab (namespaces, PIDs with their start times, the owning
// process). Down stops processes by PID (TERM, then KILL), kills whatever is
// left in the lab's namespaces by PID and deletes them with `ip netns del`.
// CleanLeftovers does the same for labs whose owner died (a failed or
// interrupted run) and for namespaces with the "ptc-" prefix that no live lab
// claims; Up calls it first.
package lab
