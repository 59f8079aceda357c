package oci

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestPlainHTTP(t *testing.T) {
	c := New(Options{InsecureRegistries: []string{"registry.internal:5000", "Mirror.Corp"}})
	for host, want := range map[string]bool{
		"127.0.0.1:5000":         true,
		"127.0.0.1":              true,
		"[::1]:5000":             true,
		"localhost:5000":         true,
		"registry.internal:5000": true,
		"mirror.corp":            true,
		"registry.internal":      false, // the port is part of the exemption
		"123456789012.dkr.ecr.us-east-1.amazonaws.com": false,
		"index.docker.io": false,
		"10.0.0.1:5000":   false, // private is not loopback
	} {
		if got := c.PlainHTTP(host); got != want {
			t.Errorf("PlainHTTP(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestTransportCapsResponseBodies(t *testing.T) {
	body := strings.Repeat("x", 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			// No Content-Length: the cap must hold while reading.
			w.(http.Flusher).Flush()
		}
		io.WriteString(w, body)
	}))
	defer srv.Close()

	for _, tc := range []struct {
		path  string
		limit int64
		want  string
	}{
		{"/sized", 100, ""},
		{"/chunked", 100, ""},
		{"/sized", 99, "registry exceeded Signet's limit on response body (99) at " + srv.URL + "/sized"},
		{"/chunked", 99, "registry exceeded Signet's limit on response body (99) at " + srv.URL + "/chunked"},
	} {
		t.Run(fmt.Sprintf("%s-%d", tc.path, tc.limit), func(t *testing.T) {
			limits := DefaultLimits
			limits.MaxResponseBytes = tc.limit
			hc := &http.Client{Transport: New(Options{Limits: limits}).Transport()}
			resp, err := hc.Get(srv.URL + tc.path)
			if err == nil {
				defer resp.Body.Close()
				var b []byte
				b, err = io.ReadAll(resp.Body)
				if err == nil && string(b) != body {
					t.Fatalf("read %d bytes, want the whole body", len(b))
				}
			}
			got := ""
			if err != nil {
				got = err.Error()
				if !IsLimit(err) {
					t.Fatalf("error %v is not a LimitError", err)
				}
			}
			if !strings.HasSuffix(got, tc.want) || (tc.want == "") != (got == "") {
				t.Fatalf("error = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTransportCapsRedirects(t *testing.T) {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int
		fmt.Sscanf(r.URL.Path, "/hop/%d", &n)
		if n == 0 {
			io.WriteString(w, "arrived")
			return
		}
		// A pre-signed style query must not leak into error messages.
		http.Redirect(w, r, fmt.Sprintf("%s/hop/%d?X-Amz-Signature=secret", srv.URL, n-1), http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	hc := &http.Client{Transport: New(Options{}).Transport()}

	resp, err := hc.Get(srv.URL + "/hop/3")
	if err != nil {
		t.Fatalf("3 redirects must be followed: %v", err)
	}
	resp.Body.Close()

	resp, err = hc.Get(srv.URL + "/hop/4")
	if err == nil {
		resp.Body.Close()
	}
	want := "registry exceeded Signet's limit on redirects (3) at " + srv.URL + "/hop/0"
	if err == nil || !strings.HasSuffix(err.Error(), want) || !IsLimit(err) {
		t.Fatalf("error = %v, want one ending %q", err, want)
	}
	// http.Client puts the full URL into its error; Redact takes the
	// pre-signed credential out before the message goes anywhere.
	if got := Redact(err); strings.Contains(got, "secret") || !strings.HasSuffix(got, want) {
		t.Fatalf("Redact(err) = %q", got)
	}
}

func TestKeychainFallsBackToDefault(t *testing.T) {
	c := New(Options{})
	if c.Keychain(nil) == nil {
		t.Fatal("nil request keychain must fall back to the default")
	}
}

func TestTransportRefusesPlainHTTPToNonLoopbackHosts(t *testing.T) {
	hc := &http.Client{Transport: New(Options{InsecureRegistries: []string{"mirror.internal:5000"}}).Transport()}
	resp, err := hc.Get("http://10.1.2.3:5000/v2/")
	if err == nil {
		resp.Body.Close()
	}
	want := "refusing plain HTTP to registry 10.1.2.3:5000: only loopback registries and those named with --insecure-registry may be reached without TLS"
	if err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Fatalf("error = %v, want one ending %q", err, want)
	}
	// An explicitly insecure host passes the rule (and then fails to resolve here).
	resp, err = hc.Get("http://mirror.internal:5000/v2/")
	if err == nil {
		resp.Body.Close()
	}
	if err == nil || strings.Contains(err.Error(), "refusing plain HTTP") {
		t.Fatalf("insecure registry refused: %v", err)
	}
}
