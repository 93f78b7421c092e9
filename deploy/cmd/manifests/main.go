// Command manifests writes config/install.yaml and the kustomize base in
// config/default, rendered from charts/portico with the real helm CLI. `make
// manifests` runs it; a test in package deploy renders again and compares.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/portico-lb/portico/deploy"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "manifests: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	root, err := deploy.Root()
	if err != nil {
		return err
	}
	helm, err := deploy.Helm(root)
	if err != nil {
		return err
	}
	files, err := deploy.RenderManifests(helm, root)
	if err != nil {
		return err
	}
	// Files of an earlier layout that the chart no longer renders go.
	old, _ := filepath.Glob(filepath.Join(root, deploy.KustomizeDir, "*.yaml"))
	for _, f := range old {
		rel, _ := filepath.Rel(root, f)
		if _, ok := files[rel]; !ok {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			return err
		}
		fmt.Println("wrote", name)
	}
	return nil
}
