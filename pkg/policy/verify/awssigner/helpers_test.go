package awssigner_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/notaryproject/notation-core-go/signature/cose"
	"github.com/notaryproject/notation-core-go/signature/jws"
	"github.com/notaryproject/notation-go/registry"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	orasremote "oras.land/oras-go/v2/registry/remote"

	"github.com/signet-dev/signet/internal/awsclient"
	"github.com/signet-dev/signet/internal/oci"
	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/verify/awssigner"
	signertest "github.com/signet-dev/signet/test/servers/signer"
	"github.com/signet-dev/signet/test/signerpki"
	"github.com/signet-dev/signet/test/stack"
)

// Signing profiles of the tests. Their names and versions have AWS's shapes.
const (
	account           = "111122223333"
	profileARN        = "arn:aws:signer:us-west-2:" + account + ":/signing-profiles/ProdProfile"
	versionARN        = profileARN + "/Abc123XyZ0"
	otherProfileARN   = "arn:aws:signer:us-west-2:" + account + ":/signing-profiles/DevProfile"
	otherVersionARN   = otherProfileARN + "/Dev0000001"
	govProfileARN     = "arn:aws-us-gov:signer:us-gov-west-1:" + account + ":/signing-profiles/GovProfile"
	govVersionARN     = govProfileARN + "/Gv1234567A"
	jwsType, coseType = jws.MediaTypeEnvelope, cose.MediaTypeEnvelope
)

// Where a signature is stored.
type storage int

const (
	// referrersAPI: a manifest with a subject, on the registry with the API.
	referrersAPI storage = iota
	// tagSchema: a manifest with a subject plus the sha256-<hex> index tag,
	// as pushed before registries had the API.
	tagSchema
)

// fixture is one test's world: the local stack's registries, a Signer test
// server reached through AWS_ENDPOINT_URL_SIGNER by the real SDK client, and
// test PKIs with AWS Signer's shape whose roots replace the embedded ones.
type fixture struct {
	stack     *stack.Env
	registry  *oci.Client
	signer    *signertest.Server
	signerURL string
	clients   *awsclient.SignerClients
	rootsFile string
	roots     *awssigner.Roots

	commercialRoot, govRoot *signerpki.CA
	commercialCA            *signerpki.CA
	commercial, govcloud    *signerpki.Chain
	foreign                 *signerpki.Chain
}

func setup(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{stack: stack.Load(t), signer: signertest.New()}
	srv := httptest.NewServer(f.signer)
	t.Cleanup(srv.Close)
	f.signerURL = srv.URL
	t.Setenv("AWS_ENDPOINT_URL_SIGNER", srv.URL)
	cfg, err := awsclient.LoadConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.clients = awsclient.NewSignerClients(cfg)
	f.registry = oci.New(oci.Options{})

	f.commercialRoot = newRoot(t, "Signet Test Signer Code Signing Root CA G1")
	f.commercialCA = newIntermediate(t, f.commercialRoot, "Signet Test Signer us-west-2 Code Signing CA G1")
	f.commercial = newLeaf(t, f.commercialCA, signerpki.Validity{})
	f.govRoot = newRoot(t, "Signet Test Signer Code Signing GovCloud (US) Root CA G1")
	f.govcloud = newLeaf(t, newIntermediate(t, f.govRoot, "Signet Test Signer us-gov-west-1 Code Signing CA G1"), signerpki.Validity{})
	f.foreign = newLeaf(t, newIntermediate(t, newRoot(t, "Foreign Root CA"), "Foreign Code Signing CA"), signerpki.Validity{})

	f.rootsFile = filepath.Join(t.TempDir(), "roots.pem")
	if err := os.WriteFile(f.rootsFile, append(f.commercialRoot.PEM(), f.govRoot.PEM()...), 0o600); err != nil {
		t.Fatal(err)
	}
	f.roots, err = awssigner.LoadRoots(f.rootsFile)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// checker is a fresh revocation checker over the fixture's Signer clients.
func (f *fixture) checker(t *testing.T, timeout time.Duration) *awssigner.RevocationChecker {
	t.Helper()
	c, err := awssigner.NewRevocationChecker(awssigner.RevocationOptions{Clients: f.clients.ForRegion, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// verifier builds the authority's verifier with the test roots.
func (f *fixture) verifier(t *testing.T, checker *awssigner.RevocationChecker, mode awssigner.RevocationMode, profiles ...string) *awssigner.Verifier {
	t.Helper()
	v, err := awssigner.New(awssigner.Options{Profiles: profiles, Revocation: mode, Roots: f.roots, Registry: f.registry, Revocations: checker})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// attrs are AWS Signer's attributes for a new signing job of version.
func attrs(version string) signerpki.Attributes {
	a, _ := strings.CutPrefix(version, "arn:")
	partition, rest, _ := strings.Cut(a, ":signer:")
	region, _, _ := strings.Cut(rest, ":")
	return signerpki.Attributes{
		ProfileVersionARN: version,
		JobARN:            "arn:" + partition + ":signer:" + region + ":" + account + ":/signing-jobs/" + randomHex(8) + "-" + randomHex(4),
	}
}

// image pushes a new, unique image manifest to host.
func (f *fixture) image(t *testing.T, host string) (name.Digest, ocispec.Descriptor) {
	t.Helper()
	ctx := context.Background()
	repoName := "awssigner/" + repoSafe(t.Name())
	repo := f.remote(t, host, repoName)
	layer, err := oras.PushBytes(ctx, repo, ocispec.MediaTypeImageLayer, []byte(randomHex(32)))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := oras.PushBytes(ctx, repo, ocispec.MediaTypeImageConfig, []byte(`{"architecture":"amd64","os":"linux"}`))
	if err != nil {
		t.Fatal(err)
	}
	desc, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, "", oras.PackManifestOptions{ConfigDescriptor: &cfg, Layers: []ocispec.Descriptor{layer}})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewDigest(host + "/" + repoName + "@" + desc.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	return ref, desc
}

// remote is an oras-go repository on the registry layer (plain HTTP: loopback).
func (f *fixture) remote(t *testing.T, host, repoName string) *orasremote.Repository {
	t.Helper()
	r, err := name.NewRepository(host + "/" + repoName)
	if err != nil {
		t.Fatal(err)
	}
	return f.registry.OrasRepository(r, nil)
}

// signatures is a notation-go repository that stores signatures as st says.
func (f *fixture) signatures(t *testing.T, ref name.Digest, st storage) registry.Repository {
	t.Helper()
	r := f.remote(t, ref.RegistryStr(), ref.RepositoryStr())
	if err := r.SetReferrersCapability(st == referrersAPI); err != nil {
		t.Fatal(err)
	}
	return registry.NewRepository(r)
}

// sign signs ref as AWS Signer does and stores the signature as st says.
func (f *fixture) sign(t *testing.T, ref name.Digest, chain *signerpki.Chain, mediaType string, a signerpki.Attributes, st storage) {
	t.Helper()
	if err := chain.Sign(context.Background(), f.signatures(t, ref, st), ref.DigestStr(), mediaType, a); err != nil {
		t.Fatalf("signing %s: %v", ref, err)
	}
}

// push stores a ready envelope as a signature of subject.
func (f *fixture) push(t *testing.T, ref name.Digest, subject ocispec.Descriptor, mediaType string, env []byte, st storage) {
	t.Helper()
	if _, _, err := f.signatures(t, ref, st).PushSignature(context.Background(), mediaType, env, subject, nil); err != nil {
		t.Fatal(err)
	}
}

func verify(t *testing.T, v policy.Verifier, ref name.Digest) policy.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return v.Verify(ctx, policy.Image{Ref: ref})
}

// expect compares a result's reason, cause and signer exactly.
func expect(t *testing.T, got policy.Result, reason policy.Reason, cause, signer string) {
	t.Helper()
	if got.Reason != reason || got.Cause != cause || got.Signer != signer {
		t.Errorf("result:\n  reason %q\n  cause  %q\n  signer %q\nwant:\n  reason %q\n  cause  %q\n  signer %q", got.Reason, got.Cause, got.Signer, reason, cause, signer)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

var unsafeRepoChars = regexp.MustCompile(`[^a-z0-9]+`)

func repoSafe(s string) string {
	s = strings.Trim(unsafeRepoChars.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if len(s) > 100 {
		s = s[:100]
	}
	return s + "-" + randomHex(3)
}

// pushLegacy stores a signature only under the referrers tag schema: a
// signature manifest without a subject (so a registry with the referrers
// API does not list it) in the sha256-<hex> index.
func (f *fixture) pushLegacy(t *testing.T, ref name.Digest, mediaType string, env []byte) {
	t.Helper()
	ctx := context.Background()
	repo := f.remote(t, ref.RegistryStr(), ref.RepositoryStr())
	blob, err := oras.PushBytes(ctx, repo, mediaType, env)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := oras.PushBytes(ctx, repo, registry.ArtifactTypeNotation, []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, "", oras.PackManifestOptions{ConfigDescriptor: &cfg, Layers: []ocispec.Descriptor{blob}})
	if err != nil {
		t.Fatal(err)
	}
	m.ArtifactType = registry.ArtifactTypeNotation
	index, err := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{m}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := digest.Parse(ref.DigestStr())
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.PushReference(ctx, content.NewDescriptorFromBytes(ocispec.MediaTypeImageIndex, index), bytes.NewReader(index), oci.ReferrersTag(d)); err != nil {
		t.Fatal(err)
	}
}

// newRoot, newIntermediate, newLeaf and newLeafWithKey are signerpki's
// constructors that fail t on error.
func newRoot(t testing.TB, commonName string) *signerpki.CA {
	t.Helper()
	ca, err := signerpki.NewRoot(commonName)
	must(t, err)
	return ca
}

func newIntermediate(t testing.TB, parent *signerpki.CA, commonName string) *signerpki.CA {
	t.Helper()
	ca, err := parent.Intermediate(commonName)
	must(t, err)
	return ca
}

func newLeaf(t testing.TB, ca *signerpki.CA, v signerpki.Validity) *signerpki.Chain {
	t.Helper()
	c, err := ca.Leaf(v)
	must(t, err)
	return c
}

func newLeafWithKey(t testing.TB, ca *signerpki.CA, key *ecdsa.PrivateKey, v signerpki.Validity) *signerpki.Chain {
	t.Helper()
	c, err := ca.LeafWithKey(key, v)
	must(t, err)
	return c
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
