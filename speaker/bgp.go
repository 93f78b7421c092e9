package speaker

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/internal/bgp"
	"github.com/portico-lb/portico/internal/config"
	"github.com/portico-lb/portico/internal/election"
	"github.com/portico-lb/portico/speaker/bgpplan"
	"github.com/portico-lb/portico/speaker/facts"
	"github.com/portico-lb/portico/speaker/l2plan"
)

// protocol is one way of making Service IPs reachable from this node. The
// speaker gathers the facts once per change and hands them to every
// protocol; each owns its own state and reports through these methods.
type protocol interface {
	// apply plans from the facts and applies the plan. Nothing is
	// announced while announce is false (not ready, or standing down).
	apply(f facts.Facts, v nodeView, announce bool)
	// announcements returns this node's ServiceAnnouncement entries of the
	// protocol, per Service.
	announcements() map[types.NamespacedName]announcement
	// problems describes what the protocol cannot fix by itself, for
	// SpeakerStatus.lastError.
	problems() []string
	// close stops announcing, bounded by ctx.
	close(ctx context.Context)
}

// nodeView is what this node knows of itself and the other speakers.
type nodeView struct {
	// addresses are the interface addresses with prefix lengths, by link.
	addresses map[string][]netip.Prefix
	// links names every link; interfaces are those L2 may announce on, with
	// carrier as published (see l2plan.GateCarrier).
	links      []string
	interfaces []election.Interface
	// members are the live memberlist members with their metadata.
	members []l2plan.Member
}

// announcement is one Service's entries written by this node.
type announcement struct {
	l2  []porticov1.L2Announcement
	bgp []porticov1.BGPAnnouncement
}

// bgpProtocol runs this node's BGP sessions through an embedded gobgp
// (internal/bgp): the plan (package bgpplan) says which sessions to keep and
// which routes to send to whom; the announcer turns that into sessions and
// UPDATEs. Passwords are read from their Secrets by passwords.
type bgpProtocol struct {
	node      string
	ann       *bgp.Announcer
	passwords *passwordStore
	log       *slog.Logger

	mu      sync.Mutex
	plan    *bgpplan.Plan
	err     error    // last SetDesired error
	waiting []string // sessions held back until their password is known
}

func newBGPProtocol(node string, log *slog.Logger, read func(ctx context.Context, ref config.SecretRef) (string, error), onPassword func()) (*bgpProtocol, error) {
	ann, err := bgp.New(bgp.Config{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("starting BGP: %w", err)
	}
	return &bgpProtocol{node: node, ann: ann, log: log, passwords: newPasswordStore(read, onPassword, log)}, nil
}

func (b *bgpProtocol) apply(f facts.Facts, v nodeView, announce bool) {
	plan := bgpplan.Compute(bgpplan.Inputs{Facts: f, LocalAddresses: v.addresses})
	var peers []bgp.Peer
	var paths []bgp.Path
	var waiting []string
	if announce {
		for _, s := range plan.Sessions {
			p := s.Peer
			if s.Password != nil {
				pw, ok := b.passwords.get(*s.Password)
				if !ok {
					waiting = append(waiting, fmt.Sprintf("BGPPeer %q: waiting for its password from Secret %s/%s key %q: %s",
						p.Name, s.Password.Namespace, s.Password.Name, s.Password.Key, b.passwords.problem(*s.Password)))
					continue
				}
				p.Password = pw
			}
			peers = append(peers, p)
		}
		paths = plan.Paths
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := b.ann.SetDesired(ctx, peers, paths)
	cancel()
	if err != nil {
		b.log.Warn("BGP", "error", err)
	}
	b.mu.Lock()
	b.plan, b.err, b.waiting = &plan, err, waiting
	b.mu.Unlock()
}

func (b *bgpProtocol) announcements() map[types.NamespacedName]announcement {
	b.mu.Lock()
	plan := b.plan
	b.mu.Unlock()
	out := map[types.NamespacedName]announcement{}
	if plan == nil {
		return out
	}
	sent := map[string]bool{}
	for _, s := range b.ann.Sessions() {
		sent[s.Peer] = s.State == "Established"
	}
	for _, ip := range plan.IPs {
		e := porticov1.BGPAnnouncement{IP: ip.IP.String(), Node: b.node}
		for _, p := range ip.Peers {
			if sent[p] {
				e.Peers = append(e.Peers, p)
			}
		}
		if len(e.Peers) == 0 {
			continue
		}
		for _, svc := range ip.Services {
			a := out[svc]
			a.bgp = append(a.bgp, e)
			out[svc] = a
		}
	}
	return out
}

func (b *bgpProtocol) problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	if b.plan != nil {
		for _, p := range b.plan.Problems {
			out = append(out, p.Error())
		}
	}
	out = append(out, b.waiting...)
	if b.err != nil {
		out = append(out, "BGP: "+strings.ReplaceAll(b.err.Error(), "\n", "; "))
	}
	return out
}

// sessions returns the session status for SpeakerStatus.
func (b *bgpProtocol) sessions() []porticov1.BGPSessionStatus {
	var out []porticov1.BGPSessionStatus
	for _, s := range b.ann.Sessions() {
		st := porticov1.BGPSessionStatus{
			Peer: s.Peer, State: s.State, PrefixesAdvertised: int32(s.PrefixesAdvertised),
			BFDState: s.BFDState, LastError: strings.Join(nonEmpty(s.LastError, s.ConfigError), "; "),
		}
		if s.Address.IsValid() {
			st.Address = s.Address.String()
		}
		if !s.Since.IsZero() {
			st.Since = metaTime(s.Since)
		}
		out = append(out, st)
	}
	return out
}

func nonEmpty(ss ...string) []string {
	return slices.DeleteFunc(ss, func(s string) bool { return s == "" })
}

func (b *bgpProtocol) close(ctx context.Context) {
	if err := b.ann.Close(ctx); err != nil {
		b.log.Warn("closing BGP sessions", "error", err)
	}
}

// passwordStore reads BGP passwords from their Secrets, directly (never
// through a watch of every Secret), once when a peer first names one and
// again every minute, so announcing never waits for the API server.
type passwordStore struct {
	read     func(ctx context.Context, ref config.SecretRef) (string, error)
	onChange func()
	log      *slog.Logger
	kick     signal

	mu     sync.Mutex
	known  map[config.SecretRef]string
	errs   map[config.SecretRef]string
	wanted map[config.SecretRef]bool
}

func newPasswordStore(read func(ctx context.Context, ref config.SecretRef) (string, error), onChange func(), log *slog.Logger) *passwordStore {
	return &passwordStore{read: read, onChange: onChange, log: log, kick: newSignal(),
		known: map[config.SecretRef]string{}, errs: map[config.SecretRef]string{}, wanted: map[config.SecretRef]bool{}}
}

// get returns the password of ref if it has been read; otherwise it asks
// for it to be read.
func (p *passwordStore) get(ref config.SecretRef) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pw, ok := p.known[ref]
	if !p.wanted[ref] {
		p.wanted[ref] = true
		p.kick.fire()
	}
	return pw, ok
}

// problem says why ref's password is not known yet.
func (p *passwordStore) problem(ref config.SecretRef) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.errs[ref]; e != "" {
		return e
	}
	return "not read yet"
}

func (p *passwordStore) run(ctx context.Context) {
	runOn(ctx, p.kick, time.Minute, func() { p.refresh(ctx) })
}

func (p *passwordStore) refresh(ctx context.Context) {
	p.mu.Lock()
	refs := make([]config.SecretRef, 0, len(p.wanted))
	for r := range p.wanted {
		refs = append(refs, r)
	}
	p.mu.Unlock()
	changed := false
	for _, ref := range refs {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		pw, err := p.read(rctx, ref)
		cancel()
		p.mu.Lock()
		old, had := p.known[ref]
		switch {
		case err == nil:
			p.known[ref] = pw
			delete(p.errs, ref)
			changed = changed || !had || old != pw
		case !had:
			p.errs[ref] = err.Error()
		default:
			p.log.Warn("re-reading a BGP password; keeping the last one read", "secret", ref.Namespace+"/"+ref.Name, "error", err)
		}
		p.mu.Unlock()
	}
	if changed {
		p.onChange()
	}
}

// readPassword reads one key of a Secret.
func readPassword(c client.Reader) func(ctx context.Context, ref config.SecretRef) (string, error) {
	return func(ctx context.Context, ref config.SecretRef) (string, error) {
		var sec corev1.Secret
		err := c.Get(ctx, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, &sec)
		if apierrors.IsForbidden(err) {
			// The speaker's Role names the Secrets it may get; this one is
			// not among them.
			return "", fmt.Errorf("the speaker may not read Secret %s/%s: add %q to the resourceNames of the secrets rule "+
				"of Role portico-speaker in namespace %s (with Helm: add it to speaker.bgpPasswordSecrets)",
				ref.Namespace, ref.Name, ref.Name, ref.Namespace)
		}
		if err != nil {
			return "", err
		}
		v, ok := sec.Data[ref.Key]
		if !ok {
			return "", fmt.Errorf("the Secret has no key %q", ref.Key)
		}
		return string(v), nil
	}
}
