package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/portico-lb/portico/internal/ipam"
)

// Kinds of the objects a Problem can be about.
const (
	KindIPAddressPool    = "IPAddressPool"
	KindL2Advertisement  = "L2Advertisement"
	KindBGPAdvertisement = "BGPAdvertisement"
	KindBGPPeer          = "BGPPeer"
	KindCommunity        = "Community"
)

// Reasons of problems; stable tokens for condition reasons.
const (
	ReasonInvalid           = "Invalid"
	ReasonOverlap           = "Overlap"
	ReasonMissingReference  = "MissingReference"
	ReasonDuplicate         = "Duplicate"
	ReasonAggregationLength = "AggregationLength"
	// ReasonUnsupported: the object asks for something Portico cannot do;
	// the message says what happens instead.
	ReasonUnsupported = "Unsupported"
)

// Problem is one thing wrong with one object.
type Problem struct {
	Kind    string // e.g. KindIPAddressPool
	Name    string // the object's name
	Field   string // the field at fault, e.g. spec.addresses[2]
	Reason  string // e.g. ReasonOverlap
	Message string // what is wrong and what to do
}

// Error formats the problem as one line naming the object and field.
func (p Problem) Error() string {
	if p.Field == "" {
		return fmt.Sprintf("%s %q: %s", p.Kind, p.Name, p.Message)
	}
	return fmt.Sprintf("%s %q: %s: %s", p.Kind, p.Name, p.Field, p.Message)
}

// Pool is a pool as the configuration uses it.
type Pool struct {
	ipam.Pool
	// Labels are the object's labels, for advertisement pool selectors.
	Labels map[string]string
	// Stale is true when the object's current spec is invalid and the last valid
	// version is in effect instead.
	Stale bool
}

// Advertisement is an L2 or BGP advertisement with its references resolved.
type Advertisement struct {
	Kind  string
	Name  string
	Pools []string // sorted names of the pools it covers
	// Nodes selects the nodes that announce.
	Nodes NodeSelection
	// Interfaces restricts L2 announcing to these links (L2 only).
	Interfaces []string
	// BGP holds the route settings (BGP only).
	BGP *BGPSettings
}

// Config is the validated configuration. It is immutable: never modify it or the
// slices it returns, build a new one.
type Config struct {
	pools    []Pool // sorted by name
	ads      []Advertisement
	peers    []Peer    // sorted by name
	problems []Problem // sorted by kind, name, field, message
}

// Pools returns the pools in effect, sorted by name.
func (c *Config) Pools() []Pool { return c.pools }

// IPAMPools returns the pools in effect as the allocator takes them.
func (c *Config) IPAMPools() []ipam.Pool {
	out := make([]ipam.Pool, len(c.pools))
	for i := range c.pools {
		out[i] = c.pools[i].Pool
	}
	return out
}

// Pool returns the pool named name, if it is in effect.
func (c *Config) Pool(name string) (Pool, bool) {
	i, ok := slices.BinarySearchFunc(c.pools, name, func(p Pool, n string) int { return strings.Compare(p.Name, n) })
	if !ok {
		return Pool{}, false
	}
	return c.pools[i], true
}

// Advertisements returns the L2 and BGP advertisements, by kind then name.
func (c *Config) Advertisements() []Advertisement { return c.ads }

// Peers returns the BGP peers in effect, sorted by name. A peer whose
// address or ASNs are invalid is left out (and reported).
func (c *Config) Peers() []Peer { return c.peers }

// Problems returns every problem, sorted by kind, name, field and message.
func (c *Config) Problems() []Problem { return c.problems }

// ProblemsFor returns the problems of one object.
func (c *Config) ProblemsFor(kind, name string) []Problem {
	lo, _ := slices.BinarySearchFunc(c.problems, [2]string{kind, name}, func(p Problem, k [2]string) int {
		return cmp.Or(strings.Compare(p.Kind, k[0]), strings.Compare(p.Name, k[1]))
	})
	hi := lo
	for hi < len(c.problems) && c.problems[hi].Kind == kind && c.problems[hi].Name == name {
		hi++
	}
	return c.problems[lo:hi]
}

// SortProblems sorts problems by kind, name, field and message and drops
// repeats, the order Config.Problems uses.
func SortProblems(ps []Problem) []Problem {
	slices.SortFunc(ps, compareProblems)
	return slices.Compact(ps)
}

func compareProblems(a, b Problem) int {
	return cmp.Or(strings.Compare(a.Kind, b.Kind), strings.Compare(a.Name, b.Name),
		strings.Compare(a.Field, b.Field), strings.Compare(a.Message, b.Message))
}

// olderFirst orders objects by creation time, then name: the order in which
// conflicts between objects are settled (the older object wins).
func olderFirst(at, bt time.Time, an, bn string) int {
	if c := at.Compare(bt); c != 0 {
		return c
	}
	return strings.Compare(an, bn)
}
