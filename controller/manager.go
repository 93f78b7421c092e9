package controller

import (
	"context"
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crconfig "sigs.k8s.io/controller-runtime/pkg/config"
	crcontroller "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/internal/apiwait"
)

// Options configure the controller manager.
type Options struct {
	// LBClass is the loadBalancerClass handled; "" handles Services without one.
	LBClass string
	// Namespace is where Portico runs: the Lease, the webhook certificate
	// Secret and the BGP password Secrets live there, and it is the only
	// namespace whose Secrets the controller reads (a BGPPeer naming a
	// Secret elsewhere is not Ready).
	Namespace string
	// LeaderElect turns on leader election with a Lease named LeaderElectionID
	// in LeaderElectionNamespace (default Namespace).
	LeaderElect             bool
	LeaderElectionID        string
	LeaderElectionNamespace string
	// LeaseDuration, RenewDeadline and RetryPeriod tune how fast a new leader
	// takes over; defaults 6s, 4s and 1s.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// MetricsBindAddress and HealthProbeBindAddress: "0" disables.
	MetricsBindAddress     string
	HealthProbeBindAddress string
	// PprofBindAddress serves Go's /debug/pprof when set; "" or "0" disables.
	PprofBindAddress string
	// Webhook serves the validating webhook when Enabled.
	Webhook WebhookOptions
	// Workers is the number of concurrent Service reconciles (default 16):
	// status writes are the bottleneck and the API server takes them fastest
	// with several writers.
	Workers int
	// WrapClient, when set, wraps the clients the reconcilers, the start-up
	// rebuild and the webhook certificate keeper read and write with (tests
	// use it to inject API errors and delays).
	WrapClient func(client.Client) client.Client
}

// Scheme returns a scheme with the Kubernetes and Portico types.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := v1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// NewManager returns a manager running every Portico controller; call Start.
func NewManager(cfg *rest.Config, o Options) (manager.Manager, error) {
	registerMetrics()
	if o.Namespace == "" {
		o.Namespace = "portico-system"
	}
	if o.LeaderElectionID == "" {
		o.LeaderElectionID = "portico-controller"
	}
	if o.LeaderElectionNamespace == "" {
		o.LeaderElectionNamespace = o.Namespace
	}
	if o.LeaseDuration == 0 {
		o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = 6*time.Second, 4*time.Second, time.Second
	}
	if o.Workers == 0 {
		o.Workers = 16
	}
	cfg = rest.CopyConfig(cfg)
	// Client-side throttling would cap status writes far below what the API
	// server takes; its own priority and fairness protects it instead.
	cfg.QPS, cfg.Burst = -1, 0
	mo := manager.Options{
		Scheme:                        Scheme(),
		LeaderElection:                o.LeaderElect,
		LeaderElectionID:              o.LeaderElectionID,
		LeaderElectionNamespace:       o.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &o.LeaseDuration,
		RenewDeadline:                 &o.RenewDeadline,
		RetryPeriod:                   &o.RetryPeriod,
		Metrics:                       metricsserver.Options{BindAddress: orDefault(o.MetricsBindAddress, "0")},
		HealthProbeBindAddress:        orDefault(o.HealthProbeBindAddress, "0"),
		PprofBindAddress:              orDefault(o.PprofBindAddress, "0"),
		Cache: cache.Options{
			// Managed fields are a large share of a cached Service and unused.
			DefaultTransform: cache.TransformStripManagedFields(),
			// Resume within a second of the API server's return after an
			// outage, not after client-go's backoff of up to a minute.
			NewInformer: func(lw toolscache.ListerWatcher, obj runtime.Object, resync time.Duration, idx toolscache.Indexers) toolscache.SharedIndexInformer {
				return toolscache.NewSharedIndexInformer(apiwait.Wrap(lw, 250*time.Millisecond), obj, resync, idx)
			},
		},
		Controller: crcontrollerConfig(),
	}
	var keeper *certKeeper
	if o.Webhook.Enabled {
		o.Webhook.defaults(o.Namespace)
		keeper = newCertKeeper(o.Namespace, o.Webhook)
		// Served from memory: a renewed certificate is served at once,
		// without files or a restart.
		mo.WebhookServer = webhook.NewServer(webhook.Options{Port: o.Webhook.Port, TLSOpts: []func(*tls.Config){
			func(c *tls.Config) { c.GetCertificate = keeper.getCertificate },
		}})
	}
	mgr, err := ctrl.NewManager(cfg, mo)
	if err != nil {
		return nil, err
	}
	if err := Setup(mgr, o); err != nil {
		return nil, err
	}
	if keeper != nil {
		if err := setupWebhook(mgr, o, keeper); err != nil {
			return nil, err
		}
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	return mgr, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Setup adds Portico's controllers and the start-up rebuild to mgr (NewManager
// adds the webhook, whose server it configures).
func Setup(mgr manager.Manager, o Options) error {
	st := newState()
	dirty := &atomic.Bool{}
	retry := newRetrier(st)
	cfgKick := make(chan event.GenericEvent, 1)
	rec := mgr.GetEventRecorder("portico-controller") // events.k8s.io: kubectl describe shows them too
	c := mgr.GetClient()
	if o.WrapClient != nil {
		c = o.WrapClient(c)
	}
	sr := &ServiceReconciler{client: c, st: st, class: o.LBClass, rec: rec, countsDirty: dirty, retry: retry}
	cr := &ConfigReconciler{client: c, reader: mgr.GetAPIReader(), st: st, namespace: o.Namespace, retry: retry, countsDirty: dirty}

	err := ctrl.NewControllerManagedBy(mgr).Named("service").
		For(&corev1.Service{}).
		// Services waiting for an address, retried when one may be free.
		WatchesRawSource(retry.source()).
		// Pools pinned by namespace selector: a relabelled namespace may
		// give its waiting Services a pool, or take one away.
		// Only label changes: a new namespace has no Services yet, and at
		// start every Service is queued anyway.
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(sr.servicesIn),
			builder.WithPredicates(predicate.And(predicate.LabelChangedPredicate{}, updatesOnly))).
		WithOptions(crcontroller.Options{MaxConcurrentReconciles: o.Workers}).
		Complete(sr)
	if err != nil {
		return err
	}
	toConfig := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{configKey}
	})
	err = ctrl.NewControllerManagedBy(mgr).Named("config").
		Watches(&v1.IPAddressPool{}, toConfig).
		Watches(&v1.L2Advertisement{}, toConfig).
		Watches(&v1.BGPAdvertisement{}, toConfig).
		Watches(&v1.BGPPeer{}, toConfig).
		Watches(&v1.BFDProfile{}, toConfig).
		Watches(&v1.Community{}, toConfig).
		WatchesRawSource(source.Channel(cfgKick, toConfig)).
		Complete(cr)
	if err != nil {
		return err
	}
	if err := mgr.Add(&rebuilder{cache: mgr.GetCache(), client: c, st: st, class: o.LBClass, cfg: cr}); err != nil {
		return err
	}
	return mgr.Add(&countsTicker{dirty: dirty, kick: cfgKick})
}

// updatesOnly passes update events and nothing else.
var updatesOnly = predicate.Funcs{
	CreateFunc:  func(event.CreateEvent) bool { return false },
	DeleteFunc:  func(event.DeleteEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
}

// crcontrollerConfig lets several managers run in one process (tests, the
// handover test) without controller name clashes.
func crcontrollerConfig() crconfig.Controller {
	skip := true
	return crconfig.Controller{SkipNameValidation: &skip}
}

// rebuilder restores allocation state from Service status when this replica
// becomes leader, before any reconciler allocates.
type rebuilder struct {
	cache  cache.Cache
	client client.Client
	st     *state
	class  string
	cfg    *ConfigReconciler
}

func (b *rebuilder) NeedLeaderElection() bool { return true }

// Start assigns every Service the addresses its status records, assigned
// Services first and oldest first (ties by name), so that two Services
// claiming one address are settled the same way every time.
func (b *rebuilder) Start(ctx context.Context) error {
	if !b.cache.WaitForCacheSync(ctx) {
		return fmt.Errorf("caches did not sync")
	}
	if _, err := b.cfg.refresh(ctx); err != nil {
		return fmt.Errorf("reading the configuration at start: %w", err)
	}
	var list corev1.ServiceList
	var nsList corev1.NamespaceList
	// Without the namespaces' labels an address in a pool pinned to a
	// namespace would look misplaced and be moved: read both or wait.
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		err := b.client.List(ctx, &list)
		if err == nil {
			err = b.client.List(ctx, &nsList)
		}
		if err == nil {
			err = missingNamespace(list.Items, nsList.Items)
		}
		if err != nil {
			log.FromContext(ctx).Error(err, "reading Services and namespaces at start; retrying")
		}
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("reading Services and namespaces at start: %w", err)
	}
	svcs := make([]*corev1.Service, 0, len(list.Items))
	for i := range list.Items {
		s := &list.Items[i]
		if Handles(s, b.class) && len(IngressIPs(s)) > 0 {
			svcs = append(svcs, s)
		}
	}
	slices.SortFunc(svcs, func(x, y *corev1.Service) int {
		if c := x.CreationTimestamp.Compare(y.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(x.Namespace+"/"+x.Name, y.Namespace+"/"+y.Name)
	})
	nsLabels := map[string]map[string]string{}
	for _, n := range nsList.Items {
		nsLabels[n.Name] = n.Labels
	}
	for _, s := range svcs {
		facts := ServiceFacts(s)
		facts.NamespaceLabels = nsLabels[s.Namespace]
		for _, ip := range IngressIPs(s) {
			if _, err := b.st.alloc.Assign(facts, ip, ""); err != nil {
				b.st.setReason(facts.Key, fmt.Sprintf("%s could not be kept when the controller started: %v", ip, err))
			}
		}
	}
	close(b.st.ready)
	return nil
}

// missingNamespace reports a Service whose namespace is not in namespaces
// (the cache has not seen it yet).
func missingNamespace(svcs []corev1.Service, namespaces []corev1.Namespace) error {
	known := make(map[string]bool, len(namespaces))
	for _, n := range namespaces {
		known[n.Name] = true
	}
	for _, s := range svcs {
		if !known[s.Namespace] {
			return fmt.Errorf("namespace %s of Service %s is not known yet", s.Namespace, s.Name)
		}
	}
	return nil
}

// countsTicker asks the config reconciler to refresh pool counts at most once
// a second while allocations change, instead of once per Service.
type countsTicker struct {
	dirty *atomic.Bool
	kick  chan event.GenericEvent
}

func (t *countsTicker) NeedLeaderElection() bool { return true }

func (t *countsTicker) Start(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if t.dirty.Load() {
				select {
				case t.kick <- event.GenericEvent{Object: &v1.IPAddressPool{}}:
				default:
				}
			}
		}
	}
}
