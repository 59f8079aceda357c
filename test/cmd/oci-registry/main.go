// Command oci-registry runs the stack's OCI registry with the referrers
// API (package test/servers/registry):
//
//	oci-registry --listen 127.0.0.1:0 --addr-file .stack/oci-registry.addr
//
// It prints one line, "listening on http://127.0.0.1:PORT", once it accepts
// connections. GET /_signet/requests returns the requests by kind;
// POST /_signet/requests/reset zeroes them.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"

	"github.com/signet-dev/signet/test/servers/registry"
	"github.com/signet-dev/signet/test/servers/serve"
)

func main() {
	fs := flag.NewFlagSet("oci-registry", flag.ContinueOnError)
	err := serve.Main(fs, os.Args[1:], func() http.Handler { return registry.New() })
	if err != nil {
		fmt.Fprintf(os.Stderr, "oci-registry: %v\n", err)
		os.Exit(1)
	}
}
