// Command portico-controller allocates IPs from IPAddressPools to LoadBalancer Services.
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
	fmt.Printf("portico-controller %s\n", version.Version)
	if *showVersion {
		return
	}
	fmt.Fprintln(os.Stderr, "portico-controller: the controller is not implemented yet")
}
