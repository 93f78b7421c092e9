// Command portico-controller allocates IPs from IPAddressPools to LoadBalancer
// Services, writes their status and events, and serves the optional validating
// webhook. Replicas elect a leader with a Lease (--leader-elect, on by default).
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	clientfeatures "k8s.io/client-go/features"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/portico-lb/portico/controller"
	"github.com/portico-lb/portico/internal/version"
)

func main() {
	plainInitialLists()
	var o controller.Options
	var hosts string
	showVersion := flag.Bool("version", false, "print the version and exit")
	// --kubeconfig is registered by controller-runtime: a kubeconfig file;
	// empty uses $KUBECONFIG or the in-cluster configuration.
	flag.StringVar(&o.LBClass, "lb-class", "", "handle Services with exactly this spec.loadBalancerClass; empty handles Services without a class")
	flag.StringVar(&o.Namespace, "namespace", envOr("POD_NAMESPACE", "portico-system"), "namespace Portico runs in: its Lease and webhook certificate, and the only namespace whose Secrets it reads (BGPPeer password Secrets must be here)")
	flag.BoolVar(&o.LeaderElect, "leader-elect", true, "elect a leader with a Lease, so only one replica allocates (two processes allocating from one pool would hand out the same IP twice); --leader-elect=false only for a single process, e.g. a test")
	flag.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election Lease (default --namespace)")
	flag.StringVar(&o.MetricsBindAddress, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint; 0 disables")
	flag.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "address of /healthz and /readyz; 0 disables")
	flag.StringVar(&o.PprofBindAddress, "pprof-bind-address", "0", "address of Go's /debug/pprof profiles, for diagnosing CPU and memory use; 0 disables")
	flag.BoolVar(&o.Webhook.Enabled, "enable-webhook", false, "serve the validating webhook (self-signed certificate kept in a Secret)")
	flag.IntVar(&o.Webhook.Port, "webhook-port", 9443, "port of the validating webhook")
	flag.StringVar(&hosts, "webhook-hosts", "", "extra comma-separated DNS names or IPs for the webhook certificate")
	flag.IntVar(&o.Workers, "workers", 16, "concurrent Service reconciles")
	klog.InitFlags(flag.CommandLine)
	flag.Parse()

	fmt.Printf("portico-controller %s\n", version.Version)
	if *showVersion {
		return
	}
	if hosts != "" {
		o.Webhook.Hosts = strings.Split(hosts, ",")
	}
	ctrl.SetLogger(klog.NewKlogr())
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "portico-controller: %v\n", err)
		os.Exit(1)
	}
}

func run(o controller.Options) error {
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading the Kubernetes client configuration: %w", err)
	}
	mgr, err := controller.NewManager(cfg, o)
	if err != nil {
		return err
	}
	// SetupSignalHandler cancels on SIGTERM/SIGINT: the manager stops its
	// controllers, releases the Lease and returns.
	return mgr.Start(ctrl.SetupSignalHandler())
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// plainInitialLists fills the informers' caches with one list rather than a
// streaming watch-list (client-go's default): with 10,000 Services that halves
// the time from a restart to the first new allocation, which is mostly that
// fill. KUBE_FEATURE_WatchListClient, when set, still decides.
func plainInitialLists() {
	if _, set := os.LookupEnv("KUBE_FEATURE_WatchListClient"); set {
		return
	}
	if g, ok := clientfeatures.FeatureGates().(interface {
		Set(clientfeatures.Feature, bool) error
	}); ok {
		if err := g.Set(clientfeatures.WatchListClient, false); err != nil {
			fmt.Fprintf(os.Stderr, "portico-controller: cannot turn off streaming lists: %v\n", err)
		}
	}
}
