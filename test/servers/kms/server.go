// Package kms is an AWS KMS test server speaking the real KMS wire protocol
// (JSON 1.1: POST / with X-Amz-Target: TrentService.<Operation>). It holds
// asymmetric signing keys in memory and answers the operations cosign and
// Signet use, with key IDs, key ARNs, alias names and alias ARNs resolving
// as in AWS and errors shaped as AWS shapes them, so the real aws-sdk-go-v2
// client and the sigstore awskms provider run unchanged against it.
//
// It is test infrastructure: SigV4 signatures are required to be present
// but are not checked, and keys vanish with the process.
package kms

import (
	"crypto"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// Server is the KMS test server. It implements http.Handler.
type Server struct {
	region, account string

	mu      sync.Mutex
	keys    map[string]*key   // by key ID
	aliases map[string]string // alias name ("alias/x") -> key ID
	calls   map[string]int    // operation -> count
}

// Options configure a Server. Zero values take the defaults.
type Options struct {
	Region  string // default us-east-1
	Account string // default 123456789012
}

// New returns an empty server.
func New(opts Options) *Server {
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.Account == "" {
		opts.Account = "123456789012"
	}
	return &Server{
		region:  opts.Region,
		account: opts.Account,
		keys:    map[string]*key{},
		aliases: map[string]string{},
		calls:   map[string]int{},
	}
}

// Calls returns how many times op (e.g. "GetPublicKey") was called. Tests
// use it to prove that verification makes no KMS call.
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// CallCounts returns every operation's count.
func (s *Server) CallCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

// apiError is an AWS JSON error: HTTP status plus {"__type", "message"}.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func errorf(code, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, message: fmt.Sprintf(format, args...)}
}

type operation func(s *Server, body []byte) (any, *apiError)

var operations = map[string]operation{
	"CreateKey":    (*Server).createKey,
	"DescribeKey":  (*Server).describeKey,
	"GetPublicKey": (*Server).getPublicKey,
	"CreateAlias":  (*Server).createAlias,
	"UpdateAlias":  (*Server).updateAlias,
	"DeleteAlias":  (*Server).deleteAlias,
	"ListAliases":  (*Server).listAliases,
	"Sign":         (*Server).sign,
	"Verify":       (*Server).verify,
}

// ServeHTTP dispatches on X-Amz-Target. GET /_signet/calls returns the
// call counts as JSON (a test hook no real endpoint has).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/_signet/calls" {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.CallCounts())
		return
	}
	if r.Method != http.MethodPost {
		writeError(w, &apiError{status: http.StatusMethodNotAllowed, code: "UnknownOperationException", message: "KMS accepts POST only"})
		return
	}
	// A real endpoint rejects unsigned requests; we check presence only.
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		writeError(w, errorf("MissingAuthenticationTokenException", "Missing Authentication Token"))
		return
	}
	target := r.Header.Get("X-Amz-Target")
	opName, ok := strings.CutPrefix(target, "TrentService.")
	op := operations[opName]
	if !ok || op == nil {
		writeError(w, errorf("UnknownOperationException", "operation %q is not supported by the Signet KMS test server", target))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeError(w, errorf("ValidationException", "reading request: %v", err))
		return
	}
	s.mu.Lock()
	s.calls[opName]++
	s.mu.Unlock()
	out, apiErr := op(s, body)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(out)
}

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", e.code)
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": e.code, "message": e.message})
}

// decode unmarshals a request body, mapping malformed JSON to AWS's error.
func decode(body []byte, v any) *apiError {
	if len(body) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errorf("SerializationException", "malformed request body: %v", err)
	}
	return nil
}

// hashFor maps a signing algorithm to its digest.
func hashFor(alg string) (crypto.Hash, bool) {
	switch {
	case strings.HasSuffix(alg, "_SHA_256"):
		return crypto.SHA256, true
	case strings.HasSuffix(alg, "_SHA_384"):
		return crypto.SHA384, true
	case strings.HasSuffix(alg, "_SHA_512"):
		return crypto.SHA512, true
	}
	return 0, false
}
