package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/deploy"
)

// freePort returns a TCP port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// saKubeconfig writes a kubeconfig that authenticates as a ServiceAccount, with
// a token from the TokenRequest API, as a pod running under it would.
func saKubeconfig(t *testing.T, ns, sa string) string {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), sa, &authv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for ServiceAccount %s/%s: %v", ns, sa, err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: cluster.Config.Host, CertificateAuthorityData: cluster.Config.CAData}
	cfg.AuthInfos[sa] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: sa}
	cfg.CurrentContext = "test"
	path := filepath.Join(t.TempDir(), sa+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestChartControllerRunsWithItsRoles installs the chart with helm, then runs
// the controller binary the way the chart's Deployment does: its arguments and
// environment as installed, authenticated as the chart's ServiceAccount. The
// chart's probes must answer on the port they name, the controller must win
// the leader election Lease and give a LoadBalancer Service an IP: the chart's
// roles are enough for its work.
func TestChartControllerRunsWithItsRoles(t *testing.T) {
	h := helm(t)
	const ns = "portico-run"
	metrics, health := freePort(t), freePort(t)
	home := t.TempDir()
	env := []string{"KUBECONFIG=" + cluster.KubeconfigPath, "HELM_CONFIG_HOME=" + home, "HELM_CACHE_HOME=" + home, "HELM_DATA_HOME=" + home}
	if out, err := runEnv(root(t), env, h, "install", deploy.Release, deploy.ChartDir, "--namespace", ns, "--create-namespace",
		"--set", "controller.metricsPort="+strconv.Itoa(metrics), "--set", "controller.healthPort="+strconv.Itoa(health)); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := runEnv(root(t), env, h, "uninstall", deploy.Release, "--namespace", ns); err != nil {
			t.Errorf("%v\n%s", err, out)
		}
	})
	ctx := context.Background()

	// The Deployment's container as installed.
	var dep struct {
		Spec struct {
			Template struct {
				Spec corev1.PodSpec `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	out, err := kubectl(t, nil, "-n", ns, "get", "deployment", "portico-controller", "-o", "json")
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if err := json.Unmarshal(out, &dep); err != nil {
		t.Fatal(err)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	procEnv := []string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace" {
			procEnv = append(procEnv, e.Name+"="+ns)
		}
	}
	if len(procEnv) == 0 {
		t.Fatalf("the controller's env %v does not give it its namespace", c.Env)
	}
	probePort := 0
	for _, p := range c.Ports {
		if c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet != nil && p.Name == c.ReadinessProbe.HTTPGet.Port.String() {
			probePort = int(p.ContainerPort)
		}
	}
	if probePort == 0 {
		t.Fatalf("the readiness probe's port %v is none of the container's ports %v", c.ReadinessProbe, c.Ports)
	}

	args := append(c.Args, "--kubeconfig="+saKubeconfig(t, ns, dep.Spec.Template.Spec.ServiceAccountName))
	cmd := exec.Command(filepath.Join(binaries(t), "bin", "portico-controller"), args...)
	cmd.Env = append(os.Environ(), procEnv...)
	logf, err := os.Create(filepath.Join(t.TempDir(), "controller.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("controller log (end):\n%s", b)
		}
	})

	for _, path := range []string{c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path} {
		url := fmt.Sprintf("http://127.0.0.1:%d%s", probePort, path)
		eventually(t, "probe "+url, func() error {
			resp, err := http.Get(url)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %s", resp.Status)
			}
			return nil
		})
	}
	eventually(t, "the leader election Lease", func() error {
		var l coordv1.Lease
		if err := cluster.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "portico-controller"}, &l); err != nil {
			return err
		}
		if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
			return fmt.Errorf("no holder")
		}
		return nil
	})

	pool := &v1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "deploy-run"}, Spec: v1.IPAddressPoolSpec{Addresses: []v1.AddressEntry{"192.0.2.240/29"}}}
	if err := cluster.Client.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Client.Delete(ctx, pool) })
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}}},
	}
	if err := cluster.Client.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Client.Delete(ctx, svc) })
	eventually(t, "an IP for Service "+ns+"/web", func() error {
		var s corev1.Service
		if err := cluster.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "web"}, &s); err != nil {
			return err
		}
		if len(s.Status.LoadBalancer.Ingress) == 0 {
			return fmt.Errorf("no ingress IP")
		}
		return nil
	})
}
