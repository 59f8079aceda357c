// Package signer is an AWS Signer test server speaking the real REST API
// of the one operation Signet uses, GetRevocationStatus: GET /revocations
// with the query parameters aws-sdk-go-v2 serializes (profileVersionArn,
// jobArn, platformId, signatureTimestamp, certificateHashes repeated), a
// JSON answer {"revokedEntities": [...]}, and errors shaped as restJson1
// shapes them, so the real aws-sdk-go-v2 signer client runs unchanged
// against it (point AWS_ENDPOINT_URL_SIGNER at it).
//
// Tests revoke signing jobs, profile versions and certificates, inject
// faults (an HTTP status, a delay) and count calls. It is test
// infrastructure: SigV4 signatures must be present but are not checked.
package signer

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Platform is the signing platform of Notation container-image signatures.
const Platform = "Notation-OCI-SHA384-ECDSA"

// Server is the Signer test server. It implements http.Handler.
type Server struct {
	mu              sync.Mutex
	jobs            map[string]bool
	profileVersions map[string]time.Time // revoked for signatures made at or after the time
	certificates    map[string]bool
	failStatus      int
	failCode        string
	delay           time.Duration
	requests        []Request
}

// Request is one GetRevocationStatus call as the server received it.
type Request struct {
	// Host is the Host header: the SDK's endpoint host prefix would show here.
	Host string
	// Region and Service come from the SigV4 credential scope.
	Region, Service    string
	ProfileVersionARN  string
	JobARN             string
	PlatformID         string
	SignatureTimestamp time.Time
	CertificateHashes  []string
}

// New returns a server that revokes nothing.
func New() *Server {
	return &Server{jobs: map[string]bool{}, profileVersions: map[string]time.Time{}, certificates: map[string]bool{}}
}

// RevokeJob revokes a signing job (RevokeSignature).
func (s *Server) RevokeJob(jobARN string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jobs[jobARN] = true
}

// RevokeProfileVersion revokes a signing-profile version for signatures
// made at or after effective (RevokeSigningProfile); the zero time revokes
// every signature of the version.
func (s *Server) RevokeProfileVersion(profileVersionARN string, effective time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.profileVersions[profileVersionARN] = effective
}

// RevokeCertificate revokes a certificate by AWS Signer's certificate hash
// (hex SHA-384 of its TBS followed by that of its issuer's).
func (s *Server) RevokeCertificate(hash string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.certificates[strings.ToLower(hash)] = true
}

// FailWith makes every call fail with an HTTP status and a restJson1 error
// code (e.g. 500, "InternalServiceErrorException") until Heal.
func (s *Server) FailWith(status int, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failStatus, s.failCode = status, code
}

// Delay makes every call wait d before answering, until Heal.
func (s *Server) Delay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Heal ends injected faults.
func (s *Server) Heal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failStatus, s.failCode, s.delay = 0, "", 0
}

// Calls returns how many GetRevocationStatus calls arrived (retries
// included, faulty answers included).
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

// Requests returns the calls received, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

var (
	credentialRE = regexp.MustCompile(`Credential=[^/]+/[0-9]{8}/([^/]+)/([^/]+)/aws4_request`)
	hashRE       = regexp.MustCompile(`^[0-9a-f]{192}$`)
)

// ServeHTTP answers GET /revocations.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/revocations" || r.Method != http.MethodGet {
		writeError(w, http.StatusNotFound, "ResourceNotFoundException", fmt.Sprintf("%s %s is not an operation of the Signet Signer test server", r.Method, r.URL.Path))
		return
	}
	auth := credentialRE.FindStringSubmatch(r.Header.Get("Authorization"))
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") || auth == nil {
		writeError(w, http.StatusForbidden, "AccessDeniedException", "Missing Authentication Token")
		return
	}
	q := r.URL.Query()
	req := Request{
		Host:              r.Host,
		Region:            auth[1],
		Service:           auth[2],
		ProfileVersionARN: q.Get("profileVersionArn"),
		JobARN:            q.Get("jobArn"),
		PlatformID:        q.Get("platformId"),
		CertificateHashes: q["certificateHashes"],
	}
	ts, tsErr := time.Parse(time.RFC3339Nano, q.Get("signatureTimestamp"))
	req.SignatureTimestamp = ts

	s.mu.Lock()
	s.requests = append(s.requests, req)
	status, code, delay := s.failStatus, s.failCode, s.delay
	s.mu.Unlock()

	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if status != 0 {
		writeError(w, status, code, "injected fault")
		return
	}
	if msg := validate(req, tsErr); msg != "" {
		writeError(w, http.StatusBadRequest, "ValidationException", msg)
		return
	}

	revoked := []string{}
	s.mu.Lock()
	if effective, ok := s.profileVersions[req.ProfileVersionARN]; ok && !req.SignatureTimestamp.Before(effective) {
		revoked = append(revoked, req.ProfileVersionARN)
	}
	if s.jobs[req.JobARN] {
		revoked = append(revoked, req.JobARN)
	}
	for _, h := range req.CertificateHashes {
		if s.certificates[strings.ToLower(h)] {
			revoked = append(revoked, h)
		}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string][]string{"revokedEntities": revoked})
}

// validate applies the API's input rules.
func validate(req Request, tsErr error) string {
	switch {
	case req.Service != "signer":
		return fmt.Sprintf("request signed for service %q, not signer", req.Service)
	case !strings.HasPrefix(req.ProfileVersionARN, "arn:"):
		return "profileVersionArn is required"
	case !strings.HasPrefix(req.JobARN, "arn:"):
		return "jobArn is required"
	case req.PlatformID == "":
		return "platformId is required"
	case tsErr != nil:
		return "signatureTimestamp is required (an ISO 8601 date-time)"
	case len(req.CertificateHashes) == 0:
		return "certificateHashes is required"
	}
	for _, h := range req.CertificateHashes {
		if !hashRE.MatchString(h) {
			return fmt.Sprintf("certificate hash %q is not two hex SHA-384 digests", h)
		}
	}
	return ""
}

// writeError writes a restJson1 error: the code in X-Amzn-ErrorType, the
// message in the body.
func writeError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": message})
}
