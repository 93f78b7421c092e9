// Package controller owns Portico's Kubernetes controllers: it allocates IPs
// from IPAddressPools to LoadBalancer Services, writes Service status, events
// and pool, advertisement and peer status, exports metrics and serves the
// optional validating webhook.
//
// Decisions are pure functions ([ParseRequest], [DesiredIngress],
// [IngressMatches]) over plain data, and allocation state lives in
// internal/ipam; the reconcilers are thin adapters that read the cache, call
// them and write the result only when it differs from what is stored.
//
// State is rebuilt on start (and on each new leadership) from Service status,
// assigned Services first and oldest first, before anything new is allocated,
// so a restart or failover changes no IP and writes nothing that is already
// right.
package controller
