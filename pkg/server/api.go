package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"go.uber.org/zap"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/engine"
	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/report"
	"github.com/healthrouter/healthrouter/pkg/tracker"
)

// ready returns the tracker, or answers 503 and nil while state loads.
func (s *Server) ready(w http.ResponseWriter) *tracker.Tracker {
	t := s.tracker.Load()
	if t == nil {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "not ready: state is loading")
	}
	return t
}

// pathParam is the named path parameter, unescaped: requests are routed on
// their escaped path (routeOnEscapedPath), so a "/" in a host name arrives
// as %2F. It answers 400 and reports false for an invalid escape.
func pathParam(w http.ResponseWriter, r *http.Request, name string) (string, bool) {
	raw := chi.URLParam(r, name)
	v, err := url.PathUnescape(raw)
	if err != nil {
		writeError(w, http.StatusBadRequest, name+" "+strconv.Quote(capText(raw, maxEchoedPath))+" in the path is not validly escaped")
		return "", false
	}
	return v, true
}

// intParam parses an optional non-negative integer query parameter.
func intParam(r *http.Request, name string, def, max int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if errors.Is(err, strconv.ErrRange) && v[0] != '-' && max > 0 {
		n, err = max, nil // past int's range is past max too: capped like any other
	}
	if err != nil || n < 0 {
		return 0, errors.New(name + " must be a non-negative integer")
	}
	if max > 0 && n > max {
		n = max
	}
	return n, nil
}

// limitParam parses ?limit=, how many entries a list answers at most:
// def when absent, capped at max, and at least 1 when given. Zero is
// refused rather than given a meaning: it read as "none" on some lists
// and "all" on others.
func limitParam(r *http.Request, def, max int) (int, error) {
	if r.URL.Query().Get("limit") == "" {
		return def, nil
	}
	n, err := intParam(r, "limit", def, max)
	if err != nil || n < 1 {
		return 0, errors.New("limit must be an integer of at least 1")
	}
	return n, nil
}

func (s *Server) getAlerts(w http.ResponseWriter, r *http.Request) {
	t := s.ready(w)
	if t == nil {
		return
	}
	alerts := t.Alerts()
	firing, suppressed := []health.Alert{}, []health.Alert{}
	for _, a := range alerts {
		if a.Suppressed != "" {
			suppressed = append(suppressed, a)
		} else {
			firing = append(firing, a)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"firing": firing, "suppressed": suppressed})
}

func (s *Server) getRegions(w http.ResponseWriter, r *http.Request) {
	t := s.ready(w)
	if t == nil {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"regions": t.RegionInfos()})
}

func (s *Server) getHosts(w http.ResponseWriter, r *http.Request) {
	t := s.ready(w)
	if t == nil {
		return
	}
	limit, err := limitParam(r, 1000, 10000)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	offset, err := intParam(r, "offset", 0, 0)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	hosts, total := t.HostsPage(r.URL.Query().Get("region"), offset, limit)
	writeJSON(w, http.StatusOK, map[string]any{"hosts": hosts, "total": total, "offset": offset, "limit": limit})
}

func (s *Server) getHost(w http.ResponseWriter, r *http.Request) {
	t := s.ready(w)
	if t == nil {
		return
	}
	host, ok := pathParam(w, r, "host")
	if !ok {
		return
	}
	checks := t.HostChecks(host)
	if len(checks) == 0 {
		writeError(w, http.StatusNotFound, "unknown host "+strconv.Quote(capText(host, 256)))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"host": host, "checks": checks})
}

// ForgetResponse is the answer of DELETE /v1/hosts/{host}: the host
// forgotten and the check keys removed with it.
type ForgetResponse struct {
	Region    string       `json:"region"`
	Host      string       `json:"host"`
	Forgotten []health.Key `json:"forgotten"`
}

// deleteHost forgets a decommissioned host: its checks, its alerts and its
// stored state. ?region= is needed when the name is in several regions.
func (s *Server) deleteHost(w http.ResponseWriter, r *http.Request) {
	t := s.ready(w)
	if t == nil {
		return
	}
	host, ok := pathParam(w, r, "host")
	if !ok {
		return
	}
	region := r.URL.Query().Get("region")
	keys, err := t.ForgetHost(r.Context(), region, host)
	if len(keys) > 0 {
		region = keys[0].Region // resolved when not given
	}
	switch {
	case errors.Is(err, tracker.ErrUnknownHost):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, tracker.ErrAmbiguousHost):
		writeError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		// Forgotten in memory; the store keeps retrying the commit.
		writeError(w, http.StatusServiceUnavailable, "host forgotten but not yet on disk: "+err.Error())
	default:
		writeJSON(w, http.StatusOK, ForgetResponse{Region: region, Host: host, Forgotten: keys})
	}
}

func (s *Server) getExplain(w http.ResponseWriter, r *http.Request) {
	t := s.ready(w)
	if t == nil {
		return
	}
	q := r.URL.Query()
	host, region, check := q.Get("host"), q.Get("region"), q.Get("check")
	var ex engine.Explanation
	switch {
	case host != "":
		// region picks the host when its name is tracked in several.
		ex = t.Explain(region, host, check)
	case region != "" && check != "":
		ex = t.ExplainRegion(region, check)
	default:
		writeError(w, http.StatusBadRequest, "give host (optionally region and check), or region and check")
		return
	}
	if !ex.Found {
		writeJSON(w, http.StatusNotFound, ex)
		return
	}
	routeExplanation(&ex, s.cfg.PagerDuty)
	writeJSON(w, http.StatusOK, ex)
}

// routeExplanation corrects the engine's verdict by routing. The engine
// says an alert is in the alert set; whether it reaches PagerDuty depends on
// its severity and pagerduty.warning. Without PagerDuty configured, the
// alert set is the answer: whoever scrapes it routes it.
func routeExplanation(ex *engine.Explanation, pd *config.PagerDuty) {
	a := ex.Alert
	if !ex.Pages || a == nil || pd == nil || pd.Pages(a.Severity) {
		return
	}
	why := "info alerts stay on the dashboards"
	if a.Severity == health.SeverityWarning {
		why = "pagerduty.warning is none"
	}
	name := fmt.Sprintf("the host alert of %s", a.Host)
	switch {
	case a.Level == health.LevelRegion && a.Check == health.NotReporting:
		name = fmt.Sprintf("the not_reporting alert of region %s", a.Region)
	case a.Level == health.LevelRegion:
		name = fmt.Sprintf("the region alert for %s in %s", a.Check, a.Region)
	case a.Check == health.NotReporting:
		name = fmt.Sprintf("the not_reporting alert of %s", a.Host)
	}
	ex.Pages = false
	ex.Steps = append(ex.Steps, "alert set: "+ex.Decision,
		fmt.Sprintf("routing: severity %s does not reach PagerDuty (%s)", a.Severity, why))
	ex.Decision = fmt.Sprintf("does not page: %s fires at severity %s, which routing pages to no one (%s)", name, a.Severity, why)
}

func (s *Server) getTransitions(w http.ResponseWriter, r *http.Request) {
	t := s.ready(w)
	if t == nil {
		return
	}
	after, err := intParam(r, "after", 0, 0)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	limit, err := limitParam(r, 100, 10000)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	tr, err := t.Transitions(uint64(after), limit)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "reading journal: "+err.Error())
		return
	}
	if tr == nil {
		tr = []health.Transition{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"transitions": tr})
}

func (s *Server) getRejected(w http.ResponseWriter, r *http.Request) {
	t := s.ready(w)
	if t == nil {
		return
	}
	limit, err := limitParam(r, 100, 10000)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	rej, err := t.Rejected(limit)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "reading dead letters: "+err.Error())
		return
	}
	if rej == nil {
		rej = []health.Rejected{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"rejected": rej})
}

// maxConcurrentReports bounds the noise reports built at once: each scans
// the whole journal (a second or more at 100k entries), and a dozen at once
// would starve ingest and the scrapes the alert rules depend on.
const maxConcurrentReports = 2

func (s *Server) getReport(w http.ResponseWriter, r *http.Request) {
	t := s.ready(w)
	if t == nil {
		return
	}
	select {
	case s.reportSlots <- struct{}{}:
		defer func() { <-s.reportSlots }()
	default:
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusTooManyRequests, "busy: two noise reports are being built already, retry later")
		return
	}
	limit, err := limitParam(r, 0, 100000) // absent: every check
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// Pages are counted as Grafana notifies them: with this server's
	// pending periods, and an alert still firing counts once it has fired
	// that long by now.
	pending := report.PendingOf(s.cfg)
	rep, err := report.Build(func(fn func(*health.Transition) bool) error { return t.ScanTransitions(0, fn) },
		report.Options{Limit: limit, Pending: &pending, Now: s.now()})
	if err != nil {
		writeError(w, http.StatusInternalServerError, "building the report: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (s *Server) getMaintenance(w http.ResponseWriter, r *http.Request) {
	t := s.ready(w)
	if t == nil {
		return
	}
	ws := t.Windows()
	if ws == nil {
		ws = []health.Window{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"windows": ws})
}

// WindowRequest is the body of POST /v1/maintenance.
type WindowRequest struct {
	Region string    `json:"region"`
	Host   string    `json:"host,omitempty"`
	Check  string    `json:"check,omitempty"`
	Until  time.Time `json:"until"`
	Reason string    `json:"reason"`
}

const maxWindowBody = 16 << 10

func (s *Server) postMaintenance(w http.ResponseWriter, r *http.Request) {
	t := s.ready(w)
	if t == nil {
		return
	}
	var req WindowRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxWindowBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("maintenance window body exceeds %d bytes", maxWindowBody))
			return
		}
		var timeErr *time.ParseError
		if errors.As(err, &timeErr) {
			// Go's message quotes its layout, not a format people know.
			writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid maintenance window: until %q is not an RFC3339 time such as 2026-12-01T18:00:00Z", timeErr.Value))
			return
		}
		writeError(w, http.StatusBadRequest, "invalid maintenance window: "+err.Error())
		return
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "invalid maintenance window: trailing data after the object")
		return
	}
	var problems []string
	// A name of nothing but whitespace matches no event: as absent as "".
	if strings.TrimSpace(req.Region) == "" {
		problems = append(problems, "region is required")
	}
	if req.Host != "" && strings.TrimSpace(req.Host) == "" {
		problems = append(problems, "host is blank: give a host name, or none for the whole region")
	}
	if req.Until.IsZero() {
		problems = append(problems, "until is required (RFC3339)")
	}
	if strings.TrimSpace(req.Reason) == "" {
		problems = append(problems, "reason is required: say why, for whoever is on call")
	}
	for _, f := range []struct{ name, v string }{{"region", req.Region}, {"host", req.Host}, {"check", req.Check}, {"reason", req.Reason}} {
		if len(f.v) > 1024 {
			problems = append(problems, f.name+" is longer than 1024 bytes")
		} else if p := unprintable(f.v); p != "" {
			problems = append(problems, f.name+" "+p)
		}
	}
	if len(problems) > 0 {
		writeError(w, http.StatusBadRequest, "invalid maintenance window: "+strings.Join(problems, "; "))
		return
	}
	win := health.Window{ID: newID(), Region: req.Region, Host: req.Host, Check: req.Check, Until: req.Until.UTC(), Reason: req.Reason}
	ctx, cancel := context.WithTimeout(r.Context(), s.windowWait)
	defer cancel()
	added, err := t.AddWindow(ctx, win)
	if errors.Is(err, tracker.ErrInvalidWindow) {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "maintenance window: "+err.Error())
		return
	}
	warnings := windowWarnings(t, added.Window)
	// Windows silence pages: who opened which, and why, belongs in the log.
	s.log.Info("maintenance window opened", zap.String("id", added.Window.ID), zap.String("region", added.Window.Region),
		zap.String("host", added.Window.Host), zap.String("check", added.Window.Check),
		zap.Time("until", added.Window.Until), zap.String("reason", capText(added.Window.Reason, 256)),
		zap.String("remote", r.RemoteAddr))
	if added.Unconfirmed != nil {
		s.log.Warn("maintenance window in force but not yet on disk", zap.String("id", added.Window.ID),
			zap.NamedError("unconfirmed", added.Unconfirmed))
		warnings = append(warnings, unconfirmedWarning(added.Unconfirmed))
	}
	w.Header().Set("Location", "/v1/maintenance/"+added.Window.ID)
	writeJSON(w, http.StatusCreated, WindowCreated{Window: added.Window, Warnings: warnings})
}

// windowCommitWait bounds how long a maintenance change waits for its
// commit before it is answered with a warning instead: well inside the
// CLI's 30s timeout, so a slow disk does not make the operator retry a
// change that is already in force and create a second window. A change
// is never answered as failed once it is in force: the store writes its
// commits in order and retries a failed one until it succeeds.
const windowCommitWait = 10 * time.Second

// unconfirmedWarning tells the author of a window change that is in force
// why it is not yet known to be on disk.
func unconfirmedWarning(err error) string {
	return fmt.Sprintf("the change is in force, but the store has not confirmed it on disk yet (%v): "+
		"it keeps writing it, and a restart before it has would undo it; /readyz shows whether commits are failing", err)
}

// WindowCreated is the answer to POST /v1/maintenance: the window, and
// what may make it cover less than its author meant.
type WindowCreated struct {
	health.Window
	// Warnings: a region or host no result has named yet (the window is
	// kept, as it may precede them, but a misspelled name covers nothing),
	// or a window in force that the store has not confirmed on disk yet.
	Warnings []string `json:"warnings,omitempty"`
}

func windowWarnings(t *tracker.Tracker, win health.Window) []string {
	if _, hosts := t.HostsPage(win.Region, 0, 0); hosts == 0 {
		return []string{fmt.Sprintf("no host has reported in region %q: the window covers nothing until one does; check the name", win.Region)}
	}
	if win.Host == "" {
		return nil
	}
	for _, c := range t.HostChecks(win.Host) {
		if c.Region == win.Region {
			return nil
		}
	}
	return []string{fmt.Sprintf("host %q has not reported in region %q: the window covers nothing until it does; check the names", win.Host, win.Region)}
}

// unprintable says what keeps s from being printable UTF-8 text, as the
// decoder holds event fields to: windows are listed on terminals and
// matched against event names, so a control character in one is either
// an escape sequence or a window that can never match. "" when s is fine.
func unprintable(s string) string {
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return "contains control character " + strconv.QuoteRune(rune(c))
		}
	}
	return ""
}

func (s *Server) deleteMaintenance(w http.ResponseWriter, r *http.Request) {
	t := s.ready(w)
	if t == nil {
		return
	}
	id, ok := pathParam(w, r, "id")
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.windowWait)
	defer cancel()
	removed, err := t.RemoveWindow(ctx, id)
	if err == nil {
		s.log.Info("maintenance window ended early", zap.String("id", id), zap.String("remote", r.RemoteAddr))
	}
	switch {
	case errors.Is(err, tracker.ErrUnknownWindow):
		writeError(w, http.StatusNotFound, "no active maintenance window "+strconv.Quote(capText(id, 256)))
	case err != nil:
		writeError(w, http.StatusInternalServerError, "maintenance window: "+err.Error())
	case removed.Unconfirmed != nil:
		// A 204 has no body: the warning needs one.
		s.log.Warn("maintenance window ended but its removal is not yet on disk", zap.String("id", id),
			zap.NamedError("unconfirmed", removed.Unconfirmed))
		writeJSON(w, http.StatusOK, WindowEnded{ID: id, Warnings: []string{unconfirmedWarning(removed.Unconfirmed)}})
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// WindowEnded is the answer to DELETE /v1/maintenance/{id} when there is
// something to say (otherwise 204, no body): the window has ended, but the
// store has not confirmed it on disk yet.
type WindowEnded struct {
	ID       string   `json:"id"`
	Warnings []string `json:"warnings"`
}

// newID is a random window id: unguessable, so ids do not leak how many
// windows exist, and unique without coordination between an HA pair.
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
