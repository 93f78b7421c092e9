package controller

// The controller's permissions, generated into config/rbac/controller by
// `make generate`. Secrets: peers may name a password Secret in any
// namespace (read only); the webhook certificate is written only in
// Portico's own namespace.
//
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups="",resources=services/status,verbs=update;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;update;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups="",namespace=portico-system,resources=secrets,verbs=get;create;update
// +kubebuilder:rbac:groups=portico.dev,resources=ipaddresspools;l2advertisements;bgpadvertisements;bgppeers;bfdprofiles;communities,verbs=get;list;watch
// +kubebuilder:rbac:groups=portico.dev,resources=ipaddresspools/status;l2advertisements/status;bgpadvertisements/status;bgppeers/status,verbs=update;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=portico-system,resources=leases,verbs=get;create;update
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,verbs=get;patch
