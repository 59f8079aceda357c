package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// commands are the commands an image can carry, by name: the binary is
// /<name> in the image, as the Dockerfile's stage of the same name copies it.
var commands = map[string]string{
	"webhook": "./cmd/webhook",
	"signet":  "./cmd/signet",
}

const (
	// runtimeUser is distroless's "nonroot" account, the Dockerfile's USER.
	runtimeUser = "65532:65532"
	// workDir is distroless nonroot's working directory, nonroot's home.
	workDir   = "/home/nonroot"
	sourceURL = "https://github.com/signet-dev/signet"
)

// goBuildArgs are the go build flags of both builds, this one and the
// Dockerfile's (a test holds them equal). -buildvcs=false: the Docker build
// context has no .git, so neither build stamps VCS data and both binaries
// depend on the sources only. Commands without a main.version ignore -X.
func goBuildArgs(version string) []string {
	return []string{"build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w -X main.version=" + version}
}

// goBuild cross-compiles the command of o for p into out, statically.
func goBuild(ctx context.Context, o *options, p v1.Platform, out string) error {
	cmd := exec.CommandContext(ctx, "go", append(goBuildArgs(o.Version), "-o", out, commands[o.Cmd])...)
	cmd.Dir = o.Root
	// The architecture levels are Go's defaults, pinned so that a GOAMD64
	// in the caller's environment cannot change the binary.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture, "GOAMD64=v1", "GOARM64=v8.0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s for %s: %w\n%s", commands[o.Cmd], p.String(), err, b)
	}
	return nil
}

// builder compiles, assembles and pushes one image index.
type builder struct {
	opts *options
	// compile writes the command's binary for a platform to a path; tests
	// replace it to compile once for several builds.
	compile func(ctx context.Context, o *options, p v1.Platform, out string) error
	log     io.Writer
}

// publish builds every platform, pushes the index and prints repo@digest.
func (b *builder) publish(ctx context.Context, stdout io.Writer) error {
	dir, err := os.MkdirTemp("", "signet-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	binaries := make([]string, len(b.opts.Platforms))
	for i, p := range b.opts.Platforms {
		start := time.Now()
		binaries[i] = filepath.Join(dir, p.OS+"-"+p.Architecture, b.opts.Cmd)
		if err := b.compile(ctx, b.opts, p, binaries[i]); err != nil {
			return err
		}
		fmt.Fprintf(b.log, "image: compiled %s for %s in %s\n", commands[b.opts.Cmd], p.String(), time.Since(start).Round(100*time.Millisecond))
	}
	start := time.Now()
	idx, err := b.index(binaries)
	if err != nil {
		return err
	}
	ref, err := b.push(ctx, idx)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.log, "image: assembled and pushed in %s\n", time.Since(start).Round(100*time.Millisecond))
	_, err = fmt.Fprintln(stdout, ref.String())
	return err
}

// index is the OCI index of one image per platform, binaries[i] being the
// binary for b.opts.Platforms[i].
func (b *builder) index(binaries []string) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for i, p := range b.opts.Platforms {
		img, err := b.image(p, binaries[i])
		if err != nil {
			return nil, err
		}
		size, err := compressedSize(img)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(b.log, "image: %s image, %.1f MB compressed\n", p.String(), float64(size)/1e6)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	return idx, nil
}

// image is an empty base plus one layer: the binary as /<cmd>, and the
// files distroless's static nonroot image gives the Dockerfile's image that
// the binary or tools looking at the container use. No CA bundle: the
// commands embed Mozilla's roots as a fallback (x509roots/fallback).
func (b *builder) image(p v1.Platform, binary string) (v1.Image, error) {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	layerTar, err := tarLayer(rootFS(b.opts.Cmd, bin), b.opts.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzip.DefaultCompression), tarball.WithCompressedCaching)
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: b.opts.Created}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: p.Architecture,
		OS:           p.OS,
		Variant:      p.Variant,
		Created:      created,
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			User:       runtimeUser,
			Entrypoint: []string{"/" + b.opts.Cmd},
			WorkingDir: workDir,
			Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Labels:     labels(b.opts),
		},
	})
	if err != nil {
		return nil, err
	}
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created:   created,
		CreatedBy: "go run ./hack/image --cmd " + b.opts.Cmd,
	}})
	if err != nil {
		return nil, err
	}
	return mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON), nil
}

// labels are the OCI annotations the Dockerfile's stage sets too.
func labels(o *options) map[string]string {
	l := map[string]string{
		"org.opencontainers.image.source":  sourceURL,
		"org.opencontainers.image.version": o.Version,
		"org.opencontainers.image.title":   titles[o.Cmd],
	}
	if o.Revision != "" {
		l["org.opencontainers.image.revision"] = o.Revision
	}
	return l
}

var titles = map[string]string{"webhook": "signet-webhook", "signet": "signet"}

// file is one entry of the layer.
type file struct {
	name     string // relative, directories end in /
	mode     int64
	uid, gid int
	body     []byte
}

// Accounts as in distroless: root, nobody and nonroot, none with a shell.
const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group = "root:x:0:\n" +
		"nobody:x:65534:\n" +
		"nonroot:x:65532:\n"
	// nsswitch.conf: /etc/hosts before DNS, as Go and glibc assume without it.
	nsswitch = "hosts: files dns\n"
)

// rootFS lists the layer's files in a fixed order. /tmp exists for
// parity with distroless; on a read-only root filesystem the chart mounts
// an emptyDir there.
func rootFS(cmd string, binary []byte) []file {
	return []file{
		{name: "etc/", mode: 0o755},
		{name: "etc/group", mode: 0o644, body: []byte(group)},
		{name: "etc/nsswitch.conf", mode: 0o644, body: []byte(nsswitch)},
		{name: "etc/passwd", mode: 0o644, body: []byte(passwd)},
		{name: "home/", mode: 0o755},
		{name: "home/nonroot/", mode: 0o700, uid: 65532, gid: 65532},
		{name: "tmp/", mode: 0o1777},
		{name: cmd, mode: 0o755, body: binary},
	}
}

// tarLayer writes files as an uncompressed tar, every time set to mtime and
// nothing taken from the build machine (owner, times, umask).
func tarLayer(files []file, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.gid, ModTime: mtime}
		if f.name[len(f.name)-1] == '/' {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func compressedSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	total := m.Config.Size
	for _, l := range m.Layers {
		total += l.Size
	}
	return total, nil
}

// push writes idx (its images first) under the tag, or by digest when there
// is none, and returns repository@digest.
func (b *builder) push(ctx context.Context, idx v1.ImageIndex) (name.Digest, error) {
	d, err := idx.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	digest := b.opts.Repo.Digest(d.String())
	var ref name.Reference = digest
	if b.opts.Tag != "" {
		ref = b.opts.Repo.Tag(b.opts.Tag)
	}
	if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return name.Digest{}, fmt.Errorf("pushing %s: %w", ref, err)
	}
	return digest, nil
}
