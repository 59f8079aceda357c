package main

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/signet-dev/signet/test/stack"
)

// amd64 is the one platform the tests compile for: this machine's, so the
// binary inside the image can run here too.
var amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}

var tmpDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "signet-image-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmpDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func testOptions(t *testing.T, repo string) *options {
	t.Helper()
	r, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	return &options{
		Repo: r, Tag: "test", Cmd: "webhook", Platforms: []v1.Platform{amd64},
		Version: "v0.0.0-test", Revision: "0123456789abcdef0123456789abcdef01234567",
		Created: time.Unix(0, 0).UTC(), Root: repoRoot(t),
	}
}

var webhookBinary struct {
	once sync.Once
	path string
	err  error
}

// compileOnce is a builder's compile that cross-compiles cmd/webhook for
// linux/amd64 with goBuild the first time and copies that binary after, so
// a test run compiles once. Each copy gets a new file time: the image must
// not depend on it.
func compileOnce(t *testing.T) func(context.Context, *options, v1.Platform, string) error {
	t.Helper()
	w := &webhookBinary
	w.once.Do(func() {
		start := time.Now()
		w.path = filepath.Join(tmpDir, "webhook")
		w.err = goBuild(context.Background(), testOptions(t, "127.0.0.1:1/unused"), amd64, w.path)
		t.Logf("cmd/webhook for linux/amd64 compiled (once per run) in %s", time.Since(start).Round(100*time.Millisecond))
	})
	if w.err != nil {
		t.Fatal(w.err)
	}
	return func(_ context.Context, o *options, p v1.Platform, out string) error {
		if o.Cmd != "webhook" || p.String() != amd64.String() || o.Version != "v0.0.0-test" {
			return fmt.Errorf("the tests compile only the webhook for %s at v0.0.0-test, not %s for %s at %s", amd64.String(), o.Cmd, p.String(), o.Version)
		}
		b, err := os.ReadFile(w.path)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(out, b, 0o755); err != nil {
			return err
		}
		now := time.Now()
		return os.Chtimes(out, now, now)
	}
}

// TestImageOnStackRegistry builds and pushes the webhook image to the
// stack's registry, pulls it back and checks what the Dockerfile promises:
// user, entrypoint, labels, platform, files, and a static binary that runs.
func TestImageOnStackRegistry(t *testing.T) {
	env := stack.Load(t)
	ctx := context.Background()
	o := testOptions(t, fmt.Sprintf("%s/hack-image-test/webhook-%d", env.Registry, time.Now().UnixNano()))
	var stdout, log bytes.Buffer
	b := &builder{opts: o, compile: compileOnce(t), log: &log}
	start := time.Now()
	if err := b.publish(ctx, &stdout); err != nil {
		t.Fatalf("publish: %v\n%s", err, log.String())
	}
	t.Logf("assembled and pushed in %s:\n%s", time.Since(start).Round(100*time.Millisecond), log.String())

	out := stdout.String()
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(o.Repo.String()) + `@sha256:[0-9a-f]{64}\n$`).MatchString(out) {
		t.Fatalf("stdout = %q, want %s@sha256:<64 hex> and a newline", out, o.Repo)
	}
	ref, err := name.NewDigest(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(ref, remote.WithContext(ctx))
	if err != nil {
		t.Fatalf("pulling the index: %v", err)
	}
	if mt, _ := idx.MediaType(); mt != types.OCIImageIndex {
		t.Errorf("index media type = %s, want %s", mt, types.OCIImageIndex)
	}
	tagged, err := remote.Head(o.Repo.Tag("test"), remote.WithContext(ctx))
	if err != nil || tagged.Digest.String() != ref.DigestStr() {
		t.Errorf("tag test = %v, %v; want %s", tagged, err, ref.DigestStr())
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Platform == nil || im.Manifests[0].Platform.String() != "linux/amd64" {
		t.Fatalf("index manifests = %+v, want one for linux/amd64", im.Manifests)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("config", func(t *testing.T) {
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Config.User != "65532:65532" {
			t.Errorf("User = %q, want 65532:65532", cf.Config.User)
		}
		if !slices.Equal(cf.Config.Entrypoint, []string{"/webhook"}) || len(cf.Config.Cmd) != 0 {
			t.Errorf("Entrypoint, Cmd = %q, %q; want [/webhook], none", cf.Config.Entrypoint, cf.Config.Cmd)
		}
		if cf.OS != "linux" || cf.Architecture != "amd64" {
			t.Errorf("platform = %s/%s, want linux/amd64", cf.OS, cf.Architecture)
		}
		if cf.Config.WorkingDir != "/home/nonroot" {
			t.Errorf("WorkingDir = %q, want /home/nonroot as in distroless", cf.Config.WorkingDir)
		}
		want := map[string]string{
			"org.opencontainers.image.source":   "https://github.com/signet-dev/signet",
			"org.opencontainers.image.revision": "0123456789abcdef0123456789abcdef01234567",
			"org.opencontainers.image.version":  "v0.0.0-test",
			"org.opencontainers.image.title":    "signet-webhook",
		}
		if !reflect.DeepEqual(cf.Config.Labels, want) {
			t.Errorf("Labels = %v, want %v", cf.Config.Labels, want)
		}
		if !cf.Created.Equal(time.Unix(0, 0)) {
			t.Errorf("Created = %s, want the Unix epoch (no SOURCE_DATE_EPOCH)", cf.Created.Time)
		}
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON || len(m.Layers) != 1 || m.Layers[0].MediaType != types.OCILayer {
			t.Errorf("manifest = %s, config %s, layers %+v; want OCI types and one gzip layer", m.MediaType, m.Config.MediaType, m.Layers)
		}
	})

	files := layerFiles(t, img)
	t.Run("files", func(t *testing.T) {
		var names []string
		for n, f := range files {
			names = append(names, n)
			if !f.hdr.ModTime.Equal(time.Unix(0, 0)) {
				t.Errorf("%s: mtime %s, want the Unix epoch", n, f.hdr.ModTime)
			}
			if base := path.Base(n); base == "sh" || base == "bash" || base == "busybox" {
				t.Errorf("%s: the image must hold no shell", n)
			}
		}
		slices.Sort(names)
		want := []string{"etc/", "etc/group", "etc/nsswitch.conf", "etc/passwd", "home/", "home/nonroot/", "tmp/", "webhook"}
		if !slices.Equal(names, want) {
			t.Fatalf("files = %q, want %q", names, want)
		}
		for n, want := range map[string]struct {
			mode     int64
			uid, gid int
		}{"webhook": {0o755, 0, 0}, "etc/passwd": {0o644, 0, 0}, "home/nonroot/": {0o700, 65532, 65532}, "tmp/": {0o1777, 0, 0}} {
			h := files[n].hdr
			if h.Mode != want.mode || h.Uid != want.uid || h.Gid != want.gid {
				t.Errorf("%s: mode %o owner %d:%d, want %o %d:%d", n, h.Mode, h.Uid, h.Gid, want.mode, want.uid, want.gid)
			}
		}
		if p := string(files["etc/passwd"].body); !strings.Contains(p, "\nnonroot:x:65532:65532:nonroot:/home/nonroot:") {
			t.Errorf("/etc/passwd has no nonroot 65532:\n%s", p)
		}
		if g := string(files["etc/group"].body); !strings.Contains(g, "\nnonroot:x:65532:") {
			t.Errorf("/etc/group has no nonroot 65532:\n%s", g)
		}
	})

	t.Run("binary", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "webhook")
		if err := os.WriteFile(bin, files["webhook"].body, 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if f.Machine != elf.EM_X86_64 || f.Class != elf.ELFCLASS64 || f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
			t.Errorf("ELF machine %s class %s ABI %s, want x86-64 linux", f.Machine, f.Class, f.OSABI)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("program header %s: the binary is dynamically linked", p.Type)
			}
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("imported libraries %q, want none", libs)
		}
		info, err := buildinfo.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		settings := map[string]string{}
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
		for k, v := range map[string]string{"CGO_ENABLED": "0", "GOOS": "linux", "GOARCH": "amd64", "GOAMD64": "v1", "-trimpath": "true"} {
			if settings[k] != v {
				t.Errorf("build setting %s = %q, want %q", k, settings[k], v)
			}
		}
		// -ldflags is not in the build info under -trimpath; its effect is.
		for _, s := range f.Sections {
			if s.Name == ".symtab" || strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
				t.Errorf("section %s: the binary is not stripped (-ldflags -s -w)", s.Name)
			}
		}
		// No CA bundle in the image: the embedded roots must be linked in.
		if !slices.ContainsFunc(info.Deps, func(m *debug.Module) bool { return m.Path == "golang.org/x/crypto/x509roots/fallback" }) {
			t.Error("the binary does not embed golang.org/x/crypto/x509roots/fallback: TLS would find no roots in the image")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "-help").CombinedOutput()
		var exited *exec.ExitError
		if err != nil && !errors.As(err, &exited) {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), "-webhook-port") {
			t.Errorf("webhook -help printed no -webhook-port flag:\n%s", out)
		}
	})
}

type layerFile struct {
	hdr  *tar.Header
	body []byte
}

// layerFiles reads the image's only layer, entry by entry.
func layerFiles(t *testing.T, img v1.Image) map[string]layerFile {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d, %v; want one", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]layerFile{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := files[h.Name]; dup {
			t.Errorf("%s appears twice in the layer", h.Name)
		}
		files[h.Name] = layerFile{hdr: h, body: body}
	}
}

// TestReproducible: the same binary and options give the same index digest,
// whatever the binary's file time; only SOURCE_DATE_EPOCH moves it. (The Go
// toolchain makes the binary itself reproducible given -trimpath and the
// same sources; the tests compile once to stay fast.)
func TestReproducible(t *testing.T) {
	compile := compileOnce(t)
	digest := func(created, fileTime time.Time) v1.Hash {
		t.Helper()
		o := testOptions(t, "127.0.0.1:1/unused")
		o.Created = created
		b := &builder{opts: o, log: io.Discard}
		bin := filepath.Join(t.TempDir(), "webhook")
		if err := compile(context.Background(), o, amd64, bin); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(bin, fileTime, fileTime); err != nil {
			t.Fatal(err)
		}
		idx, err := b.index([]string{bin})
		if err != nil {
			t.Fatal(err)
		}
		d, err := idx.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	epoch, now := time.Unix(0, 0).UTC(), time.Now()
	first := digest(epoch, now)
	if second := digest(epoch, now.Add(time.Hour)); second != first {
		t.Errorf("two builds of the same sources: %s and %s, want one digest", first, second)
	}
	if moved := digest(time.Unix(1700000000, 0).UTC(), now); moved == first {
		t.Errorf("SOURCE_DATE_EPOCH did not change the digest %s", first)
	}
}

// TestIndexHasOneImagePerPlatform checks the multi-platform index without
// cross-compiling: stand-in binaries are enough for its shape.
func TestIndexHasOneImagePerPlatform(t *testing.T) {
	o := testOptions(t, "127.0.0.1:1/unused")
	var err error
	if o.Platforms, err = parsePlatforms("linux/amd64,linux/arm64"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var bins []string
	for _, p := range o.Platforms {
		bin := filepath.Join(dir, p.Architecture)
		if err := os.WriteFile(bin, []byte("binary for "+p.String()), 0o755); err != nil {
			t.Fatal(err)
		}
		bins = append(bins, bin)
	}
	idx, err := (&builder{opts: o, log: io.Discard}).index(bins)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 2 {
		t.Fatalf("%d manifests, want 2", len(im.Manifests))
	}
	for i, arch := range []string{"amd64", "arm64"} {
		d := im.Manifests[i]
		if d.MediaType != types.OCIManifestSchema1 || d.Platform == nil || d.Platform.String() != "linux/"+arch {
			t.Errorf("manifest %d: %s for %v, want an OCI manifest for linux/%s", i, d.MediaType, d.Platform, arch)
			continue
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Architecture != arch {
			t.Errorf("linux/%s image config says %s", arch, cf.Architecture)
		}
		if body := string(layerFiles(t, img)["webhook"].body); body != "binary for linux/"+arch {
			t.Errorf("linux/%s image holds %q", arch, body)
		}
	}
}
