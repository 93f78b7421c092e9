package deploy_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/portico-lb/portico/deploy"
)

func kubectl(t *testing.T, stdin []byte, args ...string) ([]byte, error) {
	t.Helper()
	k, err := exec.LookPath("kubectl")
	need(t, err)
	cmd := exec.Command(k, append([]string{"--kubeconfig", cluster.KubeconfigPath}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	return cmd.CombinedOutput()
}

func ensureNamespace(t *testing.T, name string) {
	t.Helper()
	err := cluster.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// TestChartAppliesToAPIServer applies what the chart renders with every value
// set, and config/install.yaml, to the real API server (server-side apply,
// dry run): every object must pass the API server's validation and admission.
func TestChartAppliesToAPIServer(t *testing.T) {
	h := helm(t)
	ensureNamespace(t, deploy.Namespace)
	// The ServiceMonitor kind, as the Prometheus Operator would install it.
	crd, err := os.ReadFile("testdata/servicemonitor-crd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl(t, crd, "apply", "-f", "-"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if out, err := kubectl(t, nil, "wait", "--for=condition=Established", "--timeout=30s", "crd/servicemonitors.monitoring.coreos.com"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	sets := map[string][]byte{}
	for _, vs := range valueSets {
		out, err := deploy.Template(h, root(t), deploy.Namespace, abs(t, vs.flags)...)
		if err != nil {
			t.Fatal(err)
		}
		sets[vs.name] = out
	}
	install, err := os.ReadFile(filepath.Join(root(t), deploy.InstallFile))
	if err != nil {
		t.Fatal(err)
	}
	sets[deploy.InstallFile] = install
	for name, stream := range sets {
		t.Run(name, func(t *testing.T) {
			out, err := kubectl(t, stream, "apply", "--server-side", "--dry-run=server", "--field-manager=deploy-test", "-f", "-")
			if err != nil {
				t.Fatalf("the API server refused objects: %v\n%s", err, out)
			}
			n := len(parse(t, stream))
			if got := strings.Count(string(out), "(server dry run)"); got != n {
				t.Errorf("%d objects rendered, %d applied:\n%s", n, got, out)
			}
		})
	}
}

// TestHelmInstallKeepsMemberlistKey installs the chart into the real API
// server with helm, upgrades it with another value, and checks that the
// memberlist key survived the upgrade and the new value reached the pods.
func TestHelmInstallKeepsMemberlistKey(t *testing.T) {
	h := helm(t)
	const ns = "portico-helm"
	home := t.TempDir()
	env := []string{"KUBECONFIG=" + cluster.KubeconfigPath, "HELM_CONFIG_HOME=" + home, "HELM_CACHE_HOME=" + home, "HELM_DATA_HOME=" + home}
	helmDo := func(args ...string) {
		t.Helper()
		if out, err := runEnv(root(t), env, h, append(args, "--namespace", ns)...); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	// Contradictory values: refused with the schema's message, nothing installed.
	out, err := runEnv(root(t), env, h, "install", deploy.Release, deploy.ChartDir, "--namespace", ns, "--create-namespace",
		"--set", "controller.replicas=3", "--set", "controller.leaderElection.enabled=false")
	if err == nil || !strings.Contains(string(out), "at '/controller/leaderElection/enabled': value must be true") {
		t.Fatalf("helm install with three replicas and no leader election: %v\n%s", err, out)
	}
	helmDo("install", deploy.Release, deploy.ChartDir, "--create-namespace")
	t.Cleanup(func() { helmDo("uninstall", deploy.Release) })
	ctx := context.Background()
	key := func() []byte {
		t.Helper()
		var s corev1.Secret
		if err := cluster.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "portico-memberlist"}, &s); err != nil {
			t.Fatal(err)
		}
		return s.Data["secretkey"]
	}
	before := key()
	if len(before) == 0 {
		t.Fatal("helm install made no memberlist key")
	}
	helmDo("upgrade", deploy.Release, deploy.ChartDir, "--set", "logLevel=debug")
	if after := key(); !bytes.Equal(after, before) {
		t.Error("helm upgrade replaced the memberlist key: speakers of the two revisions could not talk")
	}
	out, err = kubectl(t, nil, "-n", ns, "get", "daemonset", "portico-speaker", "-o", "jsonpath={.spec.template.spec.containers[0].args}")
	if err != nil || !strings.Contains(string(out), "--log-level=debug") {
		t.Errorf("after the upgrade the speaker's args are %s (%v), want --log-level=debug", out, err)
	}
}
