package membership

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"time"
)

// Timers tunes failure detection and gossip. A zero field takes its value
// from DefaultTimers, so a caller sets only what it wants to change.
//
// How memberlist notices a dead node, and what each timer contributes:
//
//  1. Every member probes one other member per ProbeInterval, walking a
//     shuffled list, so a dead node is probed by someone within about one
//     ProbeInterval (sooner with more members).
//  2. The probe waits ProbeTimeout for a direct UDP ack, then asks
//     IndirectChecks other members to probe too and tries TCP; the probe
//     round ends at ProbeInterval. Still no ack: the node becomes suspect and
//     the suspicion is gossiped.
//  3. A suspect that does not refute within the suspicion timeout,
//     SuspicionMult x max(1, log10(members)) x ProbeInterval, is declared
//     dead. With SuspicionMult >= 3 and enough members, memberlist starts at
//     SuspicionMaxTimeoutMult times that and shortens it as other members
//     confirm the suspicion.
//  4. The death is gossiped to GossipNodes members every GossipInterval
//     (and piggybacked on probes); receivers act on it at once.
//
// The defaults target a LAN, where an ack takes well under a millisecond:
// a dead speaker is declared dead and agreed on in about 250-450 ms for up
// to 10 nodes (suspicion doubles at 100 nodes). memberlist's own LAN
// defaults (1 s probes, SuspicionMult 4) take 5 s or more, which is most of
// MetalLB's failover time. The price is bandwidth, tiny at these sizes: one
// ping per member per ProbeInterval plus gossip packets.
//
// The risk of short timers is a false death: a member too busy to answer
// within ProbeTimeout and then to refute within the suspicion timeout. A
// falsely accused member that is in fact alive refutes as soon as it hears
// the accusation (members keep gossiping to the dead for
// GossipToTheDeadTime), so a false death is short-lived; on a congested or
// lossy network raise ProbeTimeout and SuspicionMult.
type Timers struct {
	// ProbeInterval is how often each member probes another (default
	// 100ms; memberlist LAN default 1s).
	ProbeInterval time.Duration
	// ProbeTimeout is how long to wait for a direct ack before trying
	// indirect probes; set it to about the 99th percentile RTT plus
	// scheduling delay (default 50ms; must be below ProbeInterval).
	ProbeTimeout time.Duration
	// SuspicionMult scales the suspicion timeout in ProbeIntervals
	// (default 2: 200 ms for up to 10 members; memberlist LAN default 4).
	// At 2, confirmations from other members are not awaited, which keeps
	// the timeout short and predictable in small clusters.
	SuspicionMult int
	// SuspicionMaxTimeoutMult bounds the suspicion timeout when
	// SuspicionMult >= 3 waits for confirmations (default 3).
	SuspicionMaxTimeoutMult int
	// IndirectChecks is how many members are asked to probe a node that
	// missed a direct ack, guarding against a lossy path between two
	// members (default 3).
	IndirectChecks int
	// GossipInterval is how often queued gossip (suspect, dead, alive) is
	// sent to GossipNodes random members (default 50ms, so a death spreads
	// within a few tens of milliseconds; memberlist default 200ms).
	GossipInterval time.Duration
	// GossipNodes is how many members each gossip round reaches (default 3).
	GossipNodes int
	// RetransmitMult scales how many times each gossip message is sent:
	// RetransmitMult x log10(members+1) (default 4).
	RetransmitMult int
	// PushPullInterval is how often a member does a full state exchange
	// with one other member over TCP, healing what gossip missed, such as
	// a partition (default 10s; memberlist default 30s).
	PushPullInterval time.Duration
	// GossipToTheDeadTime is how long a dead member still receives gossip,
	// so that one falsely declared dead learns of it and refutes; dead
	// members are forgotten after it (default 10s).
	GossipToTheDeadTime time.Duration
	// DeadNodeReclaimTime is how long a dead member's name stays bound to
	// its old address. After it a speaker restarted with the same node name
	// but a new address (a changed node IP or port) is accepted at once
	// instead of being refused as a name conflict until the dead entry is
	// forgotten (default 1s; memberlist default: never). Every live member
	// has agreed on the death well within it.
	DeadNodeReclaimTime time.Duration
	// TCPTimeout bounds TCP exchanges: joins, push/pull and the TCP
	// fallback probe (default 2s; memberlist default 10s, which stalls a
	// Join on an unreachable address).
	TCPTimeout time.Duration
}

// DefaultTimers returns the timers tuned for sub-second failure detection on
// a LAN; see Timers.
func DefaultTimers() Timers {
	return Timers{
		ProbeInterval:           100 * time.Millisecond,
		ProbeTimeout:            50 * time.Millisecond,
		SuspicionMult:           2,
		SuspicionMaxTimeoutMult: 3,
		IndirectChecks:          3,
		GossipInterval:          50 * time.Millisecond,
		GossipNodes:             3,
		RetransmitMult:          4,
		PushPullInterval:        10 * time.Second,
		GossipToTheDeadTime:     10 * time.Second,
		DeadNodeReclaimTime:     time.Second,
		TCPTimeout:              2 * time.Second,
	}
}

// withDefaults fills zero fields from DefaultTimers.
func (t Timers) withDefaults() Timers {
	v, def := reflect.ValueOf(&t).Elem(), reflect.ValueOf(DefaultTimers())
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			v.Field(i).Set(def.Field(i))
		}
	}
	return t
}

// Validate checks the timers after defaults are applied.
func (t Timers) Validate() error {
	t = t.withDefaults()
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"ProbeInterval", t.ProbeInterval}, {"ProbeTimeout", t.ProbeTimeout},
		{"GossipInterval", t.GossipInterval}, {"PushPullInterval", t.PushPullInterval},
		{"GossipToTheDeadTime", t.GossipToTheDeadTime}, {"DeadNodeReclaimTime", t.DeadNodeReclaimTime},
		{"TCPTimeout", t.TCPTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s is negative (%v)", d.name, d.v))
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{
		{"SuspicionMult", t.SuspicionMult}, {"SuspicionMaxTimeoutMult", t.SuspicionMaxTimeoutMult},
		{"IndirectChecks", t.IndirectChecks}, {"GossipNodes", t.GossipNodes}, {"RetransmitMult", t.RetransmitMult},
	} {
		if n.v < 0 {
			errs = append(errs, fmt.Errorf("%s is negative (%d)", n.name, n.v))
		}
	}
	if t.ProbeTimeout >= t.ProbeInterval {
		errs = append(errs, fmt.Errorf("ProbeTimeout (%v) must be shorter than ProbeInterval (%v)",
			t.ProbeTimeout, t.ProbeInterval))
	}
	if len(errs) > 0 {
		return fmt.Errorf("membership timers: %w", errors.Join(errs...))
	}
	return nil
}

// DetectionBound estimates the longest time, without packet loss or
// overload, from a member's death until every live member of a cluster of
// the given size has declared it dead: waiting to be probed, the failed
// probe round, the suspicion timeout and one gossip round.
func (t Timers) DetectionBound(members int) time.Duration {
	t = t.withDefaults()
	return 2*t.ProbeInterval + t.suspicionTimeout(members) + t.GossipInterval
}

// suspicionTimeout follows memberlist's formula: the minimum timeout, or
// the maximum when confirmations are awaited (SuspicionMult-2 of them, if
// the cluster has enough members to give them).
func (t Timers) suspicionTimeout(members int) time.Duration {
	scale := math.Max(1, math.Log10(math.Max(1, float64(members))))
	minimum := time.Duration(float64(t.SuspicionMult) * scale * float64(t.ProbeInterval))
	if k := t.SuspicionMult - 2; k >= 1 && members-2 >= k {
		return time.Duration(t.SuspicionMaxTimeoutMult) * minimum
	}
	return minimum
}
