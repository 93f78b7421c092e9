package controller

// The controller's permissions, generated into config/rbac/controller by
// `make generate`; controller/rbac_test.go names the code that needs each
// one and runs the controller with exactly these.
//
// Reads of Services, namespaces and Portico's kinds go through the cache
// (list and watch, never get). Secrets are read only in Portico's namespace,
// by name: the BGP password Secrets (peers may not name a Secret elsewhere)
// and the webhook certificate, the only Secret the controller writes or
// watches (by name, to pick up another replica's renewal at once). The
// Lease and the ValidatingWebhookConfiguration are reachable only by name.
// Events on Services go through the events.k8s.io recorder; leader election
// records its own (on the Lease) with the core events API.
//
// +kubebuilder:rbac:groups="",resources=services,verbs=list;watch;patch
// +kubebuilder:rbac:groups="",resources=services/status,verbs=update
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=list;watch
// +kubebuilder:rbac:groups="",namespace=portico-system,resources=secrets,verbs=get;create
// +kubebuilder:rbac:groups="",namespace=portico-system,resources=secrets,resourceNames=portico-webhook-cert,verbs=list;watch;update
// +kubebuilder:rbac:groups=portico.dev,resources=ipaddresspools;l2advertisements;bgpadvertisements;bgppeers;bfdprofiles;communities,verbs=list;watch
// +kubebuilder:rbac:groups=portico.dev,resources=ipaddresspools/status;l2advertisements/status;bgpadvertisements/status;bgppeers/status,verbs=update
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=portico-system,resources=leases,verbs=create
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=portico-system,resources=leases,resourceNames=portico-controller,verbs=get;update
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,resourceNames=portico-validating-webhook,verbs=get;patch
