// Package ipam owns Portico's address pools and decides which Service gets
// which load-balancer IP. It is plain Go with no Kubernetes imports, so the
// controller, the validating webhook and the CLI share one implementation and
// every rule can be tested without an API server.
//
// # Pools
//
// A [Pool] is a named set of address [Range]s, IPv4 and IPv6 mixed. Entries are
// parsed with [ParseRange] / [ParseRanges] (CIDR, "a-b" range or single IP), the
// same function the config layer, the webhook and the CLI use, so they all
// report the same error text for the same mistake.
//
// Pools are never materialised address by address: a pool is a short list of
// ranges and the allocator keeps, per pool and family, a sorted set of runs of
// allocated addresses. Memory is proportional to the number of allocated
// addresses (and, in the worst case, fragmentation), never to the pool size, so
// an IPv6 /64 or /48 costs the same as a /29.
//
// # Allocation order
//
// [Allocator.Allocate] hands out the lowest free address of the requested
// family, walking the pool's ranges in address order, so results are
// reproducible across restarts and replicas. Services with a sharing key first
// reuse the lowest address already held by compatible services with the same
// key (as MetalLB does), so services that ask to share actually end up sharing.
//
// # Overlapping pools
//
// When pools overlap, the older pool (earlier [Pool.Created]; ties broken by the
// lower name) keeps the overlapping addresses and the newer pool does not
// allocate from them. The overlap is reported for both pools ([Allocator.Overlaps])
// so both can carry a condition. Existing assignments are never dropped: an
// address in the overlap is simply attributed to the older pool.
//
// # Pool edits
//
// [Allocator.SetPools] replaces the pool set and keeps every assignment. An
// assignment left outside every pool is kept (so its address is not handed to
// anyone else) and reported as [Stranded], with a reason in words, so the
// controller can allocate a new address and explain why in an event.
//
// # Sharing
//
// Two services may hold the same IP only if all of these hold:
//   - both have the same non-empty sharing key;
//   - their (protocol, port) sets do not overlap;
//   - if either uses externalTrafficPolicy Local, both do and both have the
//     same backend key (they select the same pods), because the IP is announced
//     only from nodes with local endpoints.
//
// Sharing keys are scoped to the namespace: "web" in namespace a and "web" in
// namespace b are different keys, so one tenant cannot attach to another
// tenant's IP by guessing its key. A key of the form "cluster:<key>" is
// cluster-wide: services in any namespace carrying the same "cluster:<key>" may
// share. This is the form to use when migrating MetalLB configurations, whose
// keys are cluster-wide. A shared IP is counted once in pool counts.
//
// # Pool selection
//
// [SelectPools] orders the pools a service may use. Priority follows MetalLB:
// a lower number is a higher priority, and 0 means "no priority" and sorts after
// every explicit priority; ties are broken by name. Pools pinned by namespace or
// service selection that admit the service come first, then unpinned pools.
// Pools with AutoAssign false are used only when requested by name.
//
// # Errors
//
// Errors are [*Error] values whose text is meant to be shown to users verbatim
// (the controller copies it into Kubernetes events) and whose [Reason] is a
// stable token for metrics labels and tests.
//
// An [Allocator] is safe for concurrent use.
package ipam
