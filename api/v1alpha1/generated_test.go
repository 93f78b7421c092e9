package v1alpha1_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/portico-lb/portico/internal/testcluster"
)

// TestGeneratedFilesAreFresh regenerates the DeepCopy code, the CRD manifests and the
// RBAC roles into a temporary folder and fails when the committed copies differ: run
// `make generate`.
func TestGeneratedFilesAreFresh(t *testing.T) {
	root, err := testcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	cmd := exec.Command("go", "tool", "controller-gen",
		"object", "paths=./api/...", "output:object:dir="+filepath.Join(tmp, "object"),
		"crd", "paths=./api/...", "output:crd:dir="+filepath.Join(tmp, "crd"))
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("controller-gen: %v\n%s", err, out)
	}
	gofmt := exec.Command("gofmt", "-w", filepath.Join(tmp, "object"))
	if out, err := gofmt.CombinedOutput(); err != nil {
		t.Fatalf("gofmt: %v\n%s", err, out)
	}
	compareDirs(t, filepath.Join(tmp, "object"), filepath.Join(root, "api", "v1alpha1"), "zz_generated.deepcopy.go")
	generated, err := os.ReadDir(filepath.Join(tmp, "crd"))
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadDir(filepath.Join(root, "config", "crd"))
	if err != nil {
		t.Fatal(err)
	}
	if len(generated) != len(committed) {
		t.Errorf("config/crd has %d files, controller-gen makes %d: run `make generate`", len(committed), len(generated))
	}
	for _, f := range generated {
		compareDirs(t, filepath.Join(tmp, "crd"), filepath.Join(root, "config", "crd"), f.Name())
	}
	for _, who := range []string{"controller", "speaker"} {
		out := filepath.Join(tmp, "rbac", who)
		cmd := exec.Command("go", "tool", "controller-gen", "rbac:roleName=portico-"+who,
			"paths=./"+who+"/...", "output:rbac:dir="+out)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("controller-gen rbac for the %s: %v\n%s", who, err, b)
		}
		compareDirs(t, out, filepath.Join(root, "config", "rbac", who), "role.yaml")
	}
}

func compareDirs(t *testing.T, fresh, committed, name string) {
	t.Helper()
	want, err := os.ReadFile(filepath.Join(fresh, name))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(committed, name))
	if err != nil {
		t.Errorf("%s is missing: run `make generate`", name)
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale: run `make generate` and commit the result", filepath.Join(committed, name))
	}
}
