package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/notaryproject/notation-core-go/signature/jws"
	notationregistry "github.com/notaryproject/notation-go/registry"
	"github.com/sigstore/cosign/v2/pkg/oci/empty"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/kms"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/aws" // registers awskms://
	"github.com/sigstore/sigstore/pkg/signature/options"
	sigpayload "github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/signet-dev/signet/internal/oci"
	"github.com/signet-dev/signet/test/signerpki"
)

// cosignSigner signs as `cosign sign --tlog-upload=false --key
// awskms:///ALIAS` does, with cosign's and sigstore's own code in-process
// (the CLI takes about a second per image): the simple-signing payload,
// sigstore's AWS KMS signer (the KMS test server signs), and the signature
// layer appended to the sha256-<hex>.sig tag.
type cosignSigner struct {
	sv signature.SignerVerifier
}

func newCosignSigner(ctx context.Context, alias string) (*cosignSigner, error) {
	sv, err := kms.Get(ctx, "awskms:///"+alias, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("sigstore KMS signer for %s: %w", alias, err)
	}
	return &cosignSigner{sv: sv}, nil
}

// sign signs d and writes its .sig tag. The image itself need not exist:
// cosign verification reads the .sig tag only.
func (s *cosignSigner) sign(ctx context.Context, d name.Digest) error {
	payload, err := sigpayload.Cosign{Image: d}.MarshalJSON()
	if err != nil {
		return err
	}
	raw, err := s.sv.SignMessage(bytes.NewReader(payload), options.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("KMS Sign: %w", err)
	}
	sig, err := static.NewSignature(payload, base64.StdEncoding.EncodeToString(raw))
	if err != nil {
		return err
	}
	sigs, err := mutate.AppendSignatures(empty.Signatures(), false, sig)
	if err != nil {
		return err
	}
	h := d.DigestStr()
	tag := d.Context().Tag(h[:len("sha256")] + "-" + h[len("sha256:"):] + ".sig")
	return remote.Write(tag, sigs, remote.WithContext(ctx))
}

// signerSigner signs as AWS Signer does (test/signerpki: notation-go with
// Signer's attributes, a P-384 chain shaped like Signer's), one signing
// job per image as a pipeline would.
type signerSigner struct {
	chain      *signerpki.Chain
	rootsFile  string
	profileARN string
	versionARN string
	jobs       atomic.Int64
}

// The harness's AWS Signer signing profile, with AWS's ARN shapes.
const (
	signerProfileARN = "arn:aws:signer:us-east-1:123456789012:/signing-profiles/SignetBench"
	signerVersionARN = signerProfileARN + "/benchv00001"
)

// newSignerSigner makes the chain and writes its root to dir for
// --aws-signer-roots.
func newSignerSigner(dir string) (*signerSigner, error) {
	root, err := signerpki.NewRoot("Signet Bench Signer Code Signing Root CA G1")
	if err != nil {
		return nil, err
	}
	ca, err := root.Intermediate("Signet Bench Signer us-east-1 Code Signing CA G1")
	if err != nil {
		return nil, err
	}
	chain, err := ca.Leaf(signerpki.Validity{})
	if err != nil {
		return nil, err
	}
	s := &signerSigner{chain: chain, rootsFile: filepath.Join(dir, "signer-roots.pem"), profileARN: signerProfileARN, versionARN: signerVersionARN}
	return s, os.WriteFile(s.rootsFile, root.PEM(), 0o600)
}

func (s *signerSigner) sign(ctx context.Context, d name.Digest) error {
	repo := notationregistry.NewRepository(oci.New(oci.Options{}).OrasRepository(d.Context(), nil))
	job := fmt.Sprintf("arn:aws:signer:us-east-1:123456789012:/signing-jobs/%08x-0000-4000-8000-%012d", os.Getpid(), s.jobs.Add(1))
	return s.chain.Sign(ctx, repo, d.DigestStr(), jws.MediaTypeEnvelope, signerpki.Attributes{
		ProfileVersionARN: s.versionARN,
		JobARN:            job,
	})
}

// pushImages pushes n small random images as repo:v-<i> and returns
// their digests, with a few pushes at a time.
func pushImages(ctx context.Context, repo name.Repository, n int) ([]name.Digest, error) {
	out := make([]name.Digest, n)
	err := parallel(ctx, n, 8, func(i int) error {
		img, err := random.Image(256, 1)
		if err != nil {
			return err
		}
		tag := repo.Tag(fmt.Sprintf("v-%d", i))
		if err := remote.Write(tag, img, remote.WithContext(ctx)); err != nil {
			return fmt.Errorf("pushing %s: %w", tag, err)
		}
		h, err := img.Digest()
		if err != nil {
			return err
		}
		out[i] = repo.Digest(h.String())
		return nil
	})
	return out, err
}

// randomDigests names n digests of images that were never pushed: the
// cache-fill case signs them without pushing the images.
func randomDigests(repo name.Repository, n int) []name.Digest {
	out := make([]name.Digest, n)
	for i := range out {
		var b [32]byte
		_, _ = rand.Read(b[:])
		sum := sha256.Sum256(b[:])
		out[i] = repo.Digest("sha256:" + hex.EncodeToString(sum[:]))
	}
	return out
}

// parallel runs f(0..n-1) with at most workers at a time and returns the
// first error.
func parallel(ctx context.Context, n, workers int, f func(i int) error) error {
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		firstErr error
		once     sync.Once
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { firstErr = err })
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return firstErr
}

// retry runs f up to three times: concurrent pushes of the same blob (a
// signature manifest's empty config) into one repository of the CNCF
// distribution registry now and then fail with "blob unknown".
func retry(f func() error) error {
	var err error
	for i := 0; i < 3; i++ {
		if err = f(); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}
