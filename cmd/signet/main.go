// Command signet answers, in a pipeline, the question the admission webhook
// answers in the cluster: would these images be admitted under these
// ClusterImagePolicies? It uses the same engine, verifiers and caches.
//
//	signet verify [--policy FILE]... [--output text|json] IMAGE...
//	signet audit [--kubeconfig FILE] [--namespace NS] [--output text|json]
//	signet version
//
// Exit codes: 0 every image admitted (audit: nothing running violates),
// 1 any image denied (audit: something running violates), 2 usage,
// configuration or Signet's own failure (audit: the cluster cannot be
// reached, or an image could not be checked).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	// The image has no CA bundle file: Go's embedded Mozilla roots are the fallback for AWS and registry TLS.
	_ "golang.org/x/crypto/x509roots/fallback"

	buildinfo "github.com/signet-dev/signet/internal/version"
)

// Exit codes.
const (
	exitAdmitted = 0
	exitDenied   = 1
	exitError    = 2 // usage, configuration, or Signet's own failure
)

// version is set at build time with -ldflags "-X main.version=…"; the
// module version from the build info is used otherwise.
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `Usage:
  signet verify [flags] IMAGE...   decide images as the admission webhook would
  signet audit [flags]             judge what runs in a cluster as continuous validation does
  signet version                   print the version

Run "signet verify --help" or "signet audit --help" for their flags.
`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitError
	}
	switch args[0] {
	case "verify":
		return runVerify(ctx, args[1:], stdin, stdout, stderr)
	case "audit":
		return runAudit(ctx, args[1:], stdin, stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "signet %s\n", buildVersion())
		return exitAdmitted
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitAdmitted
	}
	fmt.Fprintf(stderr, "signet: unknown command %q\n%s", args[0], usage)
	return exitError
}

func buildVersion() string { return buildinfo.Of(version) }
