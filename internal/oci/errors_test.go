package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Classify is tested on the errors go-containerregistry really returns,
// from a registry on 127.0.0.1 answering as each case needs.
func TestClassify(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedHost := closed.Addr().String()
	closed.Close()

	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		host    string
		limits  Limits
		want    Failure
	}{
		{"404", status(http.StatusNotFound), "", Limits{}, FailureNotFound},
		{"401", status(http.StatusUnauthorized), "", Limits{}, FailureDenied},
		{"403", status(http.StatusForbidden), "", Limits{}, FailureDenied},
		{"500", status(http.StatusInternalServerError), "", Limits{}, FailureUnavailable},
		{"429", status(http.StatusTooManyRequests), "", Limits{}, FailureUnavailable},
		{"timeout", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v2/" {
				<-r.Context().Done()
			}
		}, "", Limits{}, FailureTimeout},
		{"too-large", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			io.WriteString(w, fmt.Sprintf(`{"schemaVersion":2,"annotations":{"x":"%0100d"}}`, 0))
		}, "", Limits{MaxResponseBytes: 64, MaxPayloadBytes: 1, MaxSignatures: 1, MaxRedirects: 1}, FailureLimit},
		{"refused", nil, closedHost, Limits{}, FailureUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := tc.host
			if tc.handler != nil {
				srv := httptest.NewServer(tc.handler)
				defer srv.Close()
				host = srv.Listener.Addr().String()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			c := New(Options{Limits: tc.limits})
			ref, _ := name.ParseReference(host + "/app:1")
			opts, err := c.RemoteOptions(ctx, ref.Context(), nil)
			if err == nil {
				_, err = remote.Get(ref, opts...)
			}
			if got := Classify(err); got != tc.want {
				t.Fatalf("Classify(%v) = %d, want %d", err, got, tc.want)
			}
			if IsTransient(err) != (tc.want == FailureUnavailable || tc.want == FailureTimeout) {
				t.Fatalf("IsTransient(%v) = %v", err, IsTransient(err))
			}
		})
	}
	if Classify(nil) != FailureNone || Classify(errors.New("x")) != FailureUnavailable {
		t.Fatal("nil or plain errors misclassified")
	}
}

// status answers the /v2/ ping with 200 and everything else with code.
func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		w.WriteHeader(code)
	}
}
