// Package grafanatest is an in-memory Grafana for tests: the folder and
// alerting provisioning endpoints healthrouter uses, and the mute timings
// other teams' routes name, with the semantics of the real API enforced
// strictly (and in places more strictly than Grafana, where Grafana accepts
// what its own UI then cannot display), plus fault injection and a request
// log for assertions. Drive it with the real grafana-openapi-client-go
// client.
package grafanatest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grafana/grafana-openapi-client-go/models"
)

// Provenances as Grafana stores them.
const (
	ProvenanceAPI  = "api"
	ProvenanceNone = ""
	// ProvenanceFile marks objects Grafana loaded from its provisioning
	// files; the API cannot change it.
	ProvenanceFile = "file"
	// ProvenanceConvertedPrometheus marks rules imported from Prometheus
	// rule files.
	ProvenanceConvertedPrometheus = "converted_prometheus"
)

// DefaultReceiver is the contact point a fresh Grafana routes everything to.
const DefaultReceiver = "grafana-default-email"

// Server is the fake Grafana. Its zero value is not usable; call New.
type Server struct {
	// URL is the base URL to configure clients with.
	URL string
	// Token is the bearer token every API call must carry.
	Token string
	// OrgID is the organisation the token belongs to.
	OrgID int64

	srv *httptest.Server

	mu           sync.Mutex
	folders      map[string]*models.Folder
	rules        map[string]*storedRule
	intervals    map[groupKey]int64
	integrations []*storedIntegration
	policy       *route
	policyProv   string
	muteTimings  map[string]*muteTiming // by name
	nextID       int64
	version      string // what /api/health reports

	log        []Request
	logGen     int // bumped by ResetLog, so late status updates skip a new log
	failAll    int
	delay      time.Duration
	writes     int                   // writes received, for FailWrite and HangWrite
	failWrites map[int]int           // write ordinal -> status
	hangWrites map[int]time.Duration // write ordinal -> delay of the answer
	onWrite    func(Request)
}

type groupKey struct{ folder, group string }

type storedRule struct {
	rule *models.ProvisionedAlertRule
	idx  int
}

type storedIntegration struct {
	cp  models.EmbeddedContactPoint
	key map[string]string // secure settings, by name
}

// Request is one request the server received.
type Request struct {
	Method string
	Path   string
	// Status is the answer's status; 0 while in flight or when the client
	// gave up before an answer.
	Status int
}

// Write reports whether the request was meant to change something.
func (r Request) Write() bool { return r.Method != http.MethodGet && r.Method != http.MethodHead }

// New starts a server with a fresh Grafana's state: no folders, no rules,
// no mute timings, the default email contact point and the default policy
// tree.
func New() *Server {
	s := &Server{
		Token:       "test-grafana-token-0123456789",
		OrgID:       1,
		version:     DefaultVersion,
		folders:     map[string]*models.Folder{},
		rules:       map[string]*storedRule{},
		intervals:   map[groupKey]int64{},
		muteTimings: map[string]*muteTiming{},
		failWrites:  map[int]int{},
		hangWrites:  map[int]time.Duration{},
	}
	s.integrations = append(s.integrations, &storedIntegration{
		cp: models.EmbeddedContactPoint{
			UID: "default-email", Name: DefaultReceiver, Type: ptr("email"),
			Settings: map[string]any{"addresses": "<example@email.com>"},
		},
	})
	s.policy = defaultPolicy()
	s.srv = httptest.NewServer(s.routes())
	s.URL = s.srv.URL
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// HTTPClient returns a client that talks to the server.
func (s *Server) HTTPClient() *http.Client { return s.srv.Client() }

func defaultPolicy() *route {
	return &route{Receiver: DefaultReceiver, GroupBy: []string{"grafana_folder", "alertname"}}
}

// FailAll makes every request answer status without being served (0 turns
// it off): Grafana down behind a proxy (502/503) or failing (500).
func (s *Server) FailAll(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failAll = status
}

// FailWrite makes the n-th write from now (1 = the next one) answer status
// without being applied.
func (s *Server) FailWrite(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failWrites[s.writes+n] = status
}

// HangWrite makes the n-th write from now (1 = the next one) take effect
// but answer only after d: a client with a shorter timeout sees a timeout
// for a write that happened, the worst case a reconciler must survive.
func (s *Server) HangWrite(n int, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hangWrites[s.writes+n] = d
}

// OnWrite sets a function called after each write has taken effect and
// before its answer goes out: another writer acting between a client's
// write and its read-back. The Request holds the write's status. Nil turns
// it off. f runs without the server's lock, so it may call the server.
func (s *Server) OnWrite(f func(Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onWrite = f
}

// SetPolicy replaces the notification policy tree as another writer would,
// keeping its provenance. It does not validate the tree. Matcher objects in
// tree's Matchers are stored as the string matchers Grafana keeps.
func (s *Server) SetPolicy(tree *models.Route) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policy = routeFromModel(tree)
	s.policy.normalise()
}

// SetPolicyJSON replaces the notification policy tree with one in Grafana's
// own JSON form, as a writer through Grafana's Alertmanager configuration
// API would (or an imported Alertmanager config): its routes may carry
// `matchers` as strings (["team=\"b\"", "env=~\"p.*\""]), match and
// match_re, which the generated client cannot represent. The tree is
// checked as a PUT would check it and its provenance is kept.
func (s *Server) SetPolicyJSON(tree string) error {
	var r route
	dec := json.NewDecoder(strings.NewReader(tree))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return fmt.Errorf("policy tree: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if msg := s.validateTree(&r); msg != "" {
		return fmt.Errorf("policy tree: %s", msg)
	}
	r.normalise()
	s.policy = &r
	return nil
}

// SetDelay makes every request wait d before it is served; longer than a
// client's timeout, it is a Grafana that hangs.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Requests returns the requests received since the last ResetLog.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log...)
}

// Writes counts the write requests since the last ResetLog, whatever their
// answer.
func (s *Server) Writes() int { return s.count(func(r Request) bool { return r.Write() }) }

// Reads counts the read requests since the last ResetLog.
func (s *Server) Reads() int { return s.count(func(r Request) bool { return !r.Write() }) }

// CountWrites counts writes with the method whose path starts with prefix
// (relative to /api, e.g. "/v1/provisioning/folder/").
func (s *Server) CountWrites(method, prefix string) int {
	return s.count(func(r Request) bool {
		return r.Write() && r.Method == method && strings.HasPrefix(r.Path, "/api"+prefix)
	})
}

func (s *Server) count(f func(Request) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.log {
		if f(r) {
			n++
		}
	}
	return n
}

// ResetLog forgets the requests logged so far.
func (s *Server) ResetLog() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = nil
	s.logGen++
}

// Inspection, for assertions. All return copies.

// FolderExists reports whether a folder with uid exists.
func (s *Server) FolderExists(uid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.folders[uid] != nil
}

// Rule returns the stored rule with uid.
func (s *Server) Rule(uid string) (*models.ProvisionedAlertRule, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sr, ok := s.rules[uid]
	if !ok {
		return nil, false
	}
	return cloneRule(sr.rule), true
}

// RuleUIDs returns the uids of every stored rule, sorted.
func (s *Server) RuleUIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	uids := make([]string, 0, len(s.rules))
	for uid := range s.rules {
		uids = append(uids, uid)
	}
	sort.Strings(uids)
	return uids
}

// Group returns a rule group's interval and rule uids in order.
func (s *Server) Group(folder, name string) (interval int64, uids []string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rules := s.groupRules(folder, name)
	if len(rules) == 0 {
		return 0, nil, false
	}
	for _, r := range rules {
		uids = append(uids, r.rule.UID)
	}
	return s.intervals[groupKey{folder, name}], uids, true
}

// GroupNames returns the names of a folder's rule groups, sorted.
func (s *Server) GroupNames(folder string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for _, sr := range s.rules {
		if *sr.rule.FolderUID == folder {
			seen[*sr.rule.RuleGroup] = true
		}
	}
	var names []string
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ContactPoint returns the stored integration with uid, its secure settings
// redacted, and its PagerDuty integration key separately.
func (s *Server) ContactPoint(uid string) (cp models.EmbeddedContactPoint, integrationKey string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, in := range s.integrations {
		if in.cp.UID == uid {
			return s.redacted(in), in.key["integrationKey"], true
		}
	}
	return cp, "", false
}

// SetContactPointProvenance sets a stored integration's provenance as
// Grafana's file provisioning does when it loads a contact point from a file
// (ProvenanceFile). It reports whether the integration exists.
func (s *Server) SetContactPointProvenance(uid, provenance string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.integrationIndex(uid)
	if i < 0 {
		return false
	}
	s.integrations[i].cp.Provenance = provenance
	return true
}

// Policy returns the notification policy tree and its provenance.
func (s *Server) Policy() (*models.Route, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.policy.model(), s.policyProv
}

// PolicyJSON returns the notification policy tree as GET answers it, string
// matchers included.
func (s *Server) PolicyJSON() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.policyAnswer())
}

// routes wires the endpoints.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/health", s.handleHealth)
	mux.HandleFunc("POST /api/folders", s.handleCreateFolder)
	mux.HandleFunc("GET /api/folders/{uid}", s.handleGetFolder)

	const p = "/api/v1/provisioning"
	mux.HandleFunc("GET "+p+"/alert-rules", s.handleListRules)
	mux.HandleFunc("POST "+p+"/alert-rules", s.handlePostRule)
	mux.HandleFunc("GET "+p+"/alert-rules/{uid}", s.handleGetRule)
	mux.HandleFunc("PUT "+p+"/alert-rules/{uid}", s.handlePutRule)
	mux.HandleFunc("DELETE "+p+"/alert-rules/{uid}", s.handleDeleteRule)
	mux.HandleFunc("GET "+p+"/folder/{folder}/rule-groups/{group}", s.handleGetGroup)
	mux.HandleFunc("PUT "+p+"/folder/{folder}/rule-groups/{group}", s.handlePutGroup)
	mux.HandleFunc("DELETE "+p+"/folder/{folder}/rule-groups/{group}", s.handleDeleteGroup)

	mux.HandleFunc("GET "+p+"/contact-points", s.handleListContactPoints)
	mux.HandleFunc("POST "+p+"/contact-points", s.handlePostContactPoint)
	mux.HandleFunc("PUT "+p+"/contact-points/{uid}", s.handlePutContactPoint)
	mux.HandleFunc("DELETE "+p+"/contact-points/{uid}", s.handleDeleteContactPoint)

	mux.HandleFunc("GET "+p+"/policies", s.handleGetPolicy)
	mux.HandleFunc("PUT "+p+"/policies", s.handlePutPolicy)
	mux.HandleFunc("DELETE "+p+"/policies", s.handleResetPolicy)

	mux.HandleFunc("GET "+p+"/mute-timings", s.handleListMuteTimings)
	mux.HandleFunc("POST "+p+"/mute-timings", s.handlePostMuteTiming)
	mux.HandleFunc("GET "+p+"/mute-timings/{name}", s.handleGetMuteTiming)
	mux.HandleFunc("PUT "+p+"/mute-timings/{name}", s.handlePutMuteTiming)
	mux.HandleFunc("DELETE "+p+"/mute-timings/{name}", s.handleDeleteMuteTiming)

	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errBody("Not found"))
	})
	return s.middleware(mux)
}

// middleware logs, injects faults, and checks auth.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		// Log before serving: once a client has its answer, the request is
		// in the log. The status is filled in when the handler is done.
		s.mu.Lock()
		idx, gen := len(s.log), s.logGen
		s.log = append(s.log, Request{Method: r.Method, Path: r.URL.Path})
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			if gen == s.logGen && idx < len(s.log) {
				s.log[idx].Status = rec.status
			}
			s.mu.Unlock()
		}()

		s.mu.Lock()
		delay, failAll, onWrite := s.delay, s.failAll, s.onWrite
		failWrite := 0
		var hang time.Duration
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			s.writes++
			failWrite, hang = s.failWrites[s.writes], s.hangWrites[s.writes]
			delete(s.failWrites, s.writes)
			delete(s.hangWrites, s.writes)
		}
		s.mu.Unlock()

		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				rec.status = 0 // the client gave up; nothing was answered
				return
			}
		}
		if failAll != 0 {
			writeJSON(rec, failAll, errBody("injected failure"))
			return
		}
		if failWrite != 0 {
			writeJSON(rec, failWrite, errBody("injected write failure"))
			return
		}
		if r.URL.Path != "/api/health" {
			if r.Header.Get("Authorization") != "Bearer "+s.Token {
				writeJSON(rec, http.StatusUnauthorized, errBody("invalid API key"))
				return
			}
			if org := r.Header.Get("X-Grafana-Org-Id"); org != "" && org != strconv.FormatInt(s.OrgID, 10) {
				writeJSON(rec, http.StatusUnauthorized, errBody("the token does not belong to organization "+org))
				return
			}
		}
		write := r.Method != http.MethodGet && r.Method != http.MethodHead
		if hang > 0 || (write && onWrite != nil) {
			// Apply the write, hold the answer back.
			buf := httptest.NewRecorder()
			next.ServeHTTP(buf, r)
			if write && onWrite != nil {
				onWrite(Request{Method: r.Method, Path: r.URL.Path, Status: buf.Code})
			}
			t := time.NewTimer(hang)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				rec.status = 0
				return
			}
			for k, v := range buf.Header() {
				rec.Header()[k] = v
			}
			rec.WriteHeader(buf.Code)
			_, _ = rec.Write(buf.Body.Bytes())
			return
		}
		next.ServeHTTP(rec, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// provenanceOf is the provenance a write gets: none when the request says
// X-Disable-Provenance (with any value), else api.
func provenanceOf(r *http.Request) string {
	if _, ok := r.Header["X-Disable-Provenance"]; ok {
		return ProvenanceNone
	}
	return ProvenanceAPI
}

// DefaultVersion is the Grafana version the server reports and models.
const DefaultVersion = "11.6.0"

// SetVersion sets the Grafana version /api/health reports. From a version
// before 11.5.2 the server also behaves as those did: a rule group write
// that would create a rule with a uid the client chose fails with 500
// (grafana#98283, fixed by #99858).
func (s *Server) SetVersion(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version = v
}

// createsClientUIDs reports whether this Grafana creates a rule with the
// uid a group write gives it. Callers hold s.mu.
func (s *Server) createsClientUIDs() bool {
	var major, minor, patch int
	if _, err := fmt.Sscanf(s.version, "%d.%d.%d", &major, &minor, &patch); err != nil {
		return true
	}
	return major > 11 || (major == 11 && (minor > 5 || (minor == 5 && patch >= 2)))
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	v := s.version
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"database": "ok", "version": v})
}

func (s *Server) handleCreateFolder(w http.ResponseWriter, r *http.Request) {
	var cmd models.CreateFolderCommand
	if !decode(w, r, &cmd) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case strings.TrimSpace(cmd.Title) == "":
		writeJSON(w, http.StatusBadRequest, errBody("folder title cannot be empty"))
		return
	case cmd.UID != "" && !validUID(cmd.UID):
		writeJSON(w, http.StatusBadRequest, errBody("uid contains illegal characters or is longer than 40"))
		return
	case strings.TrimSpace(cmd.UID) == "general":
		writeJSON(w, http.StatusBadRequest, errBody("invalid uid for folder provided"))
		return
	case cmd.UID != "" && s.folders[cmd.UID] != nil:
		writeJSON(w, http.StatusConflict, errBody("a folder with the same uid already exists"))
		return
	}
	uid := cmd.UID
	if uid == "" {
		uid = newUID()
	}
	// Folders are known by uid. Grafana also sends a numeric id, which it
	// deprecates and healthrouter never reads: the fake leaves it out.
	f := &models.Folder{UID: uid, OrgID: s.OrgID, Title: cmd.Title, URL: "/dashboards/f/" + uid, Version: 1}
	s.folders[uid] = f
	writeJSON(w, http.StatusOK, f)
}

func (s *Server) handleGetFolder(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.folders[r.PathValue("uid")]
	if f == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"status": "not-found", "message": "folder not found"})
		return
	}
	writeJSON(w, http.StatusOK, f)
}

// Contact points.

func (s *Server) handleListContactPoints(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := r.URL.Query().Get("name")
	out := []models.EmbeddedContactPoint{}
	for _, in := range s.integrations {
		if name == "" || in.cp.Name == name {
			out = append(out, s.redacted(in))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handlePostContactPoint(w http.ResponseWriter, r *http.Request) {
	var cp models.EmbeddedContactPoint
	if !decode(w, r, &cp) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cp.UID == "" {
		cp.UID = newUID()
	}
	if !validUID(cp.UID) {
		writeJSON(w, http.StatusBadRequest, errBody("invalid contact point: uid must be 1 to 40 letters, digits, - or _"))
		return
	}
	for _, in := range s.integrations {
		if in.cp.UID == cp.UID {
			// Grafana's handler answers a duplicate uid with a plain 500.
			writeJSON(w, http.StatusInternalServerError, errBody("failed to save contact point: uid "+cp.UID+" already exists"))
			return
		}
	}
	in, msg := newIntegration(cp, nil)
	if msg != "" {
		writeJSON(w, http.StatusBadRequest, errBody(msg))
		return
	}
	in.cp.Provenance = provenanceOf(r)
	s.integrations = append(s.integrations, in)
	writeJSON(w, http.StatusAccepted, s.redacted(in))
}

func (s *Server) handlePutContactPoint(w http.ResponseWriter, r *http.Request) {
	var cp models.EmbeddedContactPoint
	if !decode(w, r, &cp) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	uid := r.PathValue("uid")
	i := s.integrationIndex(uid)
	if i < 0 {
		writeJSON(w, http.StatusNotFound, errBody("contact point not found"))
		return
	}
	old := s.integrations[i]
	cp.UID = uid
	in, msg := newIntegration(cp, old.key)
	if msg != "" {
		writeJSON(w, http.StatusBadRequest, errBody(msg))
		return
	}
	// ContactPointService.UpdateContactPoint checks provenance after
	// validating, with a plain error the handler answers with 500: a
	// stored provenance other than none must be the one written.
	prov := provenanceOf(r)
	if old.cp.Provenance != prov && old.cp.Provenance != ProvenanceNone {
		writeJSON(w, http.StatusInternalServerError, errBody(fmt.Sprintf("cannot change provenance from '%s' to '%s'", old.cp.Provenance, prov)))
		return
	}
	if in.cp.Name != old.cp.Name && s.receiverReferenced(old.cp.Name) && s.receiverIntegrations(old.cp.Name) == 1 {
		writeJSON(w, http.StatusConflict, errBody("contact point "+old.cp.Name+" is in use and cannot be renamed"))
		return
	}
	in.cp.Provenance = prov
	s.integrations[i] = in
	writeJSON(w, http.StatusAccepted, map[string]string{"message": "contactpoint updated"})
}

// handleDeleteContactPoint deletes an integration. Like Grafana's
// ContactPointService.DeleteContactPoint it does not check provenance: the
// API deletes even a file-provisioned integration (and its provenance),
// which Grafana's file provisioning brings back at its next start.
func (s *Server) handleDeleteContactPoint(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.integrationIndex(r.PathValue("uid"))
	if i < 0 {
		writeJSON(w, http.StatusAccepted, map[string]string{"message": "contactpoint deleted"})
		return
	}
	name := s.integrations[i].cp.Name
	if s.receiverIntegrations(name) == 1 && s.receiverReferenced(name) {
		writeJSON(w, http.StatusConflict, errBody("contact point "+name+" is referenced by a notification policy or alert rule"))
		return
	}
	s.integrations = append(s.integrations[:i], s.integrations[i+1:]...)
	writeJSON(w, http.StatusAccepted, map[string]string{"message": "contactpoint deleted"})
}

func (s *Server) integrationIndex(uid string) int {
	for i, in := range s.integrations {
		if in.cp.UID == uid {
			return i
		}
	}
	return -1
}

func (s *Server) receiverIntegrations(name string) int {
	n := 0
	for _, in := range s.integrations {
		if in.cp.Name == name {
			n++
		}
	}
	return n
}

func (s *Server) receiverExists(name string) bool { return s.receiverIntegrations(name) > 0 }

// receiverReferenced reports whether a policy route or a rule's
// notification settings name the receiver.
func (s *Server) receiverReferenced(name string) bool {
	if s.policy.references(name) {
		return true
	}
	for _, sr := range s.rules {
		if ns := sr.rule.NotificationSettings; ns != nil && ns.Receiver != nil && *ns.Receiver == name {
			return true
		}
	}
	return false
}

// secureSettings are the settings Grafana encrypts and never returns, by
// integration type.
var secureSettings = map[string][]string{
	"pagerduty": {"integrationKey"},
	"slack":     {"url", "token"},
	"webhook":   {"password", "authorization_credentials"},
	"email":     nil,
}

// newIntegration validates a contact point and splits off its secure
// settings. A secure setting sent as "[REDACTED]" keeps the value in prev.
func newIntegration(cp models.EmbeddedContactPoint, prev map[string]string) (*storedIntegration, string) {
	if strings.TrimSpace(cp.Name) == "" {
		return nil, "invalid contact point: name must not be empty"
	}
	if cp.Type == nil {
		return nil, "invalid contact point: type is required"
	}
	secure, known := secureSettings[*cp.Type]
	if !known {
		return nil, fmt.Sprintf("invalid contact point: unknown type %q", *cp.Type)
	}
	settings, ok := cp.Settings.(map[string]any)
	if !ok || settings == nil {
		return nil, "invalid contact point: settings must be an object"
	}
	settings = cloneMap(settings)
	in := &storedIntegration{key: map[string]string{}}
	for _, k := range secure {
		v, present := settings[k]
		delete(settings, k)
		if !present {
			continue
		}
		str, isStr := v.(string)
		if !isStr {
			return nil, fmt.Sprintf("invalid contact point: %s must be a string", k)
		}
		if str == "[REDACTED]" {
			if old, had := prev[k]; had {
				in.key[k] = old
			}
			continue
		}
		in.key[k] = str
	}
	switch *cp.Type {
	case "pagerduty":
		if in.key["integrationKey"] == "" {
			return nil, "invalid contact point: could not find integration key property in settings"
		}
		if sev, ok := settings["severity"]; ok {
			if str, isStr := sev.(string); !isStr || str == "" {
				return nil, "invalid contact point: severity must be a non-empty string"
			}
		}
		if d, ok := settings["details"]; ok {
			m, isMap := d.(map[string]any)
			if !isMap {
				return nil, "invalid contact point: details must be a map of strings"
			}
			for _, v := range m {
				if _, isStr := v.(string); !isStr {
					return nil, "invalid contact point: details must be a map of strings"
				}
			}
		}
	case "email":
		if a, _ := settings["addresses"].(string); a == "" {
			return nil, "invalid contact point: could not find addresses in settings"
		}
	case "webhook":
		if u, _ := settings["url"].(string); u == "" {
			return nil, "invalid contact point: could not find url property in settings"
		}
	}
	cp.Settings = settings
	cp.Provenance = ""
	in.cp = cp
	return in, ""
}

// redacted is the integration as Grafana returns it: secure settings that
// are set read "[REDACTED]".
func (s *Server) redacted(in *storedIntegration) models.EmbeddedContactPoint {
	cp := in.cp
	settings := cloneMap(cp.Settings.(map[string]any))
	for k := range in.key {
		settings[k] = "[REDACTED]"
	}
	cp.Settings = settings
	return cp
}

// Policies.

func (s *Server) handleGetPolicy(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(s.policyAnswer())
}

// policyAnswer is the tree as GET answers it: Grafana's JSON form, with the
// tree's provenance on the root. Callers hold s.mu.
func (s *Server) policyAnswer() []byte {
	tree := s.policy.clone()
	tree.Provenance = s.policyProv
	raw, err := json.Marshal(tree)
	if err != nil {
		panic(fmt.Sprintf("grafanatest: encoding the policy tree: %v", err)) // plain data; cannot fail
	}
	return append(raw, '\n')
}

func (s *Server) handlePutPolicy(w http.ResponseWriter, r *http.Request) {
	// Decoded as Grafana decodes it: string matchers are read, matcher
	// objects (what the client's models.Matchers would send) are refused.
	var tree route
	if !decode(w, r, &tree) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if msg := s.validateTree(&tree); msg != "" {
		writeJSON(w, http.StatusBadRequest, errBody("invalid object specification: "+msg))
		return
	}
	prov := provenanceOf(r)
	if s.policyProv != ProvenanceNone && prov == ProvenanceNone {
		writeJSON(w, http.StatusForbidden, errBody(fmt.Sprintf("cannot change provenance from '%s' to '%s'", s.policyProv, prov)))
		return
	}
	tree.normalise()
	s.policy = &tree
	s.policyProv = prov
	writeJSON(w, http.StatusAccepted, map[string]string{"message": "policies updated"})
}

func (s *Server) handleResetPolicy(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policy = defaultPolicy()
	s.policyProv = ProvenanceNone
	writeJSON(w, http.StatusAccepted, map[string]string{"message": "policies reset"})
}

func (s *Server) validateTree(root *route) string {
	if root.Receiver == "" {
		return "root route must specify a default receiver"
	}
	if len(root.ObjectMatchers) > 0 || len(root.Match) > 0 || len(root.MatchRe) > 0 || len(root.Matchers) > 0 {
		return "root route must not have any matchers"
	}
	if len(root.MuteTimeIntervals) > 0 || len(root.ActiveTimeIntervals) > 0 {
		return "root route must not have any mute or active time intervals"
	}
	var walk func(r *route, path string) string
	walk = func(r *route, path string) string {
		if r.Receiver != "" && !s.receiverExists(r.Receiver) {
			return fmt.Sprintf("receiver '%s' does not exist", r.Receiver)
		}
		seen := map[string]bool{}
		for _, g := range r.GroupBy {
			if seen[g] {
				return fmt.Sprintf("%s: duplicated label %q in group_by", path, g)
			}
			seen[g] = true
			if g == "..." && len(r.GroupBy) > 1 {
				return path + ": cannot have wildcard group_by (`...`) and other labels at the same time"
			}
		}
		for _, f := range []struct{ name, v string }{{"group_interval", r.GroupInterval}, {"repeat_interval", r.RepeatInterval}} {
			if f.v == "" {
				continue
			}
			d, err := parseDuration(f.v)
			if err != nil || d == 0 {
				return fmt.Sprintf("%s: %s must be a non-zero duration, got %q", path, f.name, f.v)
			}
		}
		if r.GroupWait != "" {
			if _, err := parseDuration(r.GroupWait); err != nil {
				return fmt.Sprintf("%s: invalid group_wait %q", path, r.GroupWait)
			}
		}
		for _, m := range r.ObjectMatchers {
			if len(m) != 3 {
				return path + ": object_matchers entries must be [name, operator, value]"
			}
			switch m[1] {
			case "=", "!=", "=~", "!~":
			default:
				return fmt.Sprintf("%s: unknown matcher operator %q", path, m[1])
			}
			if err := validMatcher(m[1], m[2]); err != nil {
				return fmt.Sprintf("%s: object_matchers %s: %v", path, m[0], err)
			}
		}
		for l, re := range r.MatchRe {
			if err := validMatcher("=~", re); err != nil {
				return fmt.Sprintf("%s: match_re %s: %v", path, l, err)
			}
		}
		for _, n := range append(append([]string(nil), r.MuteTimeIntervals...), r.ActiveTimeIntervals...) {
			if !s.timeIntervalExists(n) {
				return fmt.Sprintf("%s: time interval '%s' does not exist", path, n)
			}
		}
		for i, c := range r.Routes {
			if c == nil {
				return path + ": null route"
			}
			if msg := walk(c, fmt.Sprintf("%s.routes[%d]", path, i)); msg != "" {
				return msg
			}
		}
		return ""
	}
	return walk(root, "route")
}

// Helpers.

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 10<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, errBody("bad request data: "+err.Error()))
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func errBody(msg string) map[string]string { return map[string]string{"message": msg, "traceID": ""} }

func newUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func validUID(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func cloneMap(m map[string]any) map[string]any {
	raw, _ := json.Marshal(m)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	if out == nil {
		out = map[string]any{}
	}
	return out
}

func cloneRule(r *models.ProvisionedAlertRule) *models.ProvisionedAlertRule {
	raw, _ := json.Marshal(r)
	var out models.ProvisionedAlertRule
	_ = json.Unmarshal(raw, &out)
	return &out
}

func ptr[T any](v T) *T { return &v }
