// Package election decides which node announces each layer 2 (ARP/NDP)
// service IP.
//
// The decision is a pure function of plain facts: the nodes (alive in
// memberlist, excluded, NetworkUnavailable, interface carrier), the
// L2Advertisements that apply to the IP (with the nodes their selectors
// match, computed by the caller), and for externalTrafficPolicy: Local the
// nodes that hold a ready endpoint. Every speaker evaluates the same function
// on the same facts and so reaches the same answer without talking to the
// others: there is no randomness and no dependence on input order.
//
// Among the candidates the winner is chosen by rendezvous (highest random
// weight) hashing of (node name, IP). IPs therefore spread evenly over the
// nodes, and when a node stops being a candidate only the IPs it owned move;
// every other IP keeps its announcer.
//
// The hash is part of the protocol between speakers: two speaker versions
// that hash differently would both announce (or both ignore) some IPs during
// a rolling upgrade. Do not change [Score] without a migration plan.
package election
