package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/equality"
	kerrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/internal/config"
	"github.com/portico-lb/portico/internal/ipam"
)

// configKey is the single work item of the config reconciler: every change to
// any configuration object rebuilds the one configuration.
var configKey = reconcile.Request{NamespacedName: types.NamespacedName{Name: "portico-config"}}

// ConfigReconciler builds the configuration from the Portico objects, hands
// the pools to the allocator, and writes the status of pools,
// advertisements and peers, each only when it changed.
type ConfigReconciler struct {
	client      client.Client
	reader      client.Reader // uncached, for the few Secrets peers name
	st          *state
	namespace   string
	retry       *retrier // Services to reconcile again
	countsDirty *atomic.Bool
}

// Reconcile rebuilds the configuration and writes statuses.
func (r *ConfigReconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	if err := r.st.waitReady(ctx); err != nil {
		return reconcile.Result{}, err
	}
	start := time.Now()
	defer func() { metricReconcile.WithLabelValues("config").Observe(time.Since(start).Seconds()) }()
	r.countsDirty.Store(false)
	in, err := r.refresh(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}
	cfg := r.st.config()
	var errs []string
	for i := range in.Pools {
		if err := r.writePool(ctx, &in.Pools[i], cfg); err != nil {
			errs = append(errs, err.Error())
		}
	}
	for i := range in.L2Advertisements {
		o := &in.L2Advertisements[i]
		if err := r.writeConditions(ctx, o, &o.Status.Conditions, o.Generation, cfg.ProblemsFor(config.KindL2Advertisement, o.Name)); err != nil {
			errs = append(errs, err.Error())
		}
	}
	for i := range in.BGPAdvertisements {
		o := &in.BGPAdvertisements[i]
		if err := r.writeConditions(ctx, o, &o.Status.Conditions, o.Generation, cfg.ProblemsFor(config.KindBGPAdvertisement, o.Name)); err != nil {
			errs = append(errs, err.Error())
		}
	}
	for i := range in.BGPPeers {
		o := &in.BGPPeers[i]
		if err := r.writeConditions(ctx, o, &o.Status.Conditions, o.Generation, peerProblems(cfg, o, r.namespace)); err != nil {
			errs = append(errs, err.Error())
		}
	}
	r.exportMetrics(in.Pools)
	if len(errs) > 0 {
		return reconcile.Result{}, fmt.Errorf("writing status: %s", strings.Join(errs, "; "))
	}
	// Secrets are read directly, not watched: look again now and then.
	return reconcile.Result{RequeueAfter: 5 * time.Minute}, nil
}

// refresh reads every configuration object, builds the configuration and,
// when the pools changed, gives them to the allocator and requeues the
// Services the change affects.
func (r *ConfigReconciler) refresh(ctx context.Context) (config.Inputs, error) {
	in, err := r.inputs(ctx)
	if err != nil {
		return in, err
	}
	cfg := r.st.builder.Build(in)
	key := poolsFingerprint(in.Pools, cfg)
	r.st.mu.Lock()
	r.st.cfg = cfg
	same := key == r.st.poolsKey
	r.st.poolsKey = key
	r.st.mu.Unlock()
	if same {
		return in, nil
	}
	res, err := r.st.alloc.SetPools(cfg.IPAMPools())
	if err != nil {
		return in, fmt.Errorf("giving pools to the allocator: %w", err)
	}
	var keys []string
	for _, s := range res.Stranded {
		r.st.setReason(s.Service, s.Reason)
		keys = append(keys, s.Service)
	}
	for _, m := range res.Moved {
		keys = append(keys, m.Service)
	}
	r.retry.add(keys...)
	r.st.freed.Add(1)
	r.retry.waiting()
	return in, nil
}

func poolsFingerprint(pools []v1.IPAddressPool, cfg *config.Config) string {
	var b strings.Builder
	for _, p := range cfg.Pools() {
		fmt.Fprintf(&b, "%s/%v;", p.Name, p.Stale)
	}
	for _, p := range pools {
		fmt.Fprintf(&b, "%s/%s/%d;", p.Name, p.UID, p.Generation)
	}
	return b.String()
}

func (r *ConfigReconciler) inputs(ctx context.Context) (config.Inputs, error) {
	return readInputs(ctx, r.client, r.reader, r.namespace)
}

// readInputs lists every configuration object with list, and gets the Secrets
// that peers name with get, in Portico's namespace only: a Secret named in
// another namespace is never read (see peerProblems).
func readInputs(ctx context.Context, list, get client.Reader, namespace string) (config.Inputs, error) {
	in := config.Inputs{Namespace: namespace}
	var pools v1.IPAddressPoolList
	var l2 v1.L2AdvertisementList
	var bgp v1.BGPAdvertisementList
	var peers v1.BGPPeerList
	var bfd v1.BFDProfileList
	var comm v1.CommunityList
	for _, l := range []client.ObjectList{&pools, &l2, &bgp, &peers, &bfd, &comm} {
		if err := list.List(ctx, l); err != nil {
			return in, err
		}
	}
	in.Pools, in.L2Advertisements, in.BGPAdvertisements = pools.Items, l2.Items, bgp.Items
	in.BGPPeers, in.BFDProfiles, in.Communities = peers.Items, bfd.Items, comm.Items
	in.Secrets = map[string][]string{}
	for _, p := range peers.Items {
		ref := p.Spec.PasswordSecretRef
		if ref == nil {
			continue
		}
		ns := ref.Namespace
		if ns == "" {
			ns = namespace
		}
		if ns != namespace {
			continue
		}
		var s corev1.Secret
		err := get.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, &s)
		switch {
		case kerrors.IsNotFound(err):
		case err != nil:
			in.Secrets = nil // cannot tell: do not report Secrets missing
		case in.Secrets != nil:
			keys := make([]string, 0, len(s.Data))
			for k := range s.Data {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			in.Secrets[ns+"/"+ref.Name] = keys
		}
		if in.Secrets == nil {
			break
		}
	}
	return in, nil
}

// peerProblems returns the problems of peer p: those the configuration
// reports, and a password Secret named in another namespace than Portico's.
// Password Secrets live in Portico's namespace only: it is the one namespace
// whose Secrets the controller and the speakers may read, so that neither can
// read (or tell the existence of) a Secret anywhere else in the cluster.
func peerProblems(cfg *config.Config, p *v1.BGPPeer, namespace string) []config.Problem {
	problems := cfg.ProblemsFor(config.KindBGPPeer, p.Name)
	ref := p.Spec.PasswordSecretRef
	if ref == nil || ref.Namespace == "" || ref.Namespace == namespace {
		return problems
	}
	// The Secret was not read: whatever the configuration says of it is moot.
	problems = slices.DeleteFunc(slices.Clone(problems), func(pr config.Problem) bool {
		return strings.HasPrefix(pr.Field, "spec.passwordSecretRef")
	})
	return append(problems, config.Problem{
		Kind: config.KindBGPPeer, Name: p.Name, Field: "spec.passwordSecretRef.namespace", Reason: config.ReasonInvalid,
		Message: fmt.Sprintf("the password Secret %s/%s is outside Portico's namespace %s, and Portico reads password Secrets only there (the speakers read passwords only from %s): move the Secret into namespace %s and clear spec.passwordSecretRef.namespace",
			ref.Namespace, ref.Name, namespace, namespace, namespace),
	})
}

// readyCondition turns an object's problems into its Ready condition.
func readyCondition(gen int64, problems []config.Problem, okMsg string) metav1.Condition {
	c := metav1.Condition{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Ready", Message: okMsg, ObservedGeneration: gen}
	if len(problems) == 0 {
		return c
	}
	msgs := make([]string, len(problems))
	for i, p := range problems {
		msgs[i] = p.Field + ": " + p.Message
	}
	c.Status, c.Reason, c.Message = metav1.ConditionFalse, problems[0].Reason, strings.Join(msgs, "; ")
	// An invalid spec is the first thing to fix: lead with it.
	for _, p := range problems {
		if p.Reason == config.ReasonInvalid {
			c.Reason = p.Reason
		}
	}
	return c
}

func (r *ConfigReconciler) writeConditions(ctx context.Context, obj client.Object, conds *[]metav1.Condition, gen int64, problems []config.Problem) error {
	before := slices.Clone(*conds)
	meta.SetStatusCondition(conds, readyCondition(gen, problems, "all references resolve"))
	if apierrors.Semantic.DeepEqual(before, *conds) {
		return nil
	}
	return ignoreGone(r.client.Status().Update(ctx, obj))
}

func ignoreGone(err error) error {
	if kerrors.IsNotFound(err) || kerrors.IsConflict(err) {
		return nil // a newer version is on its way to the reconciler
	}
	return err
}

func (r *ConfigReconciler) writePool(ctx context.Context, p *v1.IPAddressPool, cfg *config.Config) error {
	st := p.Status.DeepCopy()
	counts, ok := r.st.alloc.Counts(p.Name)
	if ok {
		st.AssignedIPv4, st.AvailableIPv4 = counts.IPv4.Assigned, counts.IPv4.AvailableInt64()
		st.AssignedIPv6, st.AvailableIPv6 = counts.IPv6.Assigned, counts.IPv6.AvailableInt64()
	}
	st.ObservedGeneration = p.Generation
	problems := cfg.ProblemsFor(config.KindIPAddressPool, p.Name)
	cond := readyCondition(p.Generation, problems, "the pool hands out addresses")
	if len(problems) == 0 && ok && counts.IPv4.TotalInt64() == 0 && counts.IPv6.TotalInt64() == 0 {
		cond.Status, cond.Reason = metav1.ConditionFalse, "Empty"
		cond.Message = "the pool has no address it may allocate: its addresses are kept by older overlapping pools or are all .0/.255 addresses that avoidBuggyIPs skips"
	}
	meta.SetStatusCondition(&st.Conditions, cond)
	if apierrors.Semantic.DeepEqual(*st, p.Status) {
		return nil
	}
	p.Status = *st
	return ignoreGone(r.client.Status().Update(ctx, p))
}

func (r *ConfigReconciler) exportMetrics(pools []v1.IPAddressPool) {
	metricPoolTotal.Reset()
	metricPoolInUse.Reset()
	for _, p := range pools {
		c, ok := r.st.alloc.Counts(p.Name)
		if !ok {
			continue
		}
		for _, f := range []ipam.Family{ipam.IPv4, ipam.IPv6} {
			fc := c.Family(f)
			metricPoolTotal.WithLabelValues(p.Name, f.String()).Set(float64(fc.TotalInt64()))
			metricPoolInUse.WithLabelValues(p.Name, f.String()).Set(float64(fc.Assigned))
		}
	}
}
