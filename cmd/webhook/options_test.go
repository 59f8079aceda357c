package main

import (
	"flag"
	"io"
	"testing"
	"time"

	"github.com/signet-dev/signet/pkg/policy"
)

func TestOptionsDefaults(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "signet-system")
	o := NewOptions()
	if err := o.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	want := []string{"kube-system", "kube-public", "kube-node-lease", "signet-system"}
	if len(o.ExemptNamespaces) != len(want) {
		t.Fatalf("ExemptNamespaces = %v, want %v", o.ExemptNamespaces, want)
	}
	for i := range want {
		if o.ExemptNamespaces[i] != want[i] {
			t.Fatalf("ExemptNamespaces = %v, want %v", o.ExemptNamespaces, want)
		}
	}
	if o.WebhookPort != 9443 || o.NoMatchPolicy != policy.NoMatchWarn || o.VerifyTimeout != 0 || !o.DigestPinning {
		t.Fatalf("unexpected defaults: %+v", o)
	}
}

func TestOptionsFlags(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "signet-system")
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, o *Options)
	}{
		{
			name: "all flags",
			args: []string{"--kubeconfig=/k", "--webhook-port=8443", "--cert-dir=/certs", "--metrics-bind-address=0",
				"--health-probe-bind-address=:9000", "--no-match-policy=deny", "--exempt-namespaces=a, b,,c",
				"--verify-timeout=7s"},
			check: func(t *testing.T, o *Options) {
				if o.Kubeconfig != "/k" || o.WebhookPort != 8443 || o.CertDir != "/certs" || o.MetricsBindAddress != "0" ||
					o.HealthProbeBindAddress != ":9000" || o.NoMatchPolicy != policy.NoMatchDeny || o.VerifyTimeout != 7*time.Second {
					t.Fatalf("flags not bound: %+v", o)
				}
				if got := o.ExemptNamespaces; len(got) != 3 || got[0] != "a" || got[1] != "b" || got[2] != "c" {
					t.Fatalf("ExemptNamespaces = %q", got)
				}
			},
		},
		{
			name: "digest pinning off",
			args: []string{"--digest-pinning=false"},
			check: func(t *testing.T, o *Options) {
				if o.DigestPinning {
					t.Fatal("--digest-pinning=false did not turn pinning off")
				}
			},
		},
		{name: "bad no-match", args: []string{"--no-match-policy=block"}, wantErr: `--no-match-policy "block": must be allow, warn or deny`},
		{name: "bad port", args: []string{"--webhook-port=70000"}, wantErr: "--webhook-port 70000: must be between 1 and 65535"},
		{name: "empty cert dir", args: []string{"--cert-dir="}, wantErr: "--cert-dir: must not be empty"},
		{name: "negative timeout", args: []string{"--verify-timeout=-1s"}, wantErr: "--verify-timeout -1s: must not be negative"},
		{name: "missing roots", args: []string{"--aws-signer-roots=/nonexistent/roots.pem"}, wantErr: "--aws-signer-roots: stat /nonexistent/roots.pem: no such file or directory"},
		{name: "bad namespace", args: []string{"--exempt-namespaces=ok,a b"}, wantErr: `--exempt-namespaces: "a b" is not a namespace name`},
		{
			name: "certificates and cache",
			args: []string{"--cert-secret=s", "--cert-dns-names=w.ns.svc,w.ns.svc.cluster.local", "--validating-webhook-configuration=v",
				"--mutating-webhook-configuration=", "--cert-validity=1h", "--ca-validity=3h", "--shutdown-delay=15s",
				"--cache-verified-ttl=5m", "--cache-denied-ttl=10s", "--cache-max-entries=100", "--pprof-bind-address=127.0.0.1:6060"},
			check: func(t *testing.T, o *Options) {
				if o.CertManagement != CertBuiltin || o.Namespace != "signet-system" || o.CertSecret != "s" ||
					len(o.CertDNSNames) != 2 || o.CertDNSNames[1] != "w.ns.svc.cluster.local" ||
					o.ValidatingWebhookConfiguration != "v" || o.MutatingWebhookConfiguration != "" ||
					o.CertValidity != time.Hour || o.CAValidity != 3*time.Hour || o.ShutdownDelay != 15*time.Second ||
					o.CacheVerifiedTTL != 5*time.Minute || o.CacheDeniedTTL != 10*time.Second || o.CacheMaxEntries != 100 ||
					o.PprofBindAddress != "127.0.0.1:6060" {
					t.Fatalf("flags not bound: %+v", o)
				}
			},
		},
		{
			name: "external certificates need no Secret",
			args: []string{"--cert-management=external", "--namespace=", "--cert-dns-names=", "--cert-secret=", "--audit-lease="},
			check: func(t *testing.T, o *Options) {
				if o.CertManagement != CertExternal {
					t.Fatalf("CertManagement = %q", o.CertManagement)
				}
			},
		},
		{name: "bad cert management", args: []string{"--cert-management=manual"}, wantErr: `--cert-management "manual": must be builtin or external`},
		{
			name: "builtin without a namespace or names",
			args: []string{"--namespace=", "--cert-dns-names=", "--validating-webhook-configuration="},
			wantErr: "--cert-management=builtin needs --namespace (or $POD_NAMESPACE) for its Secret\n" +
				"--cert-dns-names: name the webhook Service (<svc>.<ns>.svc) with --cert-management=builtin\n" +
				"--validating-webhook-configuration: must not be empty with --cert-management=builtin\n" +
				"--audit-lease signet-audit: needs --namespace (or $POD_NAMESPACE) to hold the Lease; or set --audit-lease= to run continuous validation without election (one replica only), or --audit-interval=0",
		},
		{name: "negative audit interval", args: []string{"--namespace=signet", "--audit-interval=-1m"}, wantErr: "--audit-interval -1m0s: must not be negative (0 turns continuous validation off)"},
		{name: "revocation answers kept for no time", args: []string{"--namespace=signet", "--revocation-ttl=0"}, wantErr: "--revocation-ttl 0s: must be positive"},
		{
			name: "continuous validation off needs no Lease",
			args: []string{"--cert-management=external", "--namespace=", "--audit-interval=0"},
			check: func(t *testing.T, o *Options) {
				if o.AuditInterval != 0 || o.AuditLease != "signet-audit" || !o.AuditExempt || o.RevocationTTL != 10*time.Minute {
					t.Fatalf("audit options %v %q %v, revocation TTL %v", o.AuditInterval, o.AuditLease, o.AuditExempt, o.RevocationTTL)
				}
			},
		},
		{name: "cert outlives CA", args: []string{"--cert-validity=2h", "--ca-validity=1h"}, wantErr: "--cert-validity 2h0m0s: must not exceed --ca-validity 1h0m0s"},
		{name: "cert too short", args: []string{"--cert-validity=1s"}, wantErr: "--cert-validity 1s, --ca-validity 43800h0m0s: must be at least 30s"},
		{name: "negative shutdown delay", args: []string{"--shutdown-delay=-1s"}, wantErr: "--shutdown-delay -1s: must not be negative"},
		{name: "empty cache", args: []string{"--cache-max-entries=0"}, wantErr: "--cache-max-entries 0: must be at least 1"},
		{
			name: "limits",
			args: []string{"--max-images-per-request=10", "--max-concurrent-verifications=4", "--registry-max-conns-per-host=2"},
			check: func(t *testing.T, o *Options) {
				if o.MaxImagesPerRequest != 10 || o.MaxConcurrentVerifications != 4 || o.RegistryMaxConnsPerHost != 2 {
					t.Fatalf("limit flags not bound: %+v", o)
				}
			},
		},
		{name: "limit defaults", check: func(t *testing.T, o *Options) {
			if o.MaxImagesPerRequest != 256 || o.MaxConcurrentVerifications != 64 || o.RegistryMaxConnsPerHost != 32 {
				t.Fatalf("limit defaults: %d, %d, %d; want 256, 64, 32", o.MaxImagesPerRequest, o.MaxConcurrentVerifications, o.RegistryMaxConnsPerHost)
			}
		}},
		{
			name:    "limits below one",
			args:    []string{"--max-images-per-request=0", "--max-concurrent-verifications=0", "--registry-max-conns-per-host=-1"},
			wantErr: "--max-images-per-request 0: must be at least 1\n--max-concurrent-verifications 0: must be at least 1\n--registry-max-conns-per-host -1: must be at least 1",
		},
		{
			name:    "every error at once",
			args:    []string{"--webhook-port=0", "--no-match-policy=x"},
			wantErr: "--webhook-port 0: must be between 1 and 65535\n--no-match-policy \"x\": must be allow, warn or deny",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := NewOptions()
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			o.BindFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := o.Validate()
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Validate() = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, o)
		})
	}
}
