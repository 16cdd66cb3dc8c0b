package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/healthrouter/healthrouter/pkg/config"
)

// tokenSet holds SHA-256 digests of the accepted bearer tokens. Comparing
// fixed-size digests in constant time, against every token without an early
// exit, leaks neither a token's bytes nor its length nor which one matched.
type tokenSet [][sha256.Size]byte

func newTokenSet(tokens ...config.Secret) tokenSet {
	var ts tokenSet
	for _, t := range tokens {
		if t != "" {
			ts = append(ts, sha256.Sum256([]byte(t.Reveal())))
		}
	}
	return ts
}

func (ts tokenSet) empty() bool { return len(ts) == 0 }

// match reports whether the request carries one of the tokens.
func (ts tokenSet) match(r *http.Request) bool {
	tok, ok := bearer(r)
	if !ok {
		return false
	}
	got := sha256.Sum256([]byte(tok))
	found := 0
	for i := range ts {
		found |= subtle.ConstantTimeCompare(got[:], ts[i][:])
	}
	return found == 1
}

// bearer extracts the token of an "Authorization: Bearer <token>" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(h[len(prefix):]), true
}

// access is who may call an endpoint.
type access int

const (
	// accessRead: any ingest or admin token (none needed when no token is
	// configured at all: the server is then loopback-only).
	accessRead access = iota
	// accessIngest: an ingest token (or the admin token).
	accessIngest
	// accessAdmin: the admin token. With no admin token configured, writes
	// are allowed only in the loopback-only, token-less mode.
	accessAdmin
)

func (s *Server) authorize(a access) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if s.open() {
				if why := fromBrowser(r); why != "" {
					writeError(w, http.StatusForbidden, "refused: "+why+"; without tokens this server serves only programs on its own host")
					return
				}
			}
			if s.allowed(a, r) {
				next.ServeHTTP(w, r)
				return
			}
			if a == accessAdmin {
				switch {
				case s.admin.empty():
					// No token can open it: asking for one again would mislead.
					writeError(w, http.StatusForbidden, "this endpoint needs the admin token, and this server has none: restart it with HEALTHROUTER_ADMIN_TOKEN or auth.admin_token_file set")
					return
				case s.ingest.match(r):
					// Authenticated, but not for this: RFC 6750's
					// insufficient_scope rather than a token to fix.
					w.Header().Set("WWW-Authenticate", `Bearer realm="healthrouter", error="insufficient_scope"`)
					writeError(w, http.StatusForbidden, "this endpoint needs the admin token; an ingest token is not enough")
					return
				}
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="healthrouter"`)
			writeError(w, http.StatusUnauthorized, "missing or invalid bearer token")
		})
	}
}

// open is the token-less mode: no token of any kind configured, so the
// server only listens on loopback and trusts its callers.
func (s *Server) open() bool { return s.ingest.empty() && s.admin.empty() }

// fromBrowser says why a request may come from a web page rather than a
// program on this host, or "" when it does not. In the token-less mode
// the loopback listener is the only guard, and a page in a local browser
// can reach it: by posting across sites (a maintenance window silencing
// a region, say) or, through DNS rebinding, under a name of its own.
// Programs (Vector, curl, the CLI) send no Origin or Sec-Fetch-Site and
// name the address they dial.
func fromBrowser(r *http.Request) string {
	if why := foreignHost(r); why != "" {
		return why
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return "a " + capText(site, 32) + " request from a web page"
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		if u, err := url.Parse(origin); err != nil || u.Host != r.Host {
			return "a request from the web page at " + strconv.Quote(capText(origin, 64))
		}
	}
	return ""
}

// foreignHost says why a request names a host other than this machine, or
// "" when it names localhost or a loopback address.
func foreignHost(r *http.Request) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if ip := net.ParseIP(host); !strings.EqualFold(host, "localhost") && (ip == nil || !ip.IsLoopback()) {
		return "Host " + strconv.Quote(capText(r.Host, 64)) + " is not localhost or a loopback IP"
	}
	return ""
}

// loopbackNamed guards the open endpoints that tell about the fleet
// (/metrics, /readyz) whenever no ingest token is set, the modes serve
// holds to loopback (an admin token alone guards only /v1 and /debug): a
// page that rebinds its own name to 127.0.0.1 could read them. Prometheus
// or a probe on this host names a loopback address; cross-site marks are
// not checked, since a page cannot read a cross-site answer anyway.
func (s *Server) loopbackNamed(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.ingest.empty() {
			if why := foreignHost(r); why != "" {
				writeError(w, http.StatusForbidden, "refused: "+why+"; without an ingest token this server serves only programs on its own host")
				return
			}
		}
		next(w, r)
	}
}

func (s *Server) allowed(a access, r *http.Request) bool {
	if s.open() {
		return true
	}
	switch a {
	case accessAdmin:
		return !s.admin.empty() && s.admin.match(r)
	default:
		// Evaluate both so timing does not say which kind matched.
		ing, adm := s.ingest.match(r), s.admin.match(r)
		return ing || adm
	}
}
