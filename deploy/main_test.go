package deploy_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/portico-lb/portico/deploy"
	"github.com/portico-lb/portico/internal/testcluster"
)

// cluster is a real kube-apiserver and etcd with Portico's CRDs, shared by the
// package's tests.
var cluster *testcluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(testcluster.Main(m, &cluster))
}

var ci = os.Getenv("CI") == "true"

// need skips the test for a missing tool, or fails it in CI, where set-up
// (hack/setup.sh, hack/install-tools.sh) must have installed it.
func need(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if ci {
		t.Fatalf("CI=true and %v", err)
	}
	t.Skip(err.Error())
}

func root(t testing.TB) string {
	t.Helper()
	r, err := testcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// helm returns the real helm CLI (bin/tools/helm or $HELM).
func helm(t testing.TB) string {
	t.Helper()
	h, err := deploy.Helm(root(t))
	need(t, err)
	return h
}

// object is one rendered Kubernetes object.
type object = *unstructured.Unstructured

// parse reads the objects of a multi-document YAML stream.
func parse(t testing.TB, stream []byte) []object {
	t.Helper()
	var objs []object
	for _, doc := range splitYAML(string(stream)) {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatalf("rendered YAML does not parse: %v\n%s", err, doc)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	return objs
}

func splitYAML(s string) []string {
	var docs []string
	for _, d := range strings.Split("\n"+s, "\n---") {
		if strings.TrimSpace(d) != "" {
			docs = append(docs, d)
		}
	}
	return docs
}

// find returns the object of kind and name, failing the test when it is missing.
func find(t testing.TB, objs []object, kind, name string) object {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s among the rendered objects", kind, name)
	return nil
}

func has(objs []object, kind, name string) bool {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return true
		}
	}
	return false
}

// binaries are the controller and speaker built once for the package's tests
// (static, version binariesVersion), in binDir/bin.
var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

const binariesVersion = "deploy-test"

func binaries(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "portico-deploy-bin-")
		if binErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		binErr = deploy.BuildBinaries(ctx, root(t), binDir, binariesVersion)
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}

// acceptsArgs runs a binary with a container's arguments and --version: its
// flag parser refuses an unknown or malformed flag, and --version makes it
// exit before doing anything.
func acceptsArgs(t *testing.T, component string, args []string) {
	t.Helper()
	bin := filepath.Join(binaries(t), "bin", "portico-"+component)
	out, err := exec.Command(bin, append(args, "--version")...).CombinedOutput()
	if err != nil {
		t.Errorf("portico-%s refuses the chart's arguments %q: %v\n%s", component, args, err, out)
	}
}

// wantArgs checks that a container's arguments include want, and that the
// component's binary accepts them all.
func wantArgs(t *testing.T, component string, args []string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(args, w) {
			t.Errorf("portico-%s args %q lack %s", component, args, w)
		}
	}
	acceptsArgs(t, component, args)
}

// runIn runs a command in dir with extra environment variables and returns its
// combined output.
func runIn(dir, name string, args ...string) ([]byte, error) {
	return runEnv(dir, nil, name, args...)
}

func runEnv(dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w", filepath.Base(name), strings.Join(args, " "), err)
	}
	return out, nil
}
