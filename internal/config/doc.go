// Package config turns Portico's custom resources into one validated, immutable
// configuration model, shared by the controller, the speaker, the webhook and the
// CLI, so that all of them accept and refuse exactly the same things with the
// same words.
//
// [Builder.Build] is a pure function of its [Inputs] (plus a cache of parsed
// pools): it parses every IPAddressPool into an [ipam.Pool], resolves the
// references between objects and reports every problem as a [Problem] naming the
// object, the field and what to do. Problems never stop the rest of the
// configuration from working:
//
//   - a pool whose addresses do not parse keeps its last valid version in effect
//     (so nothing allocated from it is dropped) and is reported Invalid;
//   - overlapping pools are both reported; the older one keeps the overlap (the
//     allocator enforces the same rule);
//   - an advertisement naming a missing pool or peer, a peer naming a missing
//     BFD profile or Secret, a duplicate community alias and an aggregation
//     length shorter than a pool's CIDR are reported on the object at fault.
//
// The Builder caches parsed pools by name, UID and generation, so a change to one
// object does not re-parse every pool.
package config
