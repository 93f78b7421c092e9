// Command etcd is the upstream etcd server, built from the module proxy so that
// Portico's integration tests and lab run against the real thing.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
