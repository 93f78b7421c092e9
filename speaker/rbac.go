package speaker

// The speaker's permissions, generated into config/rbac/speaker by `make
// generate`: it reads Services, EndpointSlices, Nodes and the L2 and BGP
// configuration, writes its node's SpeakerStatus and the ServiceAnnouncements
// (deleting those of Services that are gone), and reads Secrets only in
// Portico's own namespace and only by name: the memberlist Secret here, and
// the BGP password Secrets, whose names the operator chooses, added to the
// Role's resourceNames by the Helm chart (value speaker.bgpPasswordSecrets).
// It reads each with a GET, never a list or watch.
//
// Reads go through the informer cache (list, watch) except these, made by
// GET: Services (a ServiceAnnouncement's Service, confirmed before its
// entries go), Nodes (the Node's InternalIP at start; whether the Node of a
// SpeakerStatus is gone) and the Secrets. Events go through the events.k8s.io
// recorder (create, and patch for a repeated event). Statuses are written
// with server-side apply (patch), and stale ServiceAnnouncement entries
// removed with an update. speaker/rbac_test.go names the code behind each
// rule.
//
// +kubebuilder:rbac:groups="",resources=services;nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",namespace=portico-system,resources=secrets,resourceNames=portico-memberlist,verbs=get
// +kubebuilder:rbac:groups=portico.dev,resources=ipaddresspools;l2advertisements;bgpadvertisements;bgppeers;bfdprofiles;communities,verbs=list;watch
// +kubebuilder:rbac:groups=portico.dev,resources=speakerstatuses;serviceannouncements,verbs=list;watch;create;delete
// +kubebuilder:rbac:groups=portico.dev,resources=speakerstatuses/status;serviceannouncements/status,verbs=patch
// +kubebuilder:rbac:groups=portico.dev,resources=serviceannouncements/status,verbs=update
