package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	root := repoRoot(t)
	t.Run("defaults", func(t *testing.T) {
		o, err := parseFlags([]string{"--image", "127.0.0.1:5000/signet/webhook"}, io.Discard, root)
		if err != nil {
			t.Fatal(err)
		}
		var platforms []string
		for _, p := range o.Platforms {
			platforms = append(platforms, p.String())
		}
		if o.Cmd != "webhook" || o.Tag != "" || strings.Join(platforms, ",") != "linux/amd64,linux/arm64" {
			t.Errorf("cmd %q tag %q platforms %q; want webhook, no tag, linux/amd64,linux/arm64", o.Cmd, o.Tag, platforms)
		}
		// This test runs in the repository: the defaults come from git.
		if o.Version == "" || o.Version == "dev" || len(o.Revision) != 40 {
			t.Errorf("version %q revision %q; want git describe and a full commit", o.Version, o.Revision)
		}
		if !o.Created.Equal(time.Unix(0, 0)) {
			t.Errorf("created %s, want the Unix epoch", o.Created)
		}
	})
	t.Run("explicit", func(t *testing.T) {
		t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
		o, err := parseFlags([]string{"--image=localhost:5000/signet/cli", "--tag=v1.2.3", "--cmd=signet", "--platforms=linux/arm64, linux/arm64",
			"--version=v1.2.3", "--revision=abc"}, io.Discard, root)
		if err != nil {
			t.Fatal(err)
		}
		if o.Repo.String() != "localhost:5000/signet/cli" || o.Tag != "v1.2.3" || o.Cmd != "signet" || len(o.Platforms) != 1 ||
			o.Platforms[0].String() != "linux/arm64" || o.Version != "v1.2.3" || o.Revision != "abc" || o.Created.Unix() != 1700000000 {
			t.Errorf("options = %+v", o)
		}
	})
	for _, tc := range []struct {
		name, env string
		args      []string
		want      string
	}{
		{name: "no image", want: "--image is required"},
		{name: "no registry host", args: []string{"--image=signet/webhook"}, want: `"signet/webhook" names no registry host`},
		{name: "upper case", args: []string{"--image=127.0.0.1:5000/Signet"}, want: "--image"},
		{name: "bad tag", args: []string{"--image=127.0.0.1:5000/signet", "--tag=a:b"}, want: `--tag "a:b"`},
		{name: "unknown command", args: []string{"--image=127.0.0.1:5000/signet", "--cmd=kms-server"}, want: `--cmd "kms-server"`},
		{name: "unsupported platform", args: []string{"--image=127.0.0.1:5000/signet", "--platforms=linux/s390x"}, want: "want linux/amd64 or linux/arm64"},
		{name: "version with a space", args: []string{"--image=127.0.0.1:5000/signet", "--version=v1 -X x"}, want: "--version"},
		{name: "bad SOURCE_DATE_EPOCH", env: "yesterday", args: []string{"--image=127.0.0.1:5000/signet"}, want: "SOURCE_DATE_EPOCH"},
		{name: "arguments", args: []string{"--image=127.0.0.1:5000/signet", "extra"}, want: "unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SOURCE_DATE_EPOCH", tc.env)
			_, err := parseFlags(tc.args, io.Discard, root)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
