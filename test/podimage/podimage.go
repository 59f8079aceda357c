// Package podimage builds the images the local node runs: hack/pause, a
// static binary that waits for a signal, alone on an empty base. It is the
// node's sandbox image and the runnable test image: nothing can be pulled
// from outside this machine. The image config names this machine's OS and
// architecture, which containerd needs to match the platform.
package podimage

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Package is the command every image runs.
const Package = "github.com/signet-dev/signet/hack/pause"

// VariantLabel is the image label that tells variants apart.
const VariantLabel = "dev.signet.test.variant"

var (
	buildOnce sync.Once
	binary    []byte
	buildErr  error
)

// compile builds hack/pause once per process (the Go build cache makes it
// quick after the first time).
func compile(ctx context.Context) ([]byte, error) {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "signet-pause-")
		if err != nil {
			buildErr = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "pause")
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, Package)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building %s: %w\n%s", Package, err, b)
			return
		}
		binary, buildErr = os.ReadFile(out)
	})
	return binary, buildErr
}

// Image is hack/pause as /pause, the entrypoint, for linux on this
// machine's architecture. Images of different variants differ only in
// their VariantLabel, so each has its own digest.
func Image(ctx context.Context, variant string) (v1.Image, error) {
	bin, err := compile(ctx)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "pause", Mode: 0o755, Size: int64(len(bin)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, err
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		OS:           "linux",
		Architecture: runtime.GOARCH,
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			Entrypoint: []string{"/pause"},
			Labels:     map[string]string{VariantLabel: variant},
		},
	})
	if err != nil {
		return nil, err
	}
	img, err = mutate.AppendLayers(img, layer)
	if err != nil {
		return nil, err
	}
	return mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON), nil
}

// Push pushes Image(variant) as ref (a tag reference) and returns it by
// digest, repository@sha256:….
func Push(ctx context.Context, ref, variant string, opts ...remote.Option) (name.Digest, error) {
	r, err := name.NewTag(ref)
	if err != nil {
		return name.Digest{}, err
	}
	img, err := Image(ctx, variant)
	if err != nil {
		return name.Digest{}, err
	}
	if err := remote.Write(r, img, append([]remote.Option{remote.WithContext(ctx)}, opts...)...); err != nil {
		return name.Digest{}, fmt.Errorf("pushing %s: %w", r, err)
	}
	d, err := img.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	return r.Context().Digest(d.String()), nil
}
