// Command portico is Portico's operator CLI: `portico check` validates manifests
// offline, `portico migrate` converts MetalLB and OpenELB configuration, and
// `portico status` shows the cluster's state. Installed as kubectl-portico it
// runs as `kubectl portico ...`. The commands live in internal/cli.
package main

import (
	"os"

	"github.com/portico-lb/portico/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args, cli.OSStreams()))
}
