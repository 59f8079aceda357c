package policy

import "testing"

func TestGlobMatch(t *testing.T) {
	const ecr = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	tests := []struct {
		glob  string
		image string
		want  bool
	}{
		// Docker Hub short names, on either side.
		{"nginx", "nginx", true},
		{"nginx", "nginx:1.27", true},
		{"nginx", "docker.io/library/nginx@sha256:" + hex64, true},
		{"nginx", "index.docker.io/library/nginx", true},
		{"docker.io/nginx", "nginx", true},
		{"docker.io/library/nginx", "nginx", true},
		{"index.docker.io/library/*", "redis", true},
		{"nginx", "bitnami/nginx", false},
		{"bitnami/*", "bitnami/nginx", true},
		{"bitnami/*", "docker.io/bitnami/nginx:1", true},
		{"library/*", "nginx", true},
		// ECR, wildcards within and across segments.
		{"123456789012.dkr.ecr.*.amazonaws.com/prod/**", ecr + "/prod/app:v1", true},
		{"123456789012.dkr.ecr.*.amazonaws.com/prod/**", ecr + "/prod/team/app@sha256:" + hex64, true},
		{"123456789012.dkr.ecr.*.amazonaws.com/prod/**", ecr + "/dev/app", false},
		{"123456789012.dkr.ecr.*.amazonaws.com/prod/*", ecr + "/prod/team/app", false},
		{"123456789012.dkr.ecr.*.amazonaws.com/prod/*", ecr + "/prod/app", true},
		{"*.dkr.ecr.us-east-1.amazonaws.com/**", ecr + "/app", true},
		{"*.dkr.ecr.us-east-1.amazonaws.com/**", "999999999999.dkr.ecr.eu-west-1.amazonaws.com/app", false},
		{"**", "anything.example/at/all", true},
		{"**", "nginx", true},
		// Ports are part of the registry.
		{"127.0.0.1:5000/**", "127.0.0.1:5000/signet/app:tag", true},
		{"127.0.0.1:5000/**", "127.0.0.1:5001/signet/app", false},
		{"localhost:*/app", "localhost:5000/app", true},
		// The dot in a host is literal.
		{"registry.example.com/app", "registryxexample.com/app", false},
	}
	for _, tt := range tests {
		g, err := CompileGlob(tt.glob)
		if err != nil {
			t.Fatalf("CompileGlob(%q): %v", tt.glob, err)
		}
		ref, err := ParseImage(tt.image)
		if err != nil {
			t.Fatalf("ParseImage(%q): %v", tt.image, err)
		}
		if got := g.Match(Repository(ref)); got != tt.want {
			t.Errorf("glob %q (normalised %q) on %q (%s) = %v, want %v", tt.glob, g.normalised, tt.image, Repository(ref), got, tt.want)
		}
	}
}

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestCompileGlobErrors(t *testing.T) {
	tests := map[string]string{
		"":                           "must not be empty",
		"Registry.example.com/app":   "may contain only lower-case letters, digits, '.', '_', '-', '/', ':' (registry port) and '*'",
		"nginx:1.27":                 "must not contain a tag: globs match repositories, and every tag of a matching repository is governed",
		"registry.example.com/app:v": "must not contain a tag: globs match repositories, and every tag of a matching repository is governed",
		"nginx@sha256:" + hex64:      "must not contain a digest: globs match repositories, and every digest of a matching repository is governed",
		"registry.example.com/***":   "'***' is not a wildcard: use '*' within a segment or '**' across segments",
		"registry.example.com//app":  "must not have empty path segments",
		"registry.example.com/app/":  "must not have empty path segments",
		"registry.example.com/a b":   "may contain only lower-case letters, digits, '.', '_', '-', '/', ':' (registry port) and '*'",
		"registry.example.com/[ab]":  "may contain only lower-case letters, digits, '.', '_', '-', '/', ':' (registry port) and '*'",
	}
	for glob, want := range tests {
		_, err := CompileGlob(glob)
		if err == nil || err.Error() != want {
			t.Errorf("CompileGlob(%q) = %v, want %q", glob, err, want)
		}
	}
}

func TestParseImage(t *testing.T) {
	tests := []struct {
		ref, repo, identifier, err string
	}{
		{ref: "nginx", repo: "index.docker.io/library/nginx", identifier: "latest"},
		{ref: "nginx:1.27", repo: "index.docker.io/library/nginx", identifier: "1.27"},
		{ref: "docker.io/bitnami/nginx", repo: "index.docker.io/bitnami/nginx", identifier: "latest"},
		{ref: "127.0.0.1:5000/app@sha256:" + hex64, repo: "127.0.0.1:5000/app", identifier: "sha256:" + hex64},
		{ref: "123456789012.dkr.ecr.us-east-1.amazonaws.com/prod/app:v1", repo: "123456789012.dkr.ecr.us-east-1.amazonaws.com/prod/app", identifier: "v1"},
		// Every spelling of an image means one canonical reference.
		{ref: "LOCALHOST:5000/app:v1", repo: "localhost:5000/app", identifier: "v1"},
		{ref: "Registry.Example.com:443/team/app", repo: "registry.example.com/team/app", identifier: "latest"},
		{ref: "registry.example.com:8443/app", repo: "registry.example.com:8443/app", identifier: "latest"},
		{ref: "registry-1.docker.io/nginx:1", repo: "index.docker.io/library/nginx", identifier: "1"},
		{ref: "registry.hub.docker.com/bitnami/nginx@sha256:" + hex64, repo: "index.docker.io/bitnami/nginx", identifier: "sha256:" + hex64},
		{ref: "Docker.IO:443/nginx", repo: "index.docker.io/library/nginx", identifier: "latest"},
		{ref: "Nginx", err: `"Nginx" is not a valid image reference: could not parse reference: Nginx`},
		{ref: "nginx@sha256:abc", err: `"nginx@sha256:abc" is not a valid image reference: could not parse reference: nginx@sha256:abc`},
		{ref: "", err: `"" is not a valid image reference: could not parse reference: `},
		// Found by FuzzImageMeetsPolicies: registries without a host.
		{ref: ":443:443/app", err: `":443:443/app" is not a valid image reference: registry ":443:443" is not a host name with an optional port`},
		{ref: ":443/app", err: `":443/app" is not a valid image reference: registry ":443" is not a host name with an optional port`},
		{ref: "registry.example.com:/app", err: `"registry.example.com:/app" is not a valid image reference: registry "registry.example.com:" is not a host name with an optional port`},
		{ref: "[::1]:5000/app", repo: "[::1]:5000/app", identifier: "latest"},
	}
	for _, tt := range tests {
		r, err := ParseImage(tt.ref)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("ParseImage(%q) error = %v, want %q", tt.ref, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("ParseImage(%q): %v", tt.ref, err)
		}
		if Repository(r) != tt.repo || r.Identifier() != tt.identifier {
			t.Errorf("ParseImage(%q) = %s %s, want %s %s", tt.ref, Repository(r), r.Identifier(), tt.repo, tt.identifier)
		}
	}
}

// TestEverySpellingMeetsTheSamePolicies: a glob written for the canonical
// spelling (or any other) governs every spelling of the image.
func TestEverySpellingMeetsTheSamePolicies(t *testing.T) {
	for glob, refs := range map[string][]string{
		"localhost:5000/app":             {"localhost:5000/app:v1", "LOCALHOST:5000/app:v1", "LocalHost:5000/app"},
		"registry.example.com/**":        {"registry.example.com/team/app", "REGISTRY.example.com/app", "registry.example.com:443/app"},
		"registry.example.com:443/**":    {"registry.example.com/app", "Registry.Example.Com:443/app"},
		"nginx":                          {"nginx", "docker.io/nginx", "index.docker.io/library/nginx", "registry-1.docker.io/library/nginx", "registry.hub.docker.com/nginx", "DOCKER.IO/library/nginx:1"},
		"registry-1.docker.io/bitnami/*": {"bitnami/nginx", "docker.io/bitnami/redis"},
	} {
		g, err := CompileGlob(glob)
		if err != nil {
			t.Fatalf("%s: %v", glob, err)
		}
		for _, ref := range refs {
			r, err := ParseImage(ref)
			if err != nil {
				t.Fatalf("%s: %v", ref, err)
			}
			if !g.Match(Repository(r)) {
				t.Errorf("glob %q does not govern %q (canonical %s)", glob, ref, Repository(r))
			}
		}
	}
	// A non-default port is another registry.
	g, _ := CompileGlob("registry.example.com/**")
	if r, _ := ParseImage("registry.example.com:8443/app"); g.Match(Repository(r)) {
		t.Error("registry.example.com/** governs registry.example.com:8443")
	}
}
