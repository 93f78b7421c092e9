package deploy_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/portico-lb/portico/deploy"
)

// TestManifestsUpToDate renders the manifests again, as `make manifests` does,
// and compares them with the committed files.
func TestManifestsUpToDate(t *testing.T) {
	r := root(t)
	files, err := deploy.RenderManifests(helm(t), r)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(r, name))
		if err != nil {
			t.Errorf("%v: run `make manifests`", err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not what charts/portico renders: run `make manifests`", name)
		}
	}
	extra, _ := filepath.Glob(filepath.Join(r, deploy.KustomizeDir, "*.yaml"))
	for _, f := range extra {
		rel, _ := filepath.Rel(r, f)
		if _, ok := files[rel]; !ok {
			t.Errorf("%s is not rendered from the chart any more: run `make manifests`", rel)
		}
	}
}

// TestKustomizeMatchesInstall builds config/default with kustomize (kubectl
// kustomize) and compares its objects with config/install.yaml's.
func TestKustomizeMatchesInstall(t *testing.T) {
	k, err := exec.LookPath("kubectl")
	need(t, err)
	r := root(t)
	built, err := exec.Command(k, "kustomize", filepath.Join(r, deploy.KustomizeDir)).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", deploy.KustomizeDir, err, built)
	}
	install, err := os.ReadFile(filepath.Join(r, deploy.InstallFile))
	if err != nil {
		t.Fatal(err)
	}
	index := func(objs []object) map[string]object {
		m := map[string]object{}
		for _, o := range objs {
			m[o.GetKind()+" "+o.GetNamespace()+"/"+o.GetName()] = o
		}
		return m
	}
	a, b := index(parse(t, built)), index(parse(t, install))
	keys := func(m map[string]object) (k []string) {
		for s := range m {
			k = append(k, s)
		}
		sort.Strings(k)
		return k
	}
	if !reflect.DeepEqual(keys(a), keys(b)) {
		t.Fatalf("kustomize builds %v\ninstall.yaml has %v", keys(a), keys(b))
	}
	for key, o := range a {
		if !reflect.DeepEqual(o.Object, b[key].Object) {
			t.Errorf("%s differs between kustomize and install.yaml", key)
		}
	}
}
