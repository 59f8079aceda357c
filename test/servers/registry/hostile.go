package registry

import (
	"bytes"
	"compress/gzip"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Hostile registries: each answers every request the way a broken or
// malicious registry would, for tests that Signet gives up on it in time,
// with bounded memory, and says why. Each serves until the client goes away.

// Trickle answers 200 and then sends its body one byte per interval (a
// registry that sends one byte per second).
func Trickle(interval time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
				if _, err := w.Write([]byte{' '}); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
		}
	})
}

// RedirectLoop redirects every request to itself.
func RedirectLoop() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.String(), http.StatusTemporaryRedirect)
	})
}

// HugeContentLength announces a body of length bytes (10 GiB in the
// tests) and sends zeros until the client goes away.
func HugeContentLength(length int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
		w.Header().Set("Content-Length", strconv.FormatInt(length, 10))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			return
		}
		zeros := make([]byte, 32<<10)
		for sent := int64(0); sent < length; sent += int64(len(zeros)) {
			if _, err := w.Write(zeros); err != nil {
				return
			}
		}
	})
}

// GzipBomb answers with Content-Encoding: gzip and a compressed body that
// expands without bound, about 1000:1: the start of an image index and then
// whitespace, which a JSON decoder reads on and on. An HTTP client that
// decompresses transparently reads far more than the wire carries.
func GzipBomb() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
		w.Header().Set("Content-Encoding", "gzip")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			return
		}
		gz, _ := gzip.NewWriterLevel(w, gzip.BestCompression)
		_, _ = gz.Write([]byte(`{"schemaVersion":2,"manifests":[`))
		spaces := bytes.Repeat([]byte{' '}, 32<<10)
		for {
			if _, err := gz.Write(spaces); err != nil {
				return
			}
			if r.Context().Err() != nil {
				return
			}
		}
	})
}

// Silent is a TCP server on 127.0.0.1 that accepts connections and never
// answers (nor reads).
type Silent struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	done  chan struct{}
}

// NewSilent starts a Silent server.
func NewSilent() (*Silent, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Silent{ln: ln, done: make(chan struct{})}
	go s.accept()
	return s, nil
}

func (s *Silent) accept() {
	defer close(s.done)
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
	}
}

// Addr is host:port.
func (s *Silent) Addr() string { return s.ln.Addr().String() }

// Close stops accepting and closes every connection.
func (s *Silent) Close() {
	_ = s.ln.Close()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		_ = c.Close()
	}
}
