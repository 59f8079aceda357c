// Command kms-server runs the AWS KMS test server (package
// test/servers/kms) for the local stack:
//
//	kms-server --listen 127.0.0.1:0 --addr-file .stack/kms-server.addr --region us-east-1 --account 123456789012
//
// It prints one line, "listening on http://127.0.0.1:PORT", once it accepts
// connections; point AWS_ENDPOINT_URL_KMS at that URL. GET /_signet/calls
// returns the calls per operation.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"

	"github.com/signet-dev/signet/test/servers/kms"
	"github.com/signet-dev/signet/test/servers/serve"
)

func main() {
	fs := flag.NewFlagSet("kms-server", flag.ContinueOnError)
	region := fs.String("region", "us-east-1", "Region in key ARNs.")
	account := fs.String("account", "123456789012", "Account ID in key ARNs.")
	err := serve.Main(fs, os.Args[1:], func() http.Handler {
		return kms.New(kms.Options{Region: *region, Account: *account})
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "kms-server: %v\n", err)
		os.Exit(1)
	}
}
