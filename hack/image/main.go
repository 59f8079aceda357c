// Command image builds Signet's container image without Docker and pushes it:
// it cross-compiles a command (CGO_ENABLED=0, the Dockerfile's flags) for each
// platform, lays it on an empty base with the Dockerfile's runtime user and
// entrypoint, and pushes an OCI index with go-containerregistry. The build is
// reproducible: the same tree gives the same digest.
//
//	go run ./hack/image --image 127.0.0.1:5000/signet/webhook [--tag v1.2.3]
//	    [--cmd webhook|signet] [--platforms linux/amd64,linux/arm64]
//	    [--version V] [--revision SHA]
//
// It prints the pushed reference, repository@sha256:…, on stdout. File times
// and the creation time are $SOURCE_DATE_EPOCH (default: the Unix epoch).
// `make image-push` runs it; `make image` builds the same image with Docker.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	cancel()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	opts, err := parseFlags(args, stderr, root)
	if err != nil {
		return err
	}
	b := &builder{opts: opts, compile: goBuild, log: stderr}
	return b.publish(ctx, stdout)
}

// options is what one run builds and where it pushes it.
type options struct {
	Repo      name.Repository
	Tag       string // empty: push by digest only
	Cmd       string // a key of commands
	Platforms []v1.Platform
	Version   string // -X main.version and the version label
	Revision  string // the revision label; empty leaves it out
	Created   time.Time
	Root      string // the module root go build runs in
}

func parseFlags(args []string, stderr io.Writer, root string) (*options, error) {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	image := fs.String("image", "", "Repository to push to, with its registry host (e.g. 127.0.0.1:5000/signet/webhook). Required.")
	tag := fs.String("tag", "", "Tag to push as, besides the digest. Empty: push by digest only.")
	cmd := fs.String("cmd", "webhook", "Command to package: webhook or signet.")
	platforms := fs.String("platforms", "linux/amd64,linux/arm64", "Comma-separated os/arch list; one image per platform in an OCI index.")
	version := fs.String("version", "", "Version stamped into the binary and the labels. Empty: git describe --tags --always --dirty.")
	revision := fs.String("revision", "", "Source revision for the labels. Empty: git rev-parse HEAD.")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o := &options{Tag: *tag, Cmd: *cmd, Version: *version, Revision: *revision, Root: root}
	var err error
	if o.Repo, err = parseRepo(*image); err != nil {
		return nil, err
	}
	if o.Tag != "" {
		if _, err := name.NewTag(o.Repo.String()+":"+o.Tag, name.StrictValidation); err != nil {
			return nil, fmt.Errorf("--tag %q: %w", o.Tag, err)
		}
	}
	if _, ok := commands[o.Cmd]; !ok {
		return nil, fmt.Errorf("--cmd %q: want webhook or signet", o.Cmd)
	}
	if o.Platforms, err = parsePlatforms(*platforms); err != nil {
		return nil, err
	}
	if o.Version == "" {
		o.Version = git(root, "describe", "--tags", "--always", "--dirty")
		if o.Version == "" {
			o.Version = "dev"
		}
	}
	if !versionRE.MatchString(o.Version) {
		return nil, fmt.Errorf("--version %q: use letters, digits and . _ + - only", o.Version)
	}
	if o.Revision == "" {
		o.Revision = git(root, "rev-parse", "HEAD")
	}
	if o.Created, err = sourceDateEpoch(os.Getenv("SOURCE_DATE_EPOCH")); err != nil {
		return nil, err
	}
	return o, nil
}

// versionRE keeps the version safe inside -ldflags, which splits on spaces.
var versionRE = regexp.MustCompile(`^[A-Za-z0-9._+-]+$`)

// parseRepo accepts only a repository that names its registry: a bare
// "signet/webhook" would silently mean Docker Hub.
func parseRepo(s string) (name.Repository, error) {
	if s == "" {
		return name.Repository{}, errors.New("--image is required: the repository to push to, e.g. 127.0.0.1:5000/signet/webhook (make image-push defaults it to the local stack's registry; start it with make stack-up)")
	}
	host, _, ok := strings.Cut(s, "/")
	if !ok || !(strings.ContainsAny(host, ".:") || host == "localhost") {
		return name.Repository{}, fmt.Errorf("--image %q names no registry host: start the local stack (make stack-up) or set IMAGE=<registry>/<repository>", s)
	}
	repo, err := name.NewRepository(s, name.StrictValidation)
	if err != nil {
		return name.Repository{}, fmt.Errorf("--image %q: %w", s, err)
	}
	return repo, nil
}

func parsePlatforms(s string) ([]v1.Platform, error) {
	var out []v1.Platform
	seen := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		p, err := v1.ParsePlatform(f)
		if err != nil {
			return nil, fmt.Errorf("--platforms %q: %w", f, err)
		}
		if p.OS != "linux" || (p.Architecture != "amd64" && p.Architecture != "arm64") || p.Variant != "" {
			return nil, fmt.Errorf("--platforms %q: want linux/amd64 or linux/arm64", f)
		}
		if !seen[p.String()] {
			seen[p.String()] = true
			out = append(out, *p)
		}
	}
	return out, nil
}

// sourceDateEpoch is the fixed time of every file and of the image config
// (https://reproducible-builds.org/specs/source-date-epoch/).
func sourceDateEpoch(s string) (time.Time, error) {
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since the Unix epoch", s)
	}
	return time.Unix(n, 0).UTC(), nil
}

// git returns git's trimmed output, or "" outside a repository.
func git(dir string, args ...string) string {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
