package speaker

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/internal/config"
	"github.com/portico-lb/portico/internal/election"
	"github.com/portico-lb/portico/speaker/facts"
	"github.com/portico-lb/portico/speaker/l2plan"
)

// requestTimeout bounds each status write, so an unreachable API server
// delays status, never announcing.
const requestTimeout = 5 * time.Second

// retryInterval re-runs a status pass that failed, or that nothing
// triggered, to heal missed writes.
const retryInterval = 10 * time.Second

// conflictMemory is how long a node-name conflict stays in lastError after
// it was last reported (memberlist reports it at most once a minute).
const conflictMemory = 2 * time.Minute

// statusWriter writes the node's SpeakerStatus and this node's entries of
// the ServiceAnnouncements, and records events, only when something changed
// and at most once per Config.StatusInterval.
type statusWriter struct {
	s    *Speaker
	kick signal

	mu sync.Mutex // guards the fields below (run and nodeEvent)
	// node is the SpeakerStatus status last written (UpdatedAt unset).
	node *porticov1.SpeakerStatusStatus
	// applied holds this node's entries last applied per Service.
	applied map[types.NamespacedName]announcement
	// problems is the last set of configuration problems evented.
	problems []config.Problem
	first    bool
}

// fieldManager names this node's server-side-apply manager: each speaker
// owns the ServiceAnnouncement entries of the IPs it announces.
func (w *statusWriter) fieldManager() string { return "portico-speaker-" + w.s.cfg.NodeName }

func newStatusWriter(s *Speaker) *statusWriter {
	return &statusWriter{s: s, kick: newSignal(), applied: map[types.NamespacedName]announcement{}, first: true}
}

func (w *statusWriter) trigger() { w.kick.fire() }

func (w *statusWriter) run(ctx context.Context) {
	runOn(ctx, w.kick, retryInterval, func() {
		w.pass(ctx)
		select { // rate limit
		case <-ctx.Done():
		case <-time.After(w.s.cfg.StatusInterval):
		}
	})
}

// pass writes whatever differs from what was last written.
func (w *statusWriter) pass(ctx context.Context) {
	s := w.s
	s.mu.Lock()
	plan := s.l2.lastPlan()
	ready, standDown, members := s.ready, s.standDown, s.members
	if s.conflict != nil && time.Since(s.conflictAt) > conflictMemory {
		s.conflict = nil
	}
	ifaces := s.localIfaces
	s.mu.Unlock()
	if plan == nil || !ready || standDown != nil {
		// A speaker standing down must not overwrite the SpeakerStatus
		// of the speaker that owns the node name.
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writeNode(ctx, plan, members, ifaces)
	w.writeAnnouncements(ctx)
	w.eventProblems(plan.Problems)
	w.first = false
}

func (w *statusWriter) writeNode(ctx context.Context, plan *l2plan.Plan, members []string, ifaces []election.Interface) {
	s := w.s
	links, _ := s.net.current()
	want := l2plan.NodeStatus(s.localAddr, members, ifaces, links.macs, plan, s.lastError())
	want.BGPSessions = s.bgp.sessions()
	want.MemberlistKeys = s.keys.summary()
	c := s.mgr.GetClient()
	var cur porticov1.SpeakerStatus
	err := s.mgr.GetCache().Get(ctx, types.NamespacedName{Name: s.cfg.NodeName}, &cur)
	if w.node == nil && err == nil {
		old := cur.Status
		old.UpdatedAt = nil
		if reflect.DeepEqual(normNode(old), normNode(want)) {
			w.node = &want
		}
	}
	if w.node != nil && reflect.DeepEqual(normNode(*w.node), normNode(want)) {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	obj := &porticov1.SpeakerStatus{ObjectMeta: metav1.ObjectMeta{Name: s.cfg.NodeName}}
	if apierrors.IsNotFound(err) {
		// Owned by the Node, so a cluster's garbage collector removes it with
		// the Node (the deputy does it where there is none; see cleanUp).
		var node corev1.Node
		if err := s.mgr.GetCache().Get(ctx, types.NamespacedName{Name: s.cfg.NodeName}, &node); err == nil {
			obj.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
		}
		if err := c.Create(rctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			s.log.Warn("creating SpeakerStatus", "error", err)
			return
		}
	}
	st := want
	st.UpdatedAt = &metav1.Time{Time: time.Now()}
	if err := w.applyStatus(rctx, obj, "SpeakerStatus", st); err != nil {
		s.log.Warn("writing SpeakerStatus", "error", err)
		return
	}
	w.node = &want
}

// metaTime is t as the API stores it (whole seconds), so a status read back
// compares equal to the one written.
func metaTime(t time.Time) *metav1.Time { return &metav1.Time{Time: t.Truncate(time.Second)} }

// normNode makes empty and nil slices compare equal.
func normNode(st porticov1.SpeakerStatusStatus) porticov1.SpeakerStatusStatus {
	if len(st.Members) == 0 {
		st.Members = nil
	}
	if len(st.Interfaces) == 0 {
		st.Interfaces = nil
	}
	if len(st.BGPSessions) == 0 {
		st.BGPSessions = nil
	}
	return st
}

// writeAnnouncements applies this node's entries for every Service whose
// entries changed, including Services it no longer writes for (applying an
// empty list releases its entries).
func (w *statusWriter) writeAnnouncements(ctx context.Context) {
	s := w.s
	want := mergeAnnouncements(s.l2.announcements(), s.bgp.announcements())
	keys := slices.Collect(maps.Keys(want))
	for k := range w.applied {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	// By namespace, then name: building each key's String() in the
	// comparison allocated two strings per comparison, about 260,000 a pass
	// with 10,000 Services.
	slices.SortFunc(keys, func(a, b types.NamespacedName) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	for _, key := range keys {
		entries := want[key]
		prev, known := w.applied[key]
		cur, err := cachedGet[porticov1.ServiceAnnouncement](ctx, s.mgr.GetCache(), key)
		if err != nil {
			continue
		}
		missing := cur == nil
		if missing {
			cur = &porticov1.ServiceAnnouncement{}
		}
		empty := len(entries.l2) == 0 && len(entries.bgp) == 0
		// Unchanged entries are not written again while the object still
		// holds them. When it does not (deleted from outside, or a field
		// released by another node that briefly wrote the same IP), they
		// are written again.
		present := !missing && hasAll(cur.Status.L2, entries.l2) && hasAllBGP(cur.Status.BGP, entries.bgp)
		if known && sameAnnouncement(prev, entries) && (present || (empty && missing)) {
			continue
		}
		if !known && present {
			w.applied[key] = entries // already there, from before a restart
			continue
		}
		if err := w.apply(ctx, key, entries, missing); err != nil {
			s.log.Warn("writing ServiceAnnouncement", "service", key.String(), "error", err)
			continue
		}
		w.eventOwnership(key, prev.l2, entries.l2, cur.Status.L2)
		w.eventBGP(key, prev.bgp, entries.bgp)
		if empty {
			delete(w.applied, key)
		} else {
			w.applied[key] = entries
		}
	}
	if s.l2.isDeputy() {
		w.cleanUp(ctx)
	}
}

func sameAnnouncement(a, b announcement) bool {
	return reflect.DeepEqual(a.l2, b.l2) && reflect.DeepEqual(a.bgp, b.bgp)
}

// hasAllBGP reports whether every entry of want is in have, equal.
func hasAllBGP(have, want []porticov1.BGPAnnouncement) bool {
	for _, e := range want {
		if !slices.ContainsFunc(have, func(h porticov1.BGPAnnouncement) bool {
			return h.IP == e.IP && h.Node == e.Node && slices.Equal(h.Peers, e.Peers)
		}) {
			return false
		}
	}
	return true
}

// hasAll reports whether every entry of want is in have, equal.
func hasAll(have, want []porticov1.L2Announcement) bool {
	for _, e := range want {
		if !slices.ContainsFunc(have, func(h porticov1.L2Announcement) bool { return reflect.DeepEqual(normEntry(h), normEntry(e)) }) {
			return false
		}
	}
	return true
}

func normEntry(e porticov1.L2Announcement) porticov1.L2Announcement {
	if len(e.Interfaces) == 0 {
		e.Interfaces = nil
	}
	return e
}

// apply server-side-applies entries as this node's part of the Service's
// ServiceAnnouncement status, creating the object (owned by the Service) when
// missing.
func (w *statusWriter) apply(ctx context.Context, key types.NamespacedName, entries announcement, missing bool) error {
	s := w.s
	c := s.mgr.GetClient()
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	obj := &porticov1.ServiceAnnouncement{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	empty := len(entries.l2) == 0 && len(entries.bgp) == 0
	if missing {
		if empty {
			return nil
		}
		svc := lookupService(ctx, s.mgr.GetCache(), key)
		if svc == nil {
			return fmt.Errorf("the Service %s is not in the cache", key)
		}
		obj.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: svc.Name, UID: svc.UID}}
		if err := c.Create(rctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	l2, bgp := entries.l2, entries.bgp
	if l2 == nil {
		l2 = []porticov1.L2Announcement{}
	}
	if bgp == nil {
		bgp = []porticov1.BGPAnnouncement{}
	}
	err := w.applyStatus(rctx, obj, "ServiceAnnouncement", map[string]any{"l2": l2, "bgp": bgp})
	if apierrors.IsNotFound(err) && empty {
		return nil // the object is gone: nothing to release
	}
	return err
}

// applyStatus server-side-applies status as this node's part of obj's status
// (obj names the object). Fields this node wrote before and leaves out now
// are removed, which a merge patch would not do.
func (w *statusWriter) applyStatus(ctx context.Context, obj client.Object, kind string, status any) error {
	meta := map[string]string{"name": obj.GetName()}
	if ns := obj.GetNamespace(); ns != "" {
		meta["namespace"] = ns
	}
	body, err := json.Marshal(map[string]any{
		"apiVersion": porticov1.GroupVersion.String(),
		"kind":       kind,
		"metadata":   meta,
		"status":     status,
	})
	if err != nil {
		return err
	}
	return w.s.mgr.GetClient().Status().Patch(ctx, obj, client.RawPatch(types.ApplyPatchType, body),
		client.FieldOwner(w.fieldManager()), client.ForceOwnership)
}

// cleanUp is the deputy's care of ServiceAnnouncements written by anyone:
// it deletes those whose Service is gone, is no longer a LoadBalancer, or was
// recreated (the garbage collector does the first in a full cluster; this
// covers clusters without one), and removes entries for IPs the Service no
// longer has and BGP entries of nodes whose speaker is gone (their routes
// went with it). ServiceAnnouncements of Services of another
// loadBalancerClass are pruned the same way but never deleted for their
// class: another installation writes them.
func (w *statusWriter) cleanUp(ctx context.Context) {
	s := w.s
	sas, err := cached[porticov1.ServiceAnnouncement](ctx, s.mgr.GetCache())
	if err != nil {
		return
	}
	s.mu.Lock()
	members := slices.Clone(s.members)
	s.mu.Unlock()
	w.deleteStaleSpeakerStatuses(ctx)
	for _, sa := range sas {
		svc, alive := w.liveService(ctx, sa)
		if !alive {
			if svc != nil || w.confirmedGone(ctx, sa) {
				w.deleteAnnouncement(ctx, sa)
			}
			continue
		}
		w.prune(ctx, sa, svc, members)
	}
}

// deleteStaleSpeakerStatuses deletes the SpeakerStatus of every Node that no
// longer exists (confirmed with the API server), so its memberlist address
// stops being a join target.
func (w *statusWriter) deleteStaleSpeakerStatuses(ctx context.Context) {
	s := w.s
	var list porticov1.SpeakerStatusList
	if err := s.mgr.GetCache().List(ctx, &list); err != nil {
		return
	}
	for i := range list.Items {
		st := &list.Items[i]
		var node corev1.Node
		if err := s.mgr.GetCache().Get(ctx, types.NamespacedName{Name: st.Name}, &node); err == nil {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		err := s.mgr.GetAPIReader().Get(rctx, types.NamespacedName{Name: st.Name}, &node)
		if apierrors.IsNotFound(err) {
			uid := st.UID
			err = s.mgr.GetClient().Delete(rctx, st, client.Preconditions{UID: &uid})
			if err == nil {
				s.log.Info("deleted the SpeakerStatus of a node that no longer exists", "node", st.Name)
			} else if !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				s.log.Warn("deleting the SpeakerStatus of a node that no longer exists", "node", st.Name, "error", err)
			}
		}
		cancel()
	}
}

// liveService returns the cached Service of sa and whether sa still
// belongs to it. A nil Service means the cache has none.
func (w *statusWriter) liveService(ctx context.Context, sa *porticov1.ServiceAnnouncement) (*facts.Service, bool) {
	c := lookupService(ctx, w.s.mgr.GetCache(), client.ObjectKeyFromObject(sa))
	if c == nil {
		return nil, false
	}
	return &c.Service, belongs(sa, &c.Service)
}

// belongs reports whether sa describes svc: svc is a LoadBalancer and, when
// sa names its owner, the same object (not a recreated one).
func belongs(sa *porticov1.ServiceAnnouncement, svc *facts.Service) bool {
	if !svc.LoadBalancer {
		return false
	}
	for _, o := range sa.OwnerReferences {
		if o.Kind == "Service" && o.UID != svc.UID {
			return false
		}
	}
	return true
}

// freshService reads sa's Service from the API server.
func (w *statusWriter) freshService(ctx context.Context, sa *porticov1.ServiceAnnouncement) (*facts.Service, error) {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var svc corev1.Service
	if err := w.s.mgr.GetAPIReader().Get(rctx, client.ObjectKeyFromObject(sa), &svc); err != nil {
		return nil, err
	}
	out := facts.ServiceOf(&svc, func(s string) string { return s })
	return &out, nil
}

// confirmedGone asks the API server whether sa's Service is really gone or
// no longer its own: the cache may not have seen a new Service yet.
func (w *statusWriter) confirmedGone(ctx context.Context, sa *porticov1.ServiceAnnouncement) bool {
	svc, err := w.freshService(ctx, sa)
	if apierrors.IsNotFound(err) {
		return true
	}
	return err == nil && !belongs(sa, svc)
}

// deleteAnnouncement deletes sa, only if it is still the object read (UID
// precondition): a ServiceAnnouncement recreated meanwhile stays.
func (w *statusWriter) deleteAnnouncement(ctx context.Context, sa *porticov1.ServiceAnnouncement) {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	uid := sa.UID
	// sa is the cache's own object: the client gets a copy of its name.
	obj := &porticov1.ServiceAnnouncement{ObjectMeta: metav1.ObjectMeta{Namespace: sa.Namespace, Name: sa.Name}}
	err := w.s.mgr.GetClient().Delete(rctx, obj, client.Preconditions{UID: &uid})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		w.s.log.Warn("deleting orphaned ServiceAnnouncement", "name", client.ObjectKeyFromObject(sa).String(), "error", err)
	}
}

// prune removes from sa the entries of IPs svc no longer has, and the BGP
// entries of nodes that are not live members, with an update guarded by the
// object's resourceVersion (the entries may belong to other field
// managers, which an apply of ours cannot remove).
func (w *statusWriter) prune(ctx context.Context, sa *porticov1.ServiceAnnouncement, svc *facts.Service, members []string) {
	// Runs for every ServiceAnnouncement in each of the deputy's passes:
	// nothing is allocated unless there is something to remove.
	ips := svc.IPs
	staleIP := func(s string) bool {
		ip, err := netip.ParseAddr(s)
		return err != nil || !slices.Contains(ips, ip.Unmap())
	}
	staleL2 := func(e porticov1.L2Announcement) bool { return staleIP(e.IP) }
	staleBGP := func(e porticov1.BGPAnnouncement) bool { return staleIP(e.IP) || !slices.Contains(members, e.Node) }
	if !slices.ContainsFunc(sa.Status.L2, staleL2) && !slices.ContainsFunc(sa.Status.BGP, staleBGP) {
		return
	}
	l2 := slices.DeleteFunc(slices.Clone(sa.Status.L2), staleL2)
	bgp := slices.DeleteFunc(slices.Clone(sa.Status.BGP), staleBGP)
	// The cache may lag behind the Service: prune only what the API server
	// confirms is gone.
	if fresh, err := w.freshService(ctx, sa); err != nil || !belongs(sa, fresh) ||
		!slices.Equal(fresh.IPs, svc.IPs) {
		return
	}
	upd := sa.DeepCopy()
	upd.Status.L2, upd.Status.BGP = l2, bgp
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if err := w.s.mgr.GetClient().Status().Update(rctx, upd); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		w.s.log.Warn("removing stale ServiceAnnouncement entries", "name", client.ObjectKeyFromObject(sa).String(), "error", err)
	}
}

// eventOwnership records an event on the Service for each IP this node
// starts announcing, and for each IP that lost its announcer (deputy).
func (w *statusWriter) eventOwnership(key types.NamespacedName, prev, now, stored []porticov1.L2Announcement) {
	s := w.s
	cached := lookupService(context.Background(), s.mgr.GetCache(), key)
	if cached == nil {
		return
	}
	svc := cached.reference()
	for _, e := range now {
		if slices.ContainsFunc(prev, func(p porticov1.L2Announcement) bool { return reflect.DeepEqual(normEntry(p), normEntry(e)) }) {
			continue
		}
		if e.Node != "" {
			if slices.ContainsFunc(stored, func(p porticov1.L2Announcement) bool {
				return p.IP == e.IP && p.Node == e.Node && slices.Equal(p.Interfaces, e.Interfaces)
			}) {
				continue // already recorded before a restart
			}
			s.event(svc, corev1.EventTypeNormal, "Announcing", "announcing %s from %s on %s", e.IP, e.Node, strings.Join(e.Interfaces, ", "))
		} else {
			s.event(svc, corev1.EventTypeWarning, "NotAnnounced", "%s is not announced: %s", e.IP, e.Reason)
		}
	}
}

// eventBGP records an event on the Service for each IP this node starts
// announcing over BGP, or announces to other peers.
func (w *statusWriter) eventBGP(key types.NamespacedName, prev, now []porticov1.BGPAnnouncement) {
	s := w.s
	cached := lookupService(context.Background(), s.mgr.GetCache(), key)
	if cached == nil {
		return
	}
	svc := cached.reference()
	for _, e := range now {
		if slices.ContainsFunc(prev, func(p porticov1.BGPAnnouncement) bool { return p.IP == e.IP && slices.Equal(p.Peers, e.Peers) }) {
			continue
		}
		s.event(svc, corev1.EventTypeNormal, "AnnouncingBGP", "announcing %s over BGP from %s to %s", e.IP, e.Node, strings.Join(e.Peers, ", "))
	}
}

// eventProblems records an event on each L2Advertisement with a new
// problem.
func (w *statusWriter) eventProblems(problems []config.Problem) {
	s := w.s
	for _, p := range problems {
		if slices.Contains(w.problems, p) || p.Kind != "L2Advertisement" {
			continue
		}
		var ad porticov1.L2Advertisement
		if err := s.mgr.GetCache().Get(context.Background(), types.NamespacedName{Name: p.Name}, &ad); err != nil {
			continue
		}
		s.event(&ad, corev1.EventTypeWarning, "InvalidL2Advertisement", "%s: %s", p.Field, p.Message)
	}
	w.problems = slices.Clone(problems)
}

// nodeEvent records an event on this speaker's Node.
func (w *statusWriter) nodeEvent(typ, reason, msg string) {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: w.s.cfg.NodeName}}
	_ = w.s.mgr.GetCache().Get(context.Background(), types.NamespacedName{Name: n.Name}, n) // for its UID, if cached
	w.s.event(n, typ, reason, "%s", msg)
}

// event records an event from this speaker.
func (s *Speaker) event(obj runtime.Object, typ, reason, format string, args ...any) {
	s.rec.Eventf(obj, nil, typ, reason, "Announce", format, args...)
}
