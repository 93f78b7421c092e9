// Package deploy renders and checks how Portico is installed: the Helm chart
// (charts/portico), the manifests rendered from it (config/install.yaml and the
// kustomize layout in config/default) and the container images
// (Dockerfile.controller, Dockerfile.speaker).
//
// `make manifests` and `make images` run its commands (deploy/cmd/...); its tests
// run the real helm CLI (bin/tools/helm, built by hack/install-tools.sh), the real API
// server (internal/testcluster) and a private Docker daemon.
package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/portico-lb/portico/internal/testcluster"
)

// Root returns the repository's top folder (the one with go.mod).
var Root = testcluster.RepoRoot

// ErrNoHelm says the helm CLI has not been built.
var ErrNoHelm = errors.New("helm not found: run hack/install-tools.sh (builds bin/tools/helm), or set HELM")

// Helm returns the helm CLI to use: $HELM, else bin/tools/helm.
func Helm(root string) (string, error) {
	if h := os.Getenv("HELM"); h != "" {
		return h, nil
	}
	h := filepath.Join(root, "bin", "tools", "helm")
	if _, err := os.Stat(h); err != nil {
		return "", fmt.Errorf("%w (looked for %s)", ErrNoHelm, h)
	}
	return h, nil
}

// ChartDir is the chart's folder under the repository root.
const ChartDir = "charts/portico"

// Namespace and Release are what the rendered manifests install into and as.
const (
	Namespace = "portico-system"
	Release   = "portico"
)

// run runs a command and returns its standard output; the error carries
// standard error.
func run(dir, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %v: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// Template renders the chart with helm template, CRDs included, as release
// Release in namespace ns, with extra helm flags (--set, -f).
func Template(helm, root, ns string, flags ...string) ([]byte, error) {
	args := append([]string{"template", Release, ChartDir, "--namespace", ns, "--include-crds"}, flags...)
	return run(root, helm, args...)
}
