package policy

import (
	"strings"
	"testing"
)

// FuzzImageMeetsPolicies parses an image reference as admission does and
// compiles a glob as a policy does. Properties: neither panics; the
// canonical spelling parses to itself; every other spelling of the same
// image (host case, the default HTTPS port, Docker Hub's host names) and
// the glob's own normalised spelling meet exactly the policies the
// reference meets.
func FuzzImageMeetsPolicies(f *testing.F) {
	for _, s := range [][2]string{
		{"nginx", "nginx"},
		{"nginx:1.27", "docker.io/library/nginx"},
		{"docker.io/bitnami/nginx", "bitnami/*"},
		{"registry-1.docker.io/nginx:1", "index.docker.io/library/*"},
		{"registry.hub.docker.com/bitnami/nginx@sha256:" + hex64, "registry-1.docker.io/bitnami/*"},
		{"Docker.IO:443/nginx", "library/*"},
		{"127.0.0.1:5000/app@sha256:" + hex64, "127.0.0.1:5000/**"},
		{"LOCALHOST:5000/app:v1", "localhost:*/app"},
		{"Registry.Example.com:443/team/app", "registry.example.com:443/**"},
		{"registry.example.com:8443/app", "registry.example.com/**"},
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com/prod/team/app:v1", "123456789012.dkr.ecr.*.amazonaws.com/prod/**"},
		{"999999999999.dkr.ecr.eu-west-1.amazonaws.com/app", "*.dkr.ecr.us-east-1.amazonaws.com/**"},
		{"registryxexample.com/app", "registry.example.com/app"},
		{"anything.example/at/all", "**"},
		{"Nginx", "nginx"},
		{"nginx@sha256:abc", "registry.example.com/***"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, ref, glob string) {
		g, globErr := CompileGlob(glob)
		r, err := ParseImage(ref)
		if err != nil {
			if !strings.HasPrefix(err.Error(), `"`) || !strings.Contains(err.Error(), "is not a valid image reference") {
				t.Fatalf("ParseImage(%q) error %q does not say which reference is invalid", ref, err)
			}
			return
		}
		repo := Repository(r)
		again, err := ParseImage(r.String())
		if err != nil || again.String() != r.String() {
			t.Fatalf("canonical %q of %q does not parse to itself: %v %v", r.String(), ref, again, err)
		}
		if repo != strings.ToLower(repo) && !strings.Contains(repo, "/") {
			t.Fatalf("repository %q has upper case", repo)
		}
		host := r.Context().RegistryStr()
		if host != strings.ToLower(host) || strings.HasSuffix(host, defaultPort) || dockerHubHosts[host] && host != dockerHub {
			t.Fatalf("%q: registry %q is not normalised", ref, host)
		}
		for _, spelling := range spellings(r.Context().RegistryStr(), r.Context().RepositoryStr(), r.Identifier()) {
			other, err := ParseImage(spelling)
			if err != nil {
				t.Fatalf("%q parses but its spelling %q does not: %v", ref, spelling, err)
			}
			if Repository(other) != repo || other.Identifier() != r.Identifier() {
				t.Fatalf("%q is %s, its spelling %q is %s", ref, r, spelling, other)
			}
		}
		if globErr != nil {
			return
		}
		want := g.Match(repo)
		if norm, err := CompileGlob(g.normalised); err == nil && norm.Match(repo) != want {
			t.Fatalf("glob %q matches %q: %v, its normalised spelling %q: %v", glob, repo, want, g.normalised, !want)
		}
	})
}

// spellings are other ways to write the image host/repository:identifier
// that a container runtime pulls as the same image.
func spellings(host, repository, identifier string) []string {
	sep := ":"
	if strings.Contains(identifier, ":") {
		sep = "@"
	}
	tail := "/" + repository + sep + identifier
	hosts := []string{strings.ToUpper(host)}
	if !strings.Contains(host, ":") {
		hosts = append(hosts, host+defaultPort, strings.ToUpper(host)+defaultPort)
	}
	if host == dockerHub {
		hosts = append(hosts, "docker.io", "Registry-1.Docker.IO", "registry.hub.docker.com:443")
	}
	out := make([]string, 0, len(hosts))
	for _, h := range hosts {
		out = append(out, h+tail)
	}
	return out
}
