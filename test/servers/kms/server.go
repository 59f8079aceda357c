// Package kms is an AWS KMS test server speaking the real KMS wire protocol
// (JSON 1.1: POST / with X-Amz-Target: TrentService.<Operation>). It holds
// asymmetric signing keys in memory and answers the operations cosign and
// Signet use, with key IDs, key ARNs, alias names and alias ARNs resolving
// as in AWS and errors shaped as AWS shapes them, so the real aws-sdk-go-v2
// client and the sigstore awskms provider run unchanged against it.
//
// It is test infrastructure: SigV4 signatures must be present but are not
// checked (credentials are dummies), and keys vanish with the process.
package kms

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Server is the KMS test server. It implements http.Handler and is safe for
// concurrent use.
type Server struct {
	region, account string

	mu      sync.Mutex
	keys    map[string]*key   // by key ID; never deleted, never mutated
	aliases map[string]*alias // by alias name ("alias/x")
	calls   map[string]int    // operation -> requests that reached it
}

// Options configure a Server. Zero values take the defaults.
type Options struct {
	Region  string // default us-east-1
	Account string // default 123456789012
}

// New returns a server with no keys.
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
		aliases: map[string]*alias{},
		calls:   map[string]int{},
	}
}

// Calls returns how many requests for op (e.g. "GetPublicKey") reached the
// server, failed ones included. Tests use it to prove that a verification
// made no KMS call; a real endpoint has no such hook.
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// CallCounts returns every operation's count (operations never called are
// absent). GET /_signet/calls serves the same map to other processes.
func (s *Server) CallCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls)
}

// apiError is an AWS JSON-protocol error: an HTTP status plus the error
// code, sent both as the X-Amzn-ErrorType header and as "__type".
type apiError struct {
	status  int
	code    string
	message string
}

func errorf(code, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, message: fmt.Sprintf(format, args...)}
}

func internalError(err error) *apiError {
	return &apiError{status: http.StatusInternalServerError, code: "KMSInternalException", message: err.Error()}
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

// ServeHTTP dispatches on X-Amz-Target, and serves GET /_signet/calls.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/_signet/calls" {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.CallCounts())
		return
	}
	// Every AWS response carries a request ID; the SDK puts it in its errors.
	w.Header().Set("X-Amzn-RequestId", uuid.NewString())
	if r.Method != http.MethodPost {
		writeError(w, &apiError{status: http.StatusMethodNotAllowed, code: "UnknownOperationException", message: "KMS accepts POST only"})
		return
	}
	// A real endpoint rejects unsigned requests; checking that a SigV4
	// header is present catches a client that lost its credentials.
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		writeError(w, errorf("MissingAuthenticationTokenException", "Missing Authentication Token"))
		return
	}
	target := r.Header.Get("X-Amz-Target")
	opName, ok := strings.CutPrefix(target, "TrentService.")
	op := operations[opName]
	if !ok || op == nil {
		writeError(w, errorf("UnknownOperationException", "operation %q is not implemented by the Signet KMS test server", target))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeError(w, errorf("SerializationException", "reading request: %v", err))
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
	body := map[string]string{"__type": e.code}
	if e.message != "" {
		body["message"] = e.message
	}
	_ = json.NewEncoder(w).Encode(body)
}

// decode unmarshals a request body. Blobs arrive base64 encoded, which
// encoding/json decodes into []byte fields.
func decode(body []byte, v any) *apiError {
	if len(body) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errorf("SerializationException", "malformed request body: %v", err)
	}
	return nil
}

// epoch is how the JSON protocol sends timestamps: seconds since the Unix
// epoch as a number, with a fraction.
func epoch(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

// required is AWS's message for a missing required member.
func required(member string) *apiError {
	return errorf("ValidationException",
		"1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null", member)
}
