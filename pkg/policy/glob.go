package policy

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Docker Hub's canonical names: short references like "nginx" mean
// "index.docker.io/library/nginx".
const (
	dockerHub        = "index.docker.io"
	dockerHubLibrary = "library"
)

// dockerHubHosts are the host names Docker Hub answers to; every one is
// spelled index.docker.io before matching.
var dockerHubHosts = map[string]bool{
	"docker.io": true, "index.docker.io": true, "registry-1.docker.io": true, "registry.hub.docker.com": true,
}

// defaultPort is the port an HTTPS registry host means without one.
const defaultPort = ":443"

// Glob is a compiled ClusterImagePolicy image glob. It matches the fully
// qualified repository of an image (registry/path, without tag or digest):
// "*" matches within one path segment, "**" across segments.
type Glob struct {
	pattern    string // as written
	normalised string // with the Docker Hub defaults applied
	re         *regexp.Regexp
}

// globChars are the characters a repository reference may contain, plus
// ':' for a registry port and '*' for wildcards. Upper case is not allowed
// in repositories, so a glob with upper case could never match.
var globChars = regexp.MustCompile(`^[a-z0-9._\-/:*]+$`)

// CompileGlob validates and compiles a glob. Errors say what is wrong in
// words a policy author can act on.
func CompileGlob(pattern string) (*Glob, error) {
	switch {
	case pattern == "":
		return nil, fmt.Errorf("must not be empty")
	case strings.ContainsAny(pattern, "@"):
		return nil, fmt.Errorf("must not contain a digest: globs match repositories, and every digest of a matching repository is governed")
	case !globChars.MatchString(pattern):
		return nil, fmt.Errorf("may contain only lower-case letters, digits, '.', '_', '-', '/', ':' (registry port) and '*'")
	case strings.Contains(pattern, "***"):
		return nil, fmt.Errorf("'***' is not a wildcard: use '*' within a segment or '**' across segments")
	case strings.HasPrefix(pattern, "/") || strings.HasSuffix(pattern, "/") || strings.Contains(pattern, "//"):
		return nil, fmt.Errorf("must not have empty path segments")
	}
	if i := strings.LastIndex(pattern, ":"); i >= 0 && i > strings.LastIndex(pattern, "/") {
		return nil, fmt.Errorf("must not contain a tag: globs match repositories, and every tag of a matching repository is governed")
	}
	norm := normaliseGlob(pattern)
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(norm); i++ {
		switch {
		case strings.HasPrefix(norm[i:], "**"):
			b.WriteString(".*")
			i++
		case norm[i] == '*':
			b.WriteString("[^/]*")
		default:
			b.WriteString(regexp.QuoteMeta(norm[i : i+1]))
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, fmt.Errorf("does not compile: %w", err)
	}
	return &Glob{pattern: pattern, normalised: norm, re: re}, nil
}

// String returns the glob as written.
func (g *Glob) String() string { return g.pattern }

// Match reports whether the repository (as returned by Repository) matches.
func (g *Glob) Match(repository string) bool { return g.re.MatchString(repository) }

// normaliseGlob applies Docker Hub's defaults the way image references get
// them, so "nginx" and "docker.io/library/nginx" both mean the same image.
func normaliseGlob(p string) string {
	if strings.HasPrefix(p, "**") {
		return p // starts by matching across registries: nothing to default
	}
	first, rest, hasSlash := strings.Cut(p, "/")
	if !hasSlash {
		return dockerHub + "/" + dockerHubLibrary + "/" + p
	}
	first = strings.TrimSuffix(first, defaultPort)
	if dockerHubHosts[first] {
		first = dockerHub
	}
	if first == dockerHub {
		if !strings.Contains(rest, "/") && !strings.Contains(rest, "*") {
			rest = dockerHubLibrary + "/" + rest
		}
		return first + "/" + rest
	}
	// A first segment that looks like a host (has '.' or ':', or is
	// localhost, or is a wildcard that could match a host) is a registry.
	if strings.ContainsAny(first, ".:") || first == "localhost" || strings.Contains(first, "*") {
		return first + "/" + rest
	}
	return dockerHub + "/" + p
}

// ParseImage parses an image reference as a container runtime would, into
// its canonical spelling: Docker Hub short names are expanded and its other
// host names folded into index.docker.io, an untagged reference means
// ":latest", the registry host is lower-cased (host names are not case
// sensitive) and the default HTTPS port is dropped. Every spelling of an
// image therefore meets the same policies, reads the same registry and
// shares the same cached verdicts. Upper-case repositories are rejected.
func ParseImage(ref string, opts ...name.Option) (name.Reference, error) {
	r, err := name.ParseReference(lowerHost(ref), opts...)
	if err != nil {
		return nil, fmt.Errorf("%q is not a valid image reference: %w", ref, err)
	}
	if reg := r.Context().RegistryStr(); !validRegistry(reg) {
		// go-containerregistry takes ":443", "host:" and "a:1:2" for
		// registries; folding the port away would leave no host, or a
		// different one on a second reading.
		return nil, fmt.Errorf("%q is not a valid image reference: registry %q is not a host name with an optional port", ref, reg)
	}
	host := strings.TrimSuffix(strings.ToLower(r.Context().RegistryStr()), defaultPort)
	if dockerHubHosts[host] {
		host = dockerHub
	}
	if host == r.Context().RegistryStr() {
		return r, nil
	}
	canonical := host + "/" + r.Context().RepositoryStr()
	switch t := r.(type) {
	case name.Digest:
		canonical += "@" + t.DigestStr()
	case name.Tag:
		canonical += ":" + t.TagStr()
	}
	c, err := name.ParseReference(canonical, opts...)
	if err != nil {
		return nil, fmt.Errorf("%q is not a valid image reference: %w", ref, err)
	}
	return c, nil
}

// validRegistry reports whether reg is a host name or IP address (IPv6 in
// brackets) with an optional numeric port.
func validRegistry(reg string) bool {
	host := reg
	if i := strings.LastIndex(reg, ":"); i >= 0 && !strings.HasSuffix(reg, "]") {
		port := reg[i+1:]
		if port == "" || strings.Trim(port, "0123456789") != "" {
			return false
		}
		host = reg[:i]
	}
	if strings.HasPrefix(host, "[") {
		return len(host) > 2 && strings.HasSuffix(host, "]")
	}
	return host != "" && !strings.Contains(host, ":")
}

// lowerHost lower-cases the registry host of ref, if it names one (a first
// path segment with '.' or ':', or localhost, as container runtimes read
// it). go-containerregistry refuses some upper-case hosts that runtimes
// pull from; host names are not case sensitive.
func lowerHost(ref string) string {
	first, rest, ok := strings.Cut(ref, "/")
	if !ok || !strings.ContainsAny(first, ".:") && !strings.EqualFold(first, "localhost") {
		return ref
	}
	return strings.ToLower(first) + "/" + rest
}

// Repository is the fully qualified repository globs match against:
// "index.docker.io/library/nginx", "123456789012.dkr.ecr.us-east-1.amazonaws.com/prod/app".
func Repository(r name.Reference) string {
	return r.Context().RegistryStr() + "/" + r.Context().RepositoryStr()
}
