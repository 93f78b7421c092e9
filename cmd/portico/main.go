// Command portico is the operator CLI: status overview, offline config check, migration.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/portico-lb/portico/internal/version"
)

func main() {
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	fmt.Printf("portico %s\n", version.Version)
	if *showVersion {
		return
	}
	fmt.Fprintln(os.Stderr, "portico: the CLI is not implemented yet")
}
