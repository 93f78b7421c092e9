package speaker

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/internal/apiwait"
	"github.com/portico-lb/portico/internal/config"
	"github.com/portico-lb/portico/speaker/facts"
)

// newManager builds a controller-runtime manager whose cache keeps only what
// the speaker reads, trimmed: 1,000 Services must stay cheap.
func newManager(cfg Config) (manager.Manager, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := porticov1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	metricsAddr := cfg.MetricsBindAddress
	if metricsAddr == "" {
		metricsAddr = "0"
	}
	yes := true
	trim := trimmer{in: newInterner()}
	mgr, err := manager.New(cfg.RestConfig, manager.Options{
		Scheme:           scheme,
		Metrics:          metricsserver.Options{BindAddress: metricsAddr},
		PprofBindAddress: cmp.Or(cfg.PprofBindAddress, "0"),
		Cache: cache.Options{
			// Resume within a second of the API server's return after an
			// outage (not after client-go's backoff of up to a minute), so
			// a Service created then is announced at once. Each speaker
			// tries once a second per informer while the server is down.
			NewInformer: func(lw toolscache.ListerWatcher, obj runtime.Object, resync time.Duration, idx toolscache.Indexers) toolscache.SharedIndexInformer {
				return toolscache.NewSharedIndexInformer(apiwait.Wrap(lw, time.Second), obj, resync, idx)
			},
			// Objects are only read, never modified, in the speaker.
			DefaultUnsafeDisableDeepCopy: &yes,
			DefaultTransform:             stripManagedFields,
			ByObject: map[client.Object]cache.ByObject{
				&corev1.Service{}:                {Transform: trim.service},
				&corev1.Node{}:                   {Transform: trim.node},
				&discoveryv1.EndpointSlice{}:     {Transform: trim.endpointSlice},
				&porticov1.SpeakerStatus{}:       {},
				&porticov1.IPAddressPool{}:       {},
				&porticov1.L2Advertisement{}:     {},
				&porticov1.BGPAdvertisement{}:    {},
				&porticov1.BGPPeer{}:             {},
				&porticov1.BFDProfile{}:          {},
				&porticov1.Community{}:           {},
				&porticov1.ServiceAnnouncement{}: {Transform: trim.serviceAnnouncement},
			},
		},
		// The speaker never reads Secrets through the cache (that would
		// watch every Secret); the memberlist key is read once, directly.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
	})
	if err != nil {
		return nil, fmt.Errorf("creating the Kubernetes client: %w", err)
	}
	return mgr, nil
}

// watched are the kinds whose changes trigger a recompute.
func watched() []client.Object {
	return []client.Object{
		&corev1.Service{}, &discoveryv1.EndpointSlice{}, &corev1.Node{},
		&porticov1.IPAddressPool{}, &porticov1.L2Advertisement{},
		&porticov1.BGPAdvertisement{}, &porticov1.BGPPeer{}, &porticov1.BFDProfile{}, &porticov1.Community{},
	}
}

// watch starts the informers and hooks them to the speaker's triggers.
func (s *Speaker) watch(ctx context.Context) error {
	c := s.mgr.GetCache()
	for _, obj := range watched() {
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("watching %T: %w", obj, err)
		}
		if _, err := inf.AddEventHandler(kickHandler(s.trigger)); err != nil {
			return err
		}
	}
	inf, err := c.GetInformer(ctx, &porticov1.SpeakerStatus{})
	if err != nil {
		return fmt.Errorf("watching SpeakerStatuses: %w", err)
	}
	if _, err := inf.AddEventHandler(kickHandler(s.peer.trigger)); err != nil {
		return err
	}
	inf, err = c.GetInformer(ctx, &porticov1.ServiceAnnouncement{})
	if err != nil {
		return fmt.Errorf("watching ServiceAnnouncements: %w", err)
	}
	_, err = inf.AddEventHandler(kickHandler(s.st.trigger))
	return err
}

func kickHandler(f func()) toolscache.ResourceEventHandlerFuncs {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { f() },
		UpdateFunc: func(any, any) { f() },
		DeleteFunc: func(any) { f() },
	}
}

// listAll reads the objects every plan decides from out of the cache and
// builds the configuration model from the Portico objects.
func (s *Speaker) listAll() (facts.Objects, error) {
	ctx := context.Background()
	c := s.mgr.GetCache()
	var (
		pools  porticov1.IPAddressPoolList
		l2ads  porticov1.L2AdvertisementList
		bgpads porticov1.BGPAdvertisementList
		peers  porticov1.BGPPeerList
		bfd    porticov1.BFDProfileList
		comms  porticov1.CommunityList
	)
	for _, l := range []client.ObjectList{&pools, &l2ads, &bgpads, &peers, &bfd, &comms} {
		if err := c.List(ctx, l); err != nil {
			return facts.Objects{}, err
		}
	}
	svcs, err := cachedAs[facts.Service, corev1.Service](ctx, c, serviceForm)
	if err != nil {
		return facts.Objects{}, err
	}
	eps, err := cachedAs[facts.SliceEndpoints, discoveryv1.EndpointSlice](ctx, c, endpointsForm)
	if err != nil {
		return facts.Objects{}, err
	}
	nodes, err := cached[corev1.Node](ctx, c)
	if err != nil {
		return facts.Objects{}, err
	}
	cfg := s.builder.Build(config.Inputs{
		Pools: pools.Items, L2Advertisements: l2ads.Items, BGPAdvertisements: bgpads.Items,
		BGPPeers: peers.Items, BFDProfiles: bfd.Items, Communities: comms.Items, Namespace: s.cfg.Namespace,
	})
	return facts.Objects{
		LocalNode: s.cfg.NodeName, LBClass: s.cfg.LBClass, Config: cfg,
		Services: svcs, Endpoints: eps, Nodes: nodes,
	}, nil
}

// cached returns the cached objects of kind T as the informer's own
// pointers. A list through the cache client copies every object into its
// Items: with 10,000 Services and their EndpointSlices that was most of
// each recompute's garbage. The objects are only read (the cache already
// hands them out without deep copies, see newManager).
func cached[T any, PT interface {
	*T
	client.Object
}](ctx context.Context, c cache.Cache) ([]*T, error) {
	return cachedAs[T, T, PT](ctx, c, func(it any) *T {
		o, _ := it.(PT)
		return (*T)(o)
	})
}

// cachedAs returns the cached objects of kind T in the form F the
// informer's transform left them in; form picks F out of a stored object
// (nil for anything else).
func cachedAs[F, T any, PT interface {
	*T
	client.Object
}](ctx context.Context, c cache.Cache, form func(any) *F) ([]*F, error) {
	st, err := store[T, PT](ctx, c)
	if err != nil {
		return nil, err
	}
	items := st.List()
	out := make([]*F, 0, len(items))
	for _, it := range items {
		if f := form(it); f != nil {
			out = append(out, f)
		}
	}
	return out, nil
}

func serviceForm(it any) *facts.Service {
	if c, ok := it.(*cachedService); ok {
		return &c.Service
	}
	return nil
}

func endpointsForm(it any) *facts.SliceEndpoints {
	if c, ok := it.(*cachedEndpoints); ok {
		return &c.SliceEndpoints
	}
	return nil
}

// lookupService returns the cached Service named key, or nil.
func lookupService(ctx context.Context, c cache.Cache, key types.NamespacedName) *cachedService {
	it, err := cachedItem[corev1.Service](ctx, c, key)
	if err != nil {
		return nil
	}
	svc, _ := it.(*cachedService)
	return svc
}

// cachedGet returns the cached object of kind T named key as the
// informer's own pointer (read only, see cached), or nil when the cache has
// none. A Get through the cache client copies the object, once per
// ServiceAnnouncement in each status pass.
func cachedGet[T any, PT interface {
	*T
	client.Object
}](ctx context.Context, c cache.Cache, key types.NamespacedName) (*T, error) {
	it, err := cachedItem[T, PT](ctx, c, key)
	o, _ := it.(PT)
	return (*T)(o), err
}

// cachedItem returns what the informer of kind T stores under key, in
// whatever form its transform left it; nil when nothing is stored.
func cachedItem[T any, PT interface {
	*T
	client.Object
}](ctx context.Context, c cache.Cache, key types.NamespacedName) (any, error) {
	st, err := store[T, PT](ctx, c)
	if err != nil {
		return nil, err
	}
	k := key.Name
	if key.Namespace != "" {
		k = key.Namespace + "/" + key.Name
	}
	it, _, err := st.GetByKey(k)
	return it, err
}

func store[T any, PT interface {
	*T
	client.Object
}](ctx context.Context, c cache.Cache) (toolscache.Store, error) {
	inf, err := c.GetInformer(ctx, PT(new(T)))
	if err != nil {
		return nil, err
	}
	st, ok := inf.(interface{ GetStore() toolscache.Store })
	if !ok {
		return nil, fmt.Errorf("the %T informer has no store", PT(new(T)))
	}
	return st.GetStore(), nil
}

func stripManagedFields(obj any) (any, error) {
	if o, ok := obj.(metav1.Object); ok {
		o.SetManagedFields(nil)
	}
	return obj, nil
}

// trimmer reduces the objects the informers cache to what the speaker
// reads, sharing the strings they repeat: each kind is cached once per
// Service (10,000 Services are 30,000 cached objects).
type trimmer struct{ in *interner }

// service reduces a Service to a cachedService.
func (t trimmer) service(obj any) (any, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return obj, nil
	}
	return &cachedService{resourceVersion: svc.ResourceVersion, Service: facts.ServiceOf(svc, t.in.str)}, nil
}

// cachedService is the speaker's cached form of a Service: what the plans
// and the status writer read (facts.Service) and what the informer needs
// to key it. The informer's transform (service) makes it; the cache client
// cannot read it (it expects Services): see cachedAs and lookupService.
type cachedService struct {
	resourceVersion string
	facts.Service
}

// GetObjectMeta gives the informer the Service's key and version.
func (c *cachedService) GetObjectMeta() metav1.Object {
	m := c.meta()
	return &m
}

func (c *cachedService) meta() metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: c.Namespace, Name: c.Name, UID: c.UID, ResourceVersion: c.resourceVersion}
}

func (c *cachedService) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

func (c *cachedService) DeepCopyObject() runtime.Object {
	out := *c
	out.IPs = slices.Clone(c.IPs)
	return &out
}

// reference is a Service naming this one at its cached version, for
// events (whose reference carries the version, as it did when the cache
// held whole Services).
func (c *cachedService) reference() *corev1.Service {
	return &corev1.Service{ObjectMeta: c.meta()}
}

// node keeps labels, the NetworkUnavailable condition and addresses.
func (t trimmer) node(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	out := &corev1.Node{
		TypeMeta: n.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion, Labels: n.Labels,
		},
		Status: corev1.NodeStatus{Addresses: n.Status.Addresses},
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeNetworkUnavailable {
			out.Status.Conditions = append(out.Status.Conditions, corev1.NodeCondition{Type: c.Type, Status: c.Status})
		}
	}
	return out, nil
}

// endpointSlice reduces an EndpointSlice to a cachedEndpoints.
func (t trimmer) endpointSlice(obj any) (any, error) {
	es, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return obj, nil
	}
	return &cachedEndpoints{
		name: es.Name, resourceVersion: es.ResourceVersion,
		SliceEndpoints: facts.EndpointsOf(es, t.in.str),
		namespace:      t.in.str(es.Namespace),
	}, nil
}

// cachedEndpoints is the speaker's cached form of an EndpointSlice: what
// the plans read (facts.SliceEndpoints) and what the informer needs to key
// it. The informer's transform (endpointSlice) makes it; cachedAs reads
// it, and the cache client cannot (it expects EndpointSlices).
type cachedEndpoints struct {
	namespace, name, resourceVersion string
	facts.SliceEndpoints
}

// GetObjectMeta gives the informer the slice's key and version.
func (c *cachedEndpoints) GetObjectMeta() metav1.Object {
	return &metav1.ObjectMeta{Namespace: c.namespace, Name: c.name, ResourceVersion: c.resourceVersion}
}

func (c *cachedEndpoints) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

func (c *cachedEndpoints) DeepCopyObject() runtime.Object {
	out := *c
	out.Nodes = slices.Clone(c.Nodes)
	return &out
}

// serviceAnnouncement shares the node and peer names of the entries.
func (t trimmer) serviceAnnouncement(obj any) (any, error) {
	sa, ok := obj.(*porticov1.ServiceAnnouncement)
	if !ok {
		return obj, nil
	}
	sa.ManagedFields = nil
	sa.Namespace = t.in.str(sa.Namespace)
	for i := range sa.Status.L2 {
		e := &sa.Status.L2[i]
		e.Node, e.Reason, e.Interfaces = t.in.str(e.Node), t.in.str(e.Reason), t.in.list(e.Interfaces)
	}
	for i := range sa.Status.BGP {
		e := &sa.Status.BGP[i]
		e.Node, e.Peers = t.in.str(e.Node), t.in.list(e.Peers)
		if i > 0 && e.IP == sa.Status.BGP[i-1].IP {
			e.IP = sa.Status.BGP[i-1].IP
		}
	}
	return sa, nil
}
