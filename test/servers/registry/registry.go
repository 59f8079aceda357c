// Package registry is the stack's OCI registry WITH the referrers API:
// go-containerregistry's in-memory registry with referrers support, wrapped
// in a counter of the requests it serves, so tests can prove how much
// registry traffic a verification causes. (The stack's other registry, CNCF
// distribution, has no referrers API; ECR has shown both behaviours.)
package registry

import (
	"encoding/json"
	"io"
	"log"
	"maps"
	"net/http"
	"strings"
	"sync"

	ggcr "github.com/google/go-containerregistry/pkg/registry"
)

// Kinds of request the counter tells apart, by OCI distribution endpoint.
const (
	KindPing         = "ping"          // GET /v2/: a client's first request to a registry
	KindManifestGet  = "manifest-get"  // GET /v2/<name>/manifests/<ref>
	KindManifestHead = "manifest-head" // HEAD /v2/<name>/manifests/<ref>
	KindManifestPut  = "manifest-put"  // PUT /v2/<name>/manifests/<ref>
	KindBlobGet      = "blob-get"      // GET /v2/<name>/blobs/<digest>
	KindReferrers    = "referrers"     // /v2/<name>/referrers/<digest>
	KindTagList      = "tag-list"      // GET /v2/<name>/tags/list
	KindOther        = "other"         // blob HEADs and uploads, catalog, anything else
)

// Server is the registry with its request counter.
type Server struct {
	registry http.Handler

	mu     sync.Mutex
	counts map[string]int
}

// New returns an empty registry.
func New() *Server {
	return &Server{
		registry: ggcr.New(ggcr.WithReferrersSupport(true), ggcr.Logger(log.New(io.Discard, "", 0))),
		counts:   map[string]int{},
	}
}

// Requests returns the counts by kind since the last Reset; kinds with no
// request are absent.
func (s *Server) Requests() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.counts)
}

// Reset zeroes the counts.
func (s *Server) Reset() {
	s.mu.Lock()
	s.counts = map[string]int{}
	s.mu.Unlock()
}

// ServeHTTP serves the registry, plus GET /_signet/requests (the counts as
// JSON) and POST /_signet/requests/reset, for tests in other processes.
// These hooks are not counted.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_signet/") {
		s.serveHooks(w, r)
		return
	}
	kind := classify(r)
	s.mu.Lock()
	s.counts[kind]++
	s.mu.Unlock()
	s.registry.ServeHTTP(w, r)
}

func (s *Server) serveHooks(w http.ResponseWriter, r *http.Request) {
	method := map[string]string{"/_signet/requests": http.MethodGet, "/_signet/requests/reset": http.MethodPost}[r.URL.Path]
	switch {
	case method == "":
		http.NotFound(w, r)
	case r.Method != method:
		w.Header().Set("Allow", method)
		http.Error(w, "use "+method, http.StatusMethodNotAllowed)
	case method == http.MethodGet:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.Requests())
	default:
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	}
}

// classify names a request by the OCI distribution endpoint it hits:
// /v2/<name>/manifests/<ref>, /v2/<name>/blobs/<digest>,
// /v2/<name>/referrers/<digest>, /v2/<name>/tags/list.
func classify(r *http.Request) string {
	if r.URL.Path == "/v2/" || r.URL.Path == "/v2" {
		return KindPing
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) < 3 || parts[0] != "v2" {
		return KindOther
	}
	switch {
	case parts[len(parts)-2] == "manifests":
		switch r.Method {
		case http.MethodGet:
			return KindManifestGet
		case http.MethodHead:
			return KindManifestHead
		case http.MethodPut:
			return KindManifestPut
		}
	case parts[len(parts)-2] == "blobs" && r.Method == http.MethodGet:
		return KindBlobGet
	case parts[len(parts)-2] == "referrers":
		return KindReferrers
	case parts[len(parts)-2] == "tags" && parts[len(parts)-1] == "list":
		return KindTagList
	}
	return KindOther
}
