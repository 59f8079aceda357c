package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// Static is a read-only registry that serves exactly the content it was
// last given, in every repository: manifests by digest or tag, blobs by
// digest and the OCI 1.1 referrers API. Fuzz targets and hostile-registry
// tests swap its content per case, to answer with bytes no well-behaved
// registry would store (a manifest under a digest it does not hash to, a
// signature layer of random bytes), and memory never grows with the number
// of cases, as it would with an in-memory registry that keeps every push.
type Static struct {
	mu      sync.RWMutex
	content *Content
}

// Content is what a Static registry serves.
type Content struct {
	// Manifests by digest ("sha256:…") or tag. The Docker-Content-Digest
	// header is the key when the key is a digest (so a manifest may be
	// served under a digest it does not hash to), the body's digest for a
	// tag.
	Manifests map[string]Manifest
	// Blobs by digest.
	Blobs map[string][]byte
	// Referrers are the referrers API's image index by subject digest; a
	// subject with none gets an empty index.
	Referrers map[string][]byte
	// NoReferrersAPI answers the referrers API with 404, as registries
	// without it do: clients fall back to the referrers tag schema.
	NoReferrersAPI bool
}

// Manifest is a manifest's media type and bytes.
type Manifest struct {
	MediaType string
	Body      []byte
	// Digest, when set, is the Docker-Content-Digest sent, whatever the
	// body hashes to: a manifest whose digest does not match its content.
	Digest string
}

// NewContent returns empty content.
func NewContent() *Content {
	return &Content{Manifests: map[string]Manifest{}, Blobs: map[string][]byte{}, Referrers: map[string][]byte{}}
}

// Digest is the sha256 digest of b, as registries spell it.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// AddManifest stores body under its digest and tags, and returns the digest.
func (c *Content) AddManifest(mediaType string, body []byte, tags ...string) string {
	d := Digest(body)
	c.Manifests[d] = Manifest{MediaType: mediaType, Body: body}
	for _, t := range tags {
		c.Manifests[t] = Manifest{MediaType: mediaType, Body: body}
	}
	return d
}

// AddBlob stores b under its digest and returns the digest.
func (c *Content) AddBlob(b []byte) string {
	d := Digest(b)
	c.Blobs[d] = b
	return d
}

// NewStatic returns a registry serving content (nil: nothing).
func NewStatic(content *Content) *Static {
	if content == nil {
		content = NewContent()
	}
	return &Static{content: content}
}

// Set replaces what the registry serves. content must not change afterwards.
func (s *Static) Set(content *Content) {
	s.mu.Lock()
	s.content = content
	s.mu.Unlock()
}

// ServeHTTP answers GET and HEAD of /v2/, manifests, blobs and referrers.
func (s *Static) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "read-only registry", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == "/v2/" || r.URL.Path == "/v2" {
		w.WriteHeader(http.StatusOK)
		return
	}
	s.mu.RLock()
	c := s.content
	s.mu.RUnlock()
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) < 4 || parts[0] != "v2" {
		notFound(w)
		return
	}
	ref := parts[len(parts)-1]
	switch parts[len(parts)-2] {
	case "manifests":
		m, ok := c.Manifests[ref]
		if !ok {
			notFound(w)
			return
		}
		d := ref
		switch {
		case m.Digest != "":
			d = m.Digest
		case !strings.Contains(ref, ":"):
			d = Digest(m.Body)
		}
		write(w, r, m.MediaType, d, m.Body)
	case "blobs":
		b, ok := c.Blobs[ref]
		if !ok {
			notFound(w)
			return
		}
		write(w, r, "application/octet-stream", ref, b)
	case "referrers":
		if c.NoReferrersAPI {
			notFound(w)
			return
		}
		b, ok := c.Referrers[ref]
		if !ok {
			b = []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)
		}
		write(w, r, "application/vnd.oci.image.index.v1+json", "", b)
	default:
		notFound(w)
	}
}

func write(w http.ResponseWriter, r *http.Request, mediaType, digest string, body []byte) {
	w.Header().Set("Content-Type", mediaType)
	if digest != "" {
		w.Header().Set("Docker-Content-Digest", digest)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

func notFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"not found"}]}`))
}
