package speaker

// The speaker's permissions, generated into config/rbac/speaker by `make
// generate`: it reads Services, EndpointSlices, Nodes and the L2 and BGP
// configuration, writes its node's SpeakerStatus and the ServiceAnnouncements
// (deleting those of Services that are gone), and reads Secrets (the
// memberlist key and BGP passwords) only in Portico's own namespace.
//
// +kubebuilder:rbac:groups="",resources=services;nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;update;patch
// +kubebuilder:rbac:groups="",namespace=portico-system,resources=secrets,verbs=get
// +kubebuilder:rbac:groups=portico.dev,resources=ipaddresspools;l2advertisements;bgpadvertisements;bgppeers;bfdprofiles;communities,verbs=get;list;watch
// +kubebuilder:rbac:groups=portico.dev,resources=speakerstatuses;serviceannouncements,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=portico.dev,resources=speakerstatuses/status;serviceannouncements/status,verbs=update;patch
