// Command refdoc writes docs/reference.md from the API types (package
// internal/refdoc); `make generate` runs it from the repository root.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/portico-lb/portico/internal/refdoc"
	"github.com/portico-lb/portico/internal/testcluster"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "refdoc: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	root, err := testcluster.RepoRoot()
	if err != nil {
		return err
	}
	doc, err := refdoc.Generate(root)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(root, refdoc.Output), doc, 0o644)
}
