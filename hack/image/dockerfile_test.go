package main

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// stage is one FROM … AS name section of the Dockerfile, its instructions
// by keyword in order.
type stage struct {
	name, base string
	instrs     [][2]string // keyword (upper case), arguments
}

func (s *stage) all(keyword string) []string {
	var out []string
	for _, in := range s.instrs {
		if in[0] == keyword {
			out = append(out, in[1])
		}
	}
	return out
}

// parseDockerfile reads just enough of the Dockerfile syntax for the
// Dockerfile in this repository: comments, \ continuations, FROM … AS.
func parseDockerfile(t *testing.T, path string) []*stage {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var stages []*stage
	var line string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		if cont, ok := strings.CutSuffix(l, "\\"); ok {
			line += cont
			continue
		}
		line = strings.TrimSpace(line + l)
		if line == "" {
			continue
		}
		keyword, args, _ := strings.Cut(line, " ")
		keyword, args, line = strings.ToUpper(keyword), strings.TrimSpace(args), ""
		if keyword == "FROM" {
			f := strings.Fields(args)
			f = slices.DeleteFunc(f, func(s string) bool { return strings.HasPrefix(s, "--") })
			s := &stage{base: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			continue // ARG before the first FROM
		}
		cur := stages[len(stages)-1]
		cur.instrs = append(cur.instrs, [2]string{keyword, args})
	}
	return stages
}

// shellWords splits a RUN line into words, honouring double quotes.
func shellWords(s string) []string {
	var words []string
	var w strings.Builder
	inWord, quoted := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// TestDockerfileAgreesWithThisBuild holds the Dockerfile and hack/image to
// one image: the same go build flags, and for each command a stage of its
// name with the same binary path, entrypoint, user and labels.
func TestDockerfileAgreesWithThisBuild(t *testing.T) {
	stages := parseDockerfile(t, filepath.Join(repoRoot(t), "Dockerfile"))
	byName := map[string]*stage{}
	for _, s := range stages {
		byName[s.name] = s
	}
	if last := stages[len(stages)-1].name; last != "webhook" {
		t.Errorf("the last stage (docker build's default) is %q, want webhook", last)
	}

	build := byName["build"]
	if build == nil {
		t.Fatal("no build stage")
	}
	var goBuild []string
	for _, run := range build.all("RUN") {
		words := shellWords(run)
		if i := slices.Index(words, "go"); i >= 0 && i+1 < len(words) && words[i+1] == "build" {
			if !slices.Contains(words[:i], "CGO_ENABLED=0") {
				t.Errorf("the Dockerfile's go build runs without CGO_ENABLED=0: %s", run)
			}
			goBuild = words[i+1:]
		}
	}
	want := goBuildArgs("${VERSION}")
	if len(goBuild) < len(want) || !slices.Equal(goBuild[:len(want)], want) {
		t.Fatalf("the Dockerfile's go build is %q, want it to start with %q (goBuildArgs)", goBuild, want)
	}
	for _, pkg := range commands {
		if !slices.Contains(goBuild, pkg) {
			t.Errorf("the Dockerfile's go build does not build %s", pkg)
		}
	}

	for cmd := range commands {
		s := byName[cmd]
		if s == nil {
			t.Errorf("no Dockerfile stage %q for the command %s", cmd, cmd)
			continue
		}
		if !strings.HasPrefix(s.base, "gcr.io/distroless/static") || !strings.HasSuffix(s.base, ":nonroot") {
			t.Errorf("stage %s: base %s, want distroless static nonroot", cmd, s.base)
		}
		if users := s.all("USER"); !slices.Equal(users, []string{runtimeUser}) {
			t.Errorf("stage %s: USER %q, want %s", cmd, users, runtimeUser)
		}
		if copies := s.all("COPY"); !slices.Equal(copies, []string{"--from=build /out/" + cmd + " /" + cmd}) {
			t.Errorf("stage %s: COPY %q, want the binary at /%s", cmd, copies, cmd)
		}
		var entrypoint []string
		if eps := s.all("ENTRYPOINT"); len(eps) != 1 || json.Unmarshal([]byte(eps[0]), &entrypoint) != nil {
			t.Errorf("stage %s: ENTRYPOINT %q, want one, in exec (JSON) form", cmd, eps)
		}
		labels := map[string]string{}
		for _, l := range s.all("LABEL") {
			for _, kv := range shellWords(l) {
				k, v, _ := strings.Cut(kv, "=")
				labels[k] = v
			}
		}

		// What hack/image makes of the same command, from a stand-in binary.
		cf := imageConfig(t, cmd)
		if cf.Config.User != runtimeUser {
			t.Errorf("hack/image's %s image: User %q, want %s", cmd, cf.Config.User, runtimeUser)
		}
		if !slices.Equal(entrypoint, cf.Config.Entrypoint) {
			t.Errorf("stage %s: ENTRYPOINT %q, hack/image's %q", cmd, entrypoint, cf.Config.Entrypoint)
		}
		if !maps.Equal(labels, cf.Config.Labels) {
			t.Errorf("stage %s: LABELs %v, hack/image's %v", cmd, labels, cf.Config.Labels)
		}
	}
}

// imageConfig is the config of the image hack/image builds for cmd, with the
// Dockerfile's build arguments as version and revision.
func imageConfig(t *testing.T, cmd string) *v1.ConfigFile {
	t.Helper()
	bin := filepath.Join(t.TempDir(), cmd)
	if err := os.WriteFile(bin, []byte("stand-in"), 0o755); err != nil {
		t.Fatal(err)
	}
	b := &builder{opts: &options{Cmd: cmd, Version: "${VERSION}", Revision: "${REVISION}"}}
	img, err := b.image(amd64, bin)
	if err != nil {
		t.Fatal(err)
	}
	if f := layerFiles(t, img)[cmd]; f.hdr == nil || f.hdr.Mode != 0o755 || f.hdr.Uid != 0 {
		t.Errorf("hack/image's %s image has no root-owned 0755 /%s as COPY makes it", cmd, cmd)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf
}
