package oci

import (
	"bytes"
	"io"
	"net/http"
	"strings"
)

// A registry without the OCI 1.1 referrers API answers every referrers
// request 404, and both libraries then read the referrers tag schema
// instead: one wasted request per verification. The transport remembers,
// per registry and for HandshakeTTL (a registry may be upgraded), that the
// API answered 404 of its own (not an OCI NAME_UNKNOWN, which is a missing
// repository on a registry that has the API, as oras-go tells them
// apart); readers then go to the tag schema directly (LacksReferrersAPI).

// maxErrorPeek is how much of a 404's body is read to tell the two apart.
const maxErrorPeek = 4 << 10

// noteReferrersAnswer records a referrers request's 404. It may read the
// start of the body, and puts it back.
func (c *Client) noteReferrersAnswer(req *http.Request, resp *http.Response) {
	if req.Method != http.MethodGet || resp.StatusCode != http.StatusNotFound || !isReferrersPath(req.URL.Path) {
		return
	}
	peek, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorPeek))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(peek), resp.Body), resp.Body}
	if err != nil || bytes.Contains(peek, []byte("NAME_UNKNOWN")) {
		return
	}
	c.noReferrersAPI.Put(req.URL.Host, true)
}

// LacksReferrersAPI reports whether host (host:port) answered a
// referrers request with a 404 of its own within HandshakeTTL.
func (c *Client) LacksReferrersAPI(host string) bool {
	_, ok := c.noReferrersAPI.Get(host)
	return ok
}

// isReferrersPath matches /v2/<name>/referrers/<digest>.
func isReferrersPath(p string) bool {
	i := strings.LastIndex(p, "/referrers/")
	return strings.HasPrefix(p, "/v2/") && i > len("/v2") && !strings.Contains(p[i+len("/referrers/"):], "/")
}
