// Package testcluster starts a real kube-apiserver and etcd (built by
// hack/build-control-plane.sh) with Portico's CRDs installed, for integration tests.
//
// The binaries are found through KUBEBUILDER_ASSETS, or in bin/k8s of the repository.
// When they are missing, tests fail under CI=true and are skipped otherwise, with a
// message saying how to build them.
package testcluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
)

// Cluster is a running API server with Portico's CRDs.
type Cluster struct {
	Config *rest.Config
	Client client.Client
	Scheme *runtime.Scheme
	// KubeconfigPath is a kubeconfig file for kubectl and child processes.
	KubeconfigPath string
	env            *envtest.Environment
}

// RepoRoot returns the repository's top folder, found by walking up to go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// errNoAssets says the control plane has not been built.
var errNoAssets = errors.New("kube-apiserver and etcd not found: run `make control-plane` (hack/build-control-plane.sh) or set KUBEBUILDER_ASSETS")

func assetsDir(root string) (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		dir = filepath.Join(root, "bin", "k8s")
	}
	for _, name := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("%w (looked in %s)", errNoAssets, dir)
		}
	}
	return dir, nil
}

// Start starts etcd and the API server and installs the CRDs from config/crd.
func Start() (*Cluster, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets, err := assetsDir(root)
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := porticov1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	// LoadBalancer Services without node ports, many at a time, in benchmarks.
	env.ControlPlane.GetAPIServer().Configure().Append("service-node-port-range", "30000-60000")
	// Dual-stack ClusterIPs (in-cluster only, no traffic) so dual-stack Services can be
	// created, and a /16 so 10,000 Services fit.
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.0.0.0/16,fd00:10::/108")
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the API server from %s: %w", assets, err)
	}
	c := &Cluster{Config: cfg, Scheme: scheme, env: env}
	if c.Client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		_ = env.Stop()
		return nil, err
	}
	if c.KubeconfigPath, err = writeKubeconfig(env); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return c, nil
}

func writeKubeconfig(env *envtest.Environment) (string, error) {
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "portico-test", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp("", "portico-kubeconfig-*")
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return "", err
	}
	return f.Name(), nil
}

// Stop stops the API server and etcd and removes their data.
func (c *Cluster) Stop() error {
	if c.KubeconfigPath != "" {
		os.Remove(c.KubeconfigPath)
	}
	return c.env.Stop()
}

// Main runs a test package's tests against one shared cluster, stored in *into. Call
// it from TestMain: os.Exit(testcluster.Main(m, &cluster)). Without the binaries it
// fails under CI=true and skips the package otherwise.
func Main(m *testing.M, into **Cluster) int {
	c, err := Start()
	if errors.Is(err, errNoAssets) && os.Getenv("CI") != "true" {
		fmt.Fprintf(os.Stderr, "SKIP: %v\n", err)
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		return 1
	}
	*into = c
	code := m.Run()
	if err := c.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the test cluster: %v\n", err)
	}
	return code
}
