// Command portico-speaker makes Service IPs reachable from the network: ARP/NDP and BGP.
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
	fmt.Printf("portico-speaker %s\n", version.Version)
	if *showVersion {
		return
	}
	fmt.Fprintln(os.Stderr, "portico-speaker: the speaker is not implemented yet")
}
