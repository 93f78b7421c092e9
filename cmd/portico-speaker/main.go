// Command portico-speaker makes Service IPs reachable from the network: it runs
// on every node, elects with the other speakers which node announces each IP,
// and answers ARP/NDP for the IPs this node owns. See package speaker.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/portico-lb/portico/internal/membership"
	"github.com/portico-lb/portico/internal/version"
	"github.com/portico-lb/portico/speaker"
)

func main() {
	os.Exit(run())
}

func run() int {
	def := membership.DefaultTimers()
	// Our own flag set: controller-runtime registers --kubeconfig on the global one.
	fs := flag.NewFlagSet("portico-speaker", flag.ExitOnError)
	var (
		showVersion = fs.Bool("version", false, "print the version and exit")
		nodeName    = fs.String("node-name", os.Getenv("NODE_NAME"), "this node's name (default $NODE_NAME)")
		kubeconfig  = fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file; empty means in-cluster configuration")
		namespace   = fs.String("namespace", "portico-system", "namespace of the memberlist Secret")
		secretName  = fs.String("memberlist-secret", "portico-memberlist", "name of the Secret holding the memberlist keys (key \"secretkey\": one key, or several one a line, the first encrypting)")
		unencrypted = fs.Bool("allow-unencrypted-memberlist", false, "run memberlist unencrypted when the Secret does not exist")
		keyRefresh  = fs.Duration("memberlist-key-refresh", 10*time.Second, "how often the memberlist Secret is re-read, to follow a key rotation")
		bindAddr    = fs.String("memberlist-bind-addr", "0.0.0.0", "memberlist listen address")
		port        = fs.Int("memberlist-port", membership.DefaultPort, "memberlist port (TCP and UDP)")
		advertise   = fs.String("memberlist-advertise-addr", "", "address other speakers reach this one at (default: the bind address, or the Node's InternalIP)")
		metricsAddr = fs.String("metrics-bind-address", ":7473", "address of the /metrics endpoint; \"0\" disables it")
		lbClass     = fs.String("lb-class", "", "loadBalancerClass to serve; empty serves Services without a class")
		peersFile   = fs.String("peers-file", "", "file remembering the last-known memberlist peers across restarts (optional)")
		pprofAddr   = fs.String("pprof-bind-address", "0", "address of Go's /debug/pprof profiles, for diagnosing CPU and memory use; 0 disables")
		logLevel    = fs.String("log-level", "info", "debug, info, warn or error")

		probeInterval  = fs.Duration("memberlist-probe-interval", def.ProbeInterval, "memberlist probe interval")
		probeTimeout   = fs.Duration("memberlist-probe-timeout", def.ProbeTimeout, "memberlist probe timeout (below the probe interval)")
		suspicionMult  = fs.Int("memberlist-suspicion-mult", def.SuspicionMult, "memberlist suspicion multiplier, in probe intervals")
		gossipInterval = fs.Duration("memberlist-gossip-interval", def.GossipInterval, "memberlist gossip interval")
		pushPull       = fs.Duration("memberlist-push-pull-interval", def.PushPullInterval, "memberlist full state sync interval")
		tcpTimeout     = fs.Duration("memberlist-tcp-timeout", def.TCPTimeout, "memberlist TCP timeout (joins, push/pull)")
	)
	_ = fs.Parse(os.Args[1:]) // ExitOnError: never returns an error
	fmt.Printf("portico-speaker %s\n", version.Version)
	if *showVersion {
		return 0
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "portico-speaker: --log-level: %v\n", err)
		return 2
	}
	handler := slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})
	log := slog.New(handler)
	slog.SetDefault(log)
	ctrl.SetLogger(logr.FromSlogHandler(handler))
	klog.SetLogger(logr.FromSlogHandler(handler))

	if *nodeName == "" {
		log.Error("the node name is missing: pass --node-name or set NODE_NAME (in a DaemonSet, from spec.nodeName)")
		return 2
	}
	restCfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Error("loading the Kubernetes client configuration", "kubeconfig", *kubeconfig, "error", err)
		return 2
	}
	restCfg.QPS, restCfg.Burst = 50, 100
	restCfg.UserAgent = "portico-speaker/" + version.Version

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err = speaker.Run(ctx, speaker.Config{
		NodeName:           *nodeName,
		RestConfig:         restCfg,
		Namespace:          *namespace,
		SecretName:         *secretName,
		AllowUnencrypted:   *unencrypted,
		KeyRefresh:         *keyRefresh,
		BindAddr:           *bindAddr,
		BindPort:           *port,
		AdvertiseAddr:      *advertise,
		MetricsBindAddress: *metricsAddr,
		PprofBindAddress:   *pprofAddr,
		Registry:           ctrlmetrics.Registry,
		LBClass:            *lbClass,
		PeersFile:          *peersFile,
		Logger:             log,
		Timers: membership.Timers{
			ProbeInterval:    *probeInterval,
			ProbeTimeout:     *probeTimeout,
			SuspicionMult:    *suspicionMult,
			GossipInterval:   *gossipInterval,
			PushPullInterval: *pushPull,
			TCPTimeout:       *tcpTimeout,
		},
	})
	if err != nil {
		log.Error("speaker failed", "error", err)
		return 1
	}
	return 0
}
