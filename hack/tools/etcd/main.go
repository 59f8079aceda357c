// Command etcd is the etcd server, built from its library entry point so the
// local stack pins an exact etcd release through the Go module proxy.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
