package grafanatest

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/grafana/grafana-openapi-client-go/models"
)

// muteTiming is a mute timing (an Alertmanager time interval) as Grafana's
// provisioning API reads and answers it. The client's
// models.MuteTimeInterval lacks version and provenance, which Grafana sends
// and a write may carry.
type muteTiming struct {
	Name          string                     `json:"name"`
	TimeIntervals []*models.TimeIntervalItem `json:"time_intervals"`
	Version       string                     `json:"version,omitempty"`
	Provenance    string                     `json:"provenance,omitempty"`
}

// AddMuteTiming stores a mute timing as another writer would (the UI or the
// Alertmanager configuration API: provenance none), after checking it as a
// POST would. Routes and rule notification settings may then name it.
func (s *Server) AddMuteTiming(mt *models.MuteTimeInterval) error {
	if mt == nil {
		return errors.New("mute timing: nil")
	}
	in := &muteTiming{Name: mt.Name, TimeIntervals: mt.TimeIntervals}
	s.mu.Lock()
	defer s.mu.Unlock()
	if msg := s.createMuteTiming(in, ProvenanceNone); msg != "" {
		return fmt.Errorf("mute timing %q: %s", mt.Name, msg)
	}
	return nil
}

// MuteTiming returns the stored mute timing called name.
func (s *Server) MuteTiming(name string) (*models.MuteTimeInterval, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mt, ok := s.muteTimings[name]
	if !ok {
		return nil, false
	}
	c := mt.clone()
	return &models.MuteTimeInterval{Name: c.Name, TimeIntervals: c.TimeIntervals}, true
}

// timeIntervalExists reports whether routes and rules may name the time
// interval, as mute or as active interval. Callers hold s.mu.
func (s *Server) timeIntervalExists(name string) bool { return s.muteTimings[name] != nil }

// timeIntervalReferenced reports whether a policy route or a rule's
// notification settings name the time interval. Callers hold s.mu.
func (s *Server) timeIntervalReferenced(name string) bool {
	if s.policy.referencesTimeInterval(name) {
		return true
	}
	for _, sr := range s.rules {
		ns := sr.rule.NotificationSettings
		if ns != nil && (slices.Contains(ns.MuteTimeIntervals, name) || slices.Contains(ns.ActiveTimeIntervals, name)) {
			return true
		}
	}
	return false
}

// referencesTimeInterval reports whether the route or one below it names
// the time interval.
func (r *route) referencesTimeInterval(name string) bool {
	if r == nil {
		return false
	}
	if slices.Contains(r.MuteTimeIntervals, name) || slices.Contains(r.ActiveTimeIntervals, name) {
		return true
	}
	for _, c := range r.Routes {
		if c.referencesTimeInterval(name) {
			return true
		}
	}
	return false
}

// createMuteTiming validates and stores a new mute timing, or says why it
// cannot. Callers hold s.mu.
func (s *Server) createMuteTiming(mt *muteTiming, prov string) string {
	if msg := validateMuteTiming(mt); msg != "" {
		return msg
	}
	if s.muteTimings[mt.Name] != nil {
		return "a mute timing with this name already exists"
	}
	stored := mt.clone()
	stored.Provenance = prov
	stored.Version = stored.contentVersion()
	s.muteTimings[stored.Name] = stored
	return ""
}

func (s *Server) handleListMuteTimings(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.muteTimings))
	for n := range s.muteTimings {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]*muteTiming, 0, len(names))
	for _, n := range names {
		out = append(out, s.muteTimings[n].clone())
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleGetMuteTiming(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mt := s.muteTimings[r.PathValue("name")]
	if mt == nil {
		writeJSON(w, http.StatusNotFound, errBody("mute timing not found"))
		return
	}
	writeJSON(w, http.StatusOK, mt.clone())
}

func (s *Server) handlePostMuteTiming(w http.ResponseWriter, r *http.Request) {
	var mt muteTiming
	if !decode(w, r, &mt) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if msg := s.createMuteTiming(&mt, provenanceOf(r)); msg != "" {
		writeJSON(w, http.StatusBadRequest, errBody("invalid mute timing: "+msg))
		return
	}
	writeJSON(w, http.StatusCreated, s.muteTimings[mt.Name].clone())
}

// handlePutMuteTiming replaces the time intervals of the mute timing named
// in the path. A version in the body must be the stored one. Renaming is
// not modelled: a body naming another timing is refused.
func (s *Server) handlePutMuteTiming(w http.ResponseWriter, r *http.Request) {
	var mt muteTiming
	if !decode(w, r, &mt) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	name := r.PathValue("name")
	old := s.muteTimings[name]
	if old == nil {
		writeJSON(w, http.StatusNotFound, errBody("mute timing not found"))
		return
	}
	if mt.Name == "" {
		mt.Name = name
	}
	if mt.Name != name {
		writeJSON(w, http.StatusBadRequest, errBody(fmt.Sprintf("invalid mute timing: name %q does not match %q in the path", mt.Name, name)))
		return
	}
	if msg := validateMuteTiming(&mt); msg != "" {
		writeJSON(w, http.StatusBadRequest, errBody("invalid mute timing: "+msg))
		return
	}
	if mt.Version != "" && mt.Version != old.Version {
		writeJSON(w, http.StatusConflict, errBody("version conflict: the mute timing was changed since it was read"))
		return
	}
	stored := mt.clone()
	stored.Provenance = provenanceOf(r)
	stored.Version = stored.contentVersion()
	s.muteTimings[name] = stored
	writeJSON(w, http.StatusAccepted, stored.clone())
}

// handleDeleteMuteTiming deletes a mute timing no route or rule names. A
// version in the query must be the stored one. Deleting one that does not
// exist succeeds: the caller's goal holds.
func (s *Server) handleDeleteMuteTiming(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := r.PathValue("name")
	mt := s.muteTimings[name]
	if mt == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if v := r.URL.Query().Get("version"); v != "" && v != mt.Version {
		writeJSON(w, http.StatusConflict, errBody("version conflict: the mute timing was changed since it was read"))
		return
	}
	if s.timeIntervalReferenced(name) {
		writeJSON(w, http.StatusConflict, errBody("mute timing "+name+" is used by a notification policy or alert rule"))
		return
	}
	delete(s.muteTimings, name)
	w.WriteHeader(http.StatusNoContent)
}

// contentVersion is a digest of the timing's content: like Grafana's, it
// changes exactly when the time intervals do.
func (mt *muteTiming) contentVersion() string {
	raw, err := json.Marshal(mt.TimeIntervals)
	if err != nil {
		panic(fmt.Sprintf("grafanatest: encoding a mute timing: %v", err)) // plain data; cannot fail
	}
	h := fnv.New64a()
	_, _ = h.Write(raw)
	return strconv.FormatUint(h.Sum64(), 16)
}

func (mt *muteTiming) clone() *muteTiming {
	raw, err := json.Marshal(mt)
	if err != nil {
		panic(fmt.Sprintf("grafanatest: encoding a mute timing: %v", err)) // plain data; cannot fail
	}
	var out muteTiming
	_ = json.Unmarshal(raw, &out)
	return &out
}

// validateMuteTiming checks a mute timing as Alertmanager's time interval
// parser (prometheus/alertmanager timeinterval) does: a name, clock times
// from 00:00 to 24:00, and ranges of weekdays, days of month, months and
// years that are well formed and in order.
func validateMuteTiming(mt *muteTiming) string {
	if strings.TrimSpace(mt.Name) == "" {
		return "name must not be empty"
	}
	for i, ti := range mt.TimeIntervals {
		if ti == nil {
			return fmt.Sprintf("time_intervals[%d] is null", i)
		}
		if msg := validateTimeInterval(ti); msg != "" {
			return fmt.Sprintf("time_intervals[%d]: %s", i, msg)
		}
	}
	return ""
}

var (
	weekdayNumbers = map[string]int{
		"sunday": 0, "monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4, "friday": 5, "saturday": 6,
	}
	monthNumbers = map[string]int{
		"january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
		"august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
	}
)

func validateTimeInterval(ti *models.TimeIntervalItem) string {
	for i, tr := range ti.Times {
		if tr == nil {
			return fmt.Sprintf("times[%d] is null", i)
		}
		start, okS := clockMinutes(tr.StartTime)
		end, okE := clockMinutes(tr.EndTime)
		switch {
		case !okS:
			return fmt.Sprintf("times[%d]: invalid start_time %q, want HH:MM", i, tr.StartTime)
		case !okE:
			return fmt.Sprintf("times[%d]: invalid end_time %q, want HH:MM", i, tr.EndTime)
		case start >= end:
			return fmt.Sprintf("times[%d]: start_time %s must be before end_time %s", i, tr.StartTime, tr.EndTime)
		}
	}
	ranges := []struct {
		name   string
		values []string
		parse  func(string) (int, bool)
	}{
		{"weekdays", ti.Weekdays, weekday},
		{"months", ti.Months, memberOf(1, 12, monthNumbers)},
		{"years", ti.Years, memberOf(0, 9999, nil)},
	}
	for _, f := range ranges {
		for _, v := range f.values {
			a, b, msg := parseRange(v, f.parse)
			if msg == "" && a > b {
				msg = fmt.Sprintf("range %q ends before it starts", v)
			}
			if msg != "" {
				return fmt.Sprintf("%s: %s", f.name, msg)
			}
		}
	}
	for _, v := range ti.DaysOfMonth {
		if msg := checkDaysOfMonth(v); msg != "" {
			return "days_of_month: " + msg
		}
	}
	if ti.Location != "" {
		if _, err := time.LoadLocation(ti.Location); err != nil {
			return fmt.Sprintf("unknown location %q", ti.Location)
		}
	}
	return ""
}

// weekday reads a day of the week by name (case-insensitive); Sunday is 0.
func weekday(s string) (int, bool) {
	n, ok := weekdayNumbers[strings.ToLower(s)]
	return n, ok
}

// memberOf reads a range member: one of names (case-insensitive), or a
// number from lo to hi.
func memberOf(lo, hi int, names map[string]int) func(string) (int, bool) {
	return func(s string) (int, bool) {
		if n, ok := names[strings.ToLower(s)]; ok {
			return n, true
		}
		n, err := strconv.Atoi(s)
		return n, err == nil && n >= lo && n <= hi
	}
}

// parseRange reads a value or an inclusive range "a:b" of values, each read
// by parse. A single value is the range from it to itself.
func parseRange(v string, parse func(string) (int, bool)) (begin, end int, msg string) {
	lo, hi, isRange := strings.Cut(v, ":")
	if !isRange {
		hi = lo
	}
	begin, okB := parse(lo)
	end, okE := parse(hi)
	switch {
	case !okB:
		return 0, 0, fmt.Sprintf("invalid value %q", lo)
	case !okE:
		return 0, 0, fmt.Sprintf("invalid value %q", hi)
	}
	return begin, end, ""
}

// checkDaysOfMonth checks a day or range of days of the month, where -1 is
// the last day. A range that starts counting from the end must end so too,
// and one that ends before it starts in a 28-day month is refused, as
// Alertmanager refuses them.
func checkDaysOfMonth(v string) string {
	begin, end, msg := parseRange(v, func(s string) (int, bool) {
		n, err := strconv.Atoi(s)
		return n, err == nil && n != 0 && n >= -31 && n <= 31
	})
	if msg != "" {
		return msg
	}
	if begin < 0 && end > 0 {
		return fmt.Sprintf("range %q starts from the end of the month and must end so too", v)
	}
	inShortMonth := func(d int) int {
		if d < 0 {
			return 28 + d
		}
		return d
	}
	if inShortMonth(begin) > inShortMonth(end) {
		return fmt.Sprintf("range %q ends before it starts", v)
	}
	return ""
}

// clockMinutes reads an HH:MM time of day from 00:00 to 24:00.
func clockMinutes(s string) (int, bool) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, false
	}
	hh, errH := strconv.Atoi(h)
	mm, errM := strconv.Atoi(m)
	if errH != nil || errM != nil || hh < 0 || mm < 0 || mm > 59 || hh > 24 || (hh == 24 && mm != 0) {
		return 0, false
	}
	return hh*60 + mm, true
}
