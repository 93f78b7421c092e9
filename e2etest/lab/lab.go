package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portico-lb/portico/deploy"
	"github.com/portico-lb/portico/internal/testcluster"
)

// Opts configure a lab. The zero value is a 3-node lab called "ptc" using the
// binaries of the repository found above the working directory.
type Opts struct {
	// Name prefixes every namespace ("ptc" gives ptc-node1, ptc-client, ...)
	// and names the state file. It must start with Prefix without its dash.
	Name string
	// Nodes is the number of node namespaces (default 3, at most 9).
	Nodes int
	// Root is the repository (default: found by walking up to go.mod).
	Root string
	// BinDir holds portico-controller and portico-speaker (default Root/bin),
	// K8sBin holds kube-apiserver and etcd (default $KUBEBUILDER_ASSETS, else
	// Root/bin/k8s).
	BinDir, K8sBin string
	// RunDir receives the logs (default /tmp/portico-lab/NAME-TIMESTAMP).
	RunDir string
	// SpeakerArgs and ControllerArgs replace the default command lines
	// (after the binary) when set.
	SpeakerArgs    func(n *Node, kubeconfig string) []string
	ControllerArgs func(kubeconfig string) []string
	// Agent, when set, is the command line of a separate agent process
	// (the lab command's "agent" subcommand) that serves the lab after this
	// process exits: `lab up`. Otherwise the agent runs inside this process.
	Agent []string
	// Progress receives a line per step (nil: silent).
	Progress func(step string)
	// NoSignalHandler leaves SIGINT/SIGTERM alone; by default the lab tears
	// itself down and exits on them.
	NoSignalHandler bool
	// RouterHoldTime is the BGP hold time the router proposes to every node
	// (default 9s; keepalives every third of it). Tests change single
	// neighbours with Router.Neighbor(addr, "timers 1 3").
	RouterHoldTime time.Duration
}

// Node is one node namespace.
type Node struct {
	Name   string // Kubernetes node name, "node1"
	NS     string // namespace, "ptc-node1"
	Index  int    // 1-based
	MAC    string // data interface (eth0) MAC, lower case
	IPv4   string // data address
	IPv6   string // data address
	MgmtIP string // management address (Node InternalIP)
	// Port is the data link's bridge port in the L2 namespace; setting it down
	// takes the carrier from the node's eth0.
	Port string
}

// Lab is a running lab.
type Lab struct {
	Opts
	Nodes    []*Node
	CtlNS    string
	L2NS     string
	ClientNS string
	RouterNS string // the FRR router on the data segment
	ExtNS    string // the external client behind the router
	// Router is the FRR router in RouterNS.
	Router    *Router
	APIServer string // https://203.0.113.1:6443, reachable from lab namespaces
	// Kubeconfig is for the root namespace (kubectl), NodeKubeconfig for
	// processes inside lab namespaces.
	Kubeconfig, NodeKubeconfig string
	// ControllerKubeconfig and SpeakerKubeconfig authenticate as the chart's
	// ServiceAccounts, bound to the chart's roles (see rbac.go).
	ControllerKubeconfig, SpeakerKubeconfig string
	// Client, Kube and REST talk to the API server from this process.
	Client client.Client
	Kube   kubernetes.Interface
	REST   *rest.Config

	state  *State
	mu     sync.Mutex
	procs  map[string]*Proc
	token  string
	caFile string
	cancel context.CancelFunc // the in-process agent
	agentW sync.WaitGroup
	sigc   chan os.Signal
	downed bool
	// What the lab installs from the chart's rendered output (rbac.go).
	chartCRDs []*apiextensionsv1.CustomResourceDefinition
	chartRBAC []*unstructured.Unstructured
}

// StepError is a failure of one step of Up, naming the logs.
type StepError struct {
	Step   string
	RunDir string
	Err    error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("lab step %q failed: %v\n(logs of every lab process: %s)", e.Step, e.Err, e.RunDir)
}

func (e *StepError) Unwrap() error { return e.Err }

// ErrMissing says something the lab needs is not on this machine.
var ErrMissing = errors.New("lab prerequisites missing")

// Addresses of the lab. Node N uses host part 10+N.
const (
	APIAddr      = "203.0.113.1"
	mgmtPrefix   = "203.0.113."
	dataPrefix4  = "198.51.100."
	dataPrefix6  = "2001:db8:1::"
	ClientIPv4   = "198.51.100.2"
	ClientIPv6   = "2001:db8:1::2"
	clusterIPs   = "203.0.113.128/26,2001:db8:ffff::/108"
	nodePorts    = "30000-60000"
	apiPort      = "6443"
	nodeMACStart = "02:70:74:63:01:"
)

// The router: on the data segment for the nodes, and the gateway of the
// external client's own subnet (203.0.113.192/26, 2001:db8:2::/64).
const (
	RouterIPv4    = "198.51.100.1"
	RouterIPv6    = "2001:db8:1::1"
	RouterExtIPv4 = "203.0.113.193"
	RouterExtIPv6 = "2001:db8:2::1"
	ExtIPv4       = "203.0.113.194"
	ExtIPv6       = "2001:db8:2::2"
	extLen4       = "/26"
	extLen6       = "/64"
	routerMAC     = "02:70:74:63:00:01"
	clientMAC     = "02:70:74:63:00:02"
)

// BGP and BFD at the router: it is AS RouterASN and expects every node as an
// eBGP neighbour (nodes use NodeASN); its BFD profile BFDProfile is on no
// neighbour until a test attaches it.
const (
	RouterASN        = 64500
	NodeASN          = 64501
	BFDProfile       = "lab"
	BFDInterval      = 100 * time.Millisecond
	BFDMultiplier    = 3
	defaultHoldTime  = 9 * time.Second
	routerDaemonsDir = "/usr/lib/frr"
)

// Pools the lab's tests and demo use: on-link for the client.
const (
	PoolV4 = "198.51.100.100-198.51.100.199"
	PoolV6 = "2001:db8:1::100-2001:db8:1::1ff"
)

// Pools for BGP tests: reached through the router, disjoint from PoolV4 and
// PoolV6.
const (
	BGPPoolV4 = "198.51.100.200-198.51.100.239"
	BGPPoolV6 = "2001:db8:1::200-2001:db8:1::2ff"
)

func (o *Opts) defaults() error {
	if o.Name == "" {
		o.Name = "ptc"
	}
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Nodes < 1 || o.Nodes > 9 {
		return fmt.Errorf("lab: %d nodes, want 1 to 9", o.Nodes)
	}
	if o.Root == "" {
		root, err := testcluster.RepoRoot()
		if err != nil {
			return err
		}
		o.Root = root
	}
	if o.BinDir == "" {
		o.BinDir = filepath.Join(o.Root, "bin")
	}
	if o.K8sBin == "" {
		o.K8sBin = os.Getenv("KUBEBUILDER_ASSETS")
	}
	if o.K8sBin == "" {
		o.K8sBin = filepath.Join(o.Root, "bin", "k8s")
	}
	if o.RunDir == "" {
		o.RunDir = filepath.Join("/tmp/portico-lab", o.Name+"-"+time.Now().Format("20060102-150405"))
	}
	if o.Progress == nil {
		o.Progress = func(string) {}
	}
	if o.RouterHoldTime == 0 {
		o.RouterHoldTime = defaultHoldTime
	}
	if o.RouterHoldTime < 3*time.Second || o.RouterHoldTime%time.Second != 0 {
		return fmt.Errorf("lab: router hold time %s, want whole seconds, at least 3s", o.RouterHoldTime)
	}
	return nil
}

// Up starts a lab. On failure everything already started is torn down and
// the error is a *StepError (or wraps ErrMissing).
func Up(opts Opts) (*Lab, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	if err := Check(opts); err != nil {
		return nil, err
	}
	l := &Lab{
		Opts:     opts,
		CtlNS:    opts.Name + "-ctl",
		L2NS:     opts.Name + "-l2",
		ClientNS: opts.Name + "-client",
		RouterNS: opts.Name + "-router",
		ExtNS:    opts.Name + "-ext",
		procs:    map[string]*Proc{},
	}
	for i := 1; i <= opts.Nodes; i++ {
		l.Nodes = append(l.Nodes, &Node{
			Name: fmt.Sprintf("node%d", i), NS: fmt.Sprintf("%s-node%d", opts.Name, i), Index: i,
			MAC:  fmt.Sprintf("%s%02x", nodeMACStart, i),
			IPv4: fmt.Sprintf("%s%d", dataPrefix4, 10+i), IPv6: fmt.Sprintf("%s%x", dataPrefix6, 0x10+i),
			MgmtIP: fmt.Sprintf("%s%d", mgmtPrefix, 10+i), Port: fmt.Sprintf("node%d", i),
		})
	}
	steps := []struct {
		name string
		run  func() error
	}{
		{"clean leftovers of earlier labs", l.cleanBefore},
		{"render the Helm chart (helm template charts/portico)", l.renderChart},
		{"create namespaces and links", l.buildTopology},
		{"start the FRR router (zebra, bfdd, bgpd)", l.startRouter},
		{"start etcd and kube-apiserver", l.startControlPlane},
		{"install the chart's CRDs", l.installCRDs},
		{"create Node objects", l.createNodes},
		{"install the chart's ServiceAccounts, roles and bindings", l.installRBAC},
		{"start the kube-proxy stand-in, HTTP responders and API proxy", l.startAgent},
		{"start portico-controller", l.startController},
		{"start portico-speaker on every node", l.startSpeakers},
	}
	for _, s := range steps {
		opts.Progress(s.name)
		if err := s.run(); err != nil {
			se := &StepError{Step: s.name, RunDir: opts.RunDir, Err: err}
			if l.state != nil {
				_ = l.Down()
			}
			return nil, se
		}
	}
	return l, nil
}

// Check reports missing prerequisites: root, tools and binaries.
func Check(opts Opts) error {
	if err := opts.defaults(); err != nil {
		return err
	}
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (network namespaces)")
	}
	for _, tool := range []string{"ip", "arping", "ndisc6", "curl"} {
		if _, err := lookPath(tool); err != nil {
			missing = append(missing, tool+" (apt-get install iproute2 iputils-arping ndisc6 curl)")
		}
	}
	if err := checkFRR(); err != nil {
		missing = append(missing, err.Error())
	}
	if _, err := deploy.Helm(opts.Root); err != nil {
		missing = append(missing, err.Error())
	}
	for _, f := range []string{filepath.Join(opts.K8sBin, "kube-apiserver"), filepath.Join(opts.K8sBin, "etcd")} {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, f+" (make control-plane)")
		}
	}
	for _, f := range []string{filepath.Join(opts.BinDir, "portico-controller"), filepath.Join(opts.BinDir, "portico-speaker")} {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, f+" (make build)")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %v", ErrMissing, missing)
	}
	return nil
}

func (l *Lab) cleanBefore() error {
	if s, err := LoadState(l.Name); err == nil && s.Owner.alive() {
		return fmt.Errorf("a lab called %q is running (owner PID %d); stop it with `lab down` first", l.Name, s.Owner.PID)
	}
	if _, err := CleanLeftovers(); err != nil {
		return err
	}
	if err := os.MkdirAll(l.RunDir, 0o755); err != nil {
		return err
	}
	l.state = &State{Name: l.Name, Owner: selfState("owner"), RunDir: l.RunDir, CtlNS: l.CtlNS}
	for _, n := range l.Nodes {
		l.state.Nodes = append(l.state.Nodes, n.Name)
	}
	if err := l.state.save(); err != nil {
		return err
	}
	if !l.NoSignalHandler {
		l.sigc = make(chan os.Signal, 1)
		signal.Notify(l.sigc, syscall.SIGINT, syscall.SIGTERM)
		go func() {
			sig, ok := <-l.sigc
			if !ok {
				return
			}
			fmt.Fprintf(os.Stderr, "lab: %v: tearing down (logs in %s)\n", sig, l.RunDir)
			_ = l.Down()
			os.Exit(130)
		}()
	}
	// Nothing is added to the root namespace's routing: the lab's addresses
	// exist only inside its namespaces, and on these machines a host route
	// for a whole documentation range would also catch the Go module
	// proxy's address.
	return nil
}

// Proc returns a process by name ("etcd", "kube-apiserver", "controller",
// "speaker-node1", ...).
func (l *Lab) Proc(name string) *Proc {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.procs[name]
}

// Node returns the node called name, or nil.
func (l *Lab) Node(name string) *Node {
	for _, n := range l.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// NodeByMAC returns the node whose data interface has mac, or nil.
func (l *Lab) NodeByMAC(mac string) *Node {
	for _, n := range l.Nodes {
		if n.MAC == mac {
			return n
		}
	}
	return nil
}

// Down stops every process and deletes every namespace of the lab. It may be
// called more than once.
func (l *Lab) Down() error {
	l.mu.Lock()
	if l.downed {
		l.mu.Unlock()
		return nil
	}
	l.downed = true
	l.mu.Unlock()
	if l.sigc != nil {
		signal.Stop(l.sigc)
	}
	if l.cancel != nil {
		l.cancel()
		l.agentW.Wait()
	}
	var clients, control []*Proc
	for name, p := range l.procs {
		if name == "kube-apiserver" || name == "etcd" {
			control = append(control, p)
		} else {
			clients = append(clients, p)
		}
	}
	stopProcs(clients)
	stopProcs(control)
	return Teardown(l.state)
}

// freeListener opens a TCP listener on 127.0.0.1 in the root namespace.
func freeListener() (*net.TCPListener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return ln.(*net.TCPListener), nil
}

func stopProcs(ps []*Proc) {
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() { p.stop(3 * time.Second) })
	}
	wg.Wait()
}
