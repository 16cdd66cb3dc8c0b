package grafana

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/grafana/grafana-openapi-client-go/models"
)

// Grafana stores rules in a slightly different form than they are sent:
// durations as "5m" not "5m0s", query models with defaults filled in, empty
// time ranges as zeros. The comparisons below look through those differences
// so that a rule Grafana holds unchanged compares equal, and a reconcile
// with nothing to do sends nothing.

// Defaults Grafana adds to query models (AlertQuery.PreSave).
const (
	defaultIntervalMs    = 1000
	defaultMaxDataPoints = 43200
)

// diffRule lists how a rule Grafana holds (have) differs from the desired
// one (want), as short human-readable lines. Empty means equal.
func diffRule(want, have *models.ProvisionedAlertRule) []string {
	var d []string
	if s(want.Title) != s(have.Title) {
		d = append(d, fmt.Sprintf("title %q -> %q", s(have.Title), s(want.Title)))
	}
	if s(want.FolderUID) != s(have.FolderUID) || s(want.RuleGroup) != s(have.RuleGroup) {
		d = append(d, fmt.Sprintf("moved from %s/%s", s(have.FolderUID), s(have.RuleGroup)))
	}
	if s(want.Condition) != s(have.Condition) {
		d = append(d, fmt.Sprintf("condition %s -> %s", s(have.Condition), s(want.Condition)))
	}
	d = append(d, diffQueries(want.Data, have.Data)...)
	if wf, hf := dur(want.For), dur(have.For); wf != hf {
		d = append(d, fmt.Sprintf("for %s -> %s", promDuration(hf), promDuration(wf)))
	}
	if want.KeepFiringFor != have.KeepFiringFor {
		d = append(d, fmt.Sprintf("keep_firing_for %s -> %s",
			promDuration(time.Duration(have.KeepFiringFor)), promDuration(time.Duration(want.KeepFiringFor))))
	}
	if s(want.NoDataState) != s(have.NoDataState) {
		d = append(d, fmt.Sprintf("noDataState %s -> %s", s(have.NoDataState), s(want.NoDataState)))
	}
	if s(want.ExecErrState) != s(have.ExecErrState) {
		d = append(d, fmt.Sprintf("execErrState %s -> %s", s(have.ExecErrState), s(want.ExecErrState)))
	}
	if want.MissingSeriesEvalsToResolve != have.MissingSeriesEvalsToResolve {
		d = append(d, fmt.Sprintf("missingSeriesEvalsToResolve %s -> %s",
			evalsToResolve(have.MissingSeriesEvalsToResolve), evalsToResolve(want.MissingSeriesEvalsToResolve)))
	}
	if wo, ho := want.OrgID, have.OrgID; wo != nil && ho != nil && *wo != *ho {
		d = append(d, fmt.Sprintf("orgID %d -> %d", *ho, *wo))
	}
	if want.IsPaused != have.IsPaused {
		d = append(d, fmt.Sprintf("isPaused %t -> %t", have.IsPaused, want.IsPaused))
	}
	if l := diffLabels(want.Labels, have.Labels); l != "" {
		d = append(d, "labels "+l)
	}
	if a := changedKeys(want.Annotations, have.Annotations); len(a) > 0 {
		d = append(d, "annotations changed: "+strings.Join(a, ", "))
	}
	d = append(d, diffNotification(want.NotificationSettings, have.NotificationSettings)...)
	// Provenance is not compared: Grafana stamps the written provenance on
	// every rule of a group it writes, changed or not, so a rule's
	// provenance follows its group's next write. Groups are not rewritten
	// for provenance alone, which would rewrite every group at once when
	// grafana.disable_provenance is switched; the reconciler notes the
	// difference instead.
	if want.Record != nil || have.Record != nil {
		if !reflect.DeepEqual(want.Record, have.Record) {
			d = append(d, "recording settings changed")
		}
	}
	return d
}

// evalsToResolve renders missingSeriesEvalsToResolve; 0 leaves it to
// Grafana's default.
func evalsToResolve(n int64) string {
	if n == 0 {
		return "default"
	}
	return strconv.FormatInt(n, 10)
}

func s(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func dur[T ~int64](p *T) time.Duration {
	if p == nil {
		return 0
	}
	return time.Duration(*p)
}

func diffQueries(want, have []*models.AlertQuery) []string {
	refs := func(qs []*models.AlertQuery) []string {
		out := make([]string, len(qs))
		for i, q := range qs {
			out[i] = q.RefID
		}
		return out
	}
	if len(want) != len(have) {
		return []string{fmt.Sprintf("queries %s -> %s", strings.Join(refs(have), ","), strings.Join(refs(want), ","))}
	}
	var d []string
	for i := range want {
		w, h := want[i], have[i]
		if w.RefID != h.RefID {
			d = append(d, fmt.Sprintf("query %d: refId %s -> %s", i, h.RefID, w.RefID))
			continue
		}
		wm, hm := normalModel(w.Model), normalModel(h.Model)
		if we, he := wm["expr"], hm["expr"]; we != he {
			d = append(d, fmt.Sprintf("query %s: expr %v -> %v", w.RefID, he, we))
			delete(wm, "expr")
			delete(hm, "expr")
		}
		switch {
		case w.DatasourceUID != h.DatasourceUID:
			d = append(d, fmt.Sprintf("query %s: datasource %s -> %s", w.RefID, h.DatasourceUID, w.DatasourceUID))
		case timeRange(w.RelativeTimeRange) != timeRange(h.RelativeTimeRange):
			d = append(d, fmt.Sprintf("query %s: relativeTimeRange %v -> %v", w.RefID, timeRange(h.RelativeTimeRange), timeRange(w.RelativeTimeRange)))
		case queryType(w) != queryType(h) || !reflect.DeepEqual(wm, hm):
			d = append(d, fmt.Sprintf("query %s: model changed", w.RefID))
		}
	}
	return d
}

func timeRange(r *models.RelativeTimeRange) [2]int64 {
	if r == nil {
		return [2]int64{}
	}
	return [2]int64{int64(r.From), int64(r.To)}
}

// queryType is the query's type; Grafana copies the model's into it.
func queryType(q *models.AlertQuery) string {
	if q.QueryType != "" {
		return q.QueryType
	}
	if m, ok := q.Model.(map[string]any); ok {
		if t, ok := m["queryType"].(string); ok {
			return t
		}
	}
	return ""
}

// normalModel returns a query model without the defaults Grafana fills in,
// so a stored model equals the one sent. Models decoded from Grafana's JSON
// and the ones healthrouter builds are both plain JSON values (maps, slices,
// float64, string, bool), so a shallow copy suffices; anything else goes
// through JSON first.
func normalModel(m any) map[string]any {
	src, ok := m.(map[string]any)
	if !ok {
		raw, err := json.Marshal(m)
		if err != nil {
			return map[string]any{"unencodable": fmt.Sprint(m)}
		}
		if err := json.Unmarshal(raw, &src); err != nil || src == nil {
			return map[string]any{}
		}
	}
	out := make(map[string]any, len(src))
	for k, v := range src {
		out[k] = v
	}
	if v, ok := out["intervalMs"].(float64); ok && v == defaultIntervalMs {
		delete(out, "intervalMs")
	}
	if v, ok := out["maxDataPoints"].(float64); ok && v == defaultMaxDataPoints {
		delete(out, "maxDataPoints")
	}
	delete(out, "queryType")
	return out
}

// diffLabels renders label changes as +k=v -k ~k=a->b, sorted.
func diffLabels(want, have map[string]string) string {
	var parts []string
	for _, k := range unionKeys(want, have) {
		w, inW := want[k]
		h, inH := have[k]
		switch {
		case inW && !inH:
			parts = append(parts, "+"+k+"="+w)
		case !inW && inH:
			parts = append(parts, "-"+k)
		case w != h:
			parts = append(parts, "~"+k+"="+h+"->"+w)
		}
	}
	return strings.Join(parts, " ")
}

// changedKeys lists keys whose values differ (annotations are long; their
// names say enough).
func changedKeys(want, have map[string]string) []string {
	var out []string
	for _, k := range unionKeys(want, have) {
		w, inW := want[k]
		h, inH := have[k]
		if inW != inH || w != h {
			out = append(out, k)
		}
	}
	return out
}

// unionKeys lists the keys of both maps, sorted.
func unionKeys[V any](a, b map[string]V) []string {
	seen := map[string]bool{}
	var keys []string
	for _, m := range []map[string]V{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	return keys
}

func diffNotification(want, have *models.AlertRuleNotificationSettings) []string {
	if want == nil && have == nil {
		return nil
	}
	if want == nil {
		return []string{"notification_settings removed (routing through the policy tree)"}
	}
	if have == nil {
		return []string{"notification_settings added: receiver " + s(want.Receiver)}
	}
	var d []string
	if s(want.Receiver) != s(have.Receiver) {
		d = append(d, fmt.Sprintf("receiver %s -> %s", s(have.Receiver), s(want.Receiver)))
	}
	if !sameSet(want.GroupBy, have.GroupBy) {
		d = append(d, fmt.Sprintf("group_by %v -> %v", have.GroupBy, want.GroupBy))
	}
	for _, f := range []struct{ name, w, h string }{
		{"group_wait", want.GroupWait, have.GroupWait},
		{"group_interval", want.GroupInterval, have.GroupInterval},
		{"repeat_interval", want.RepeatInterval, have.RepeatInterval},
	} {
		if !sameDuration(f.w, f.h) {
			d = append(d, fmt.Sprintf("%s %q -> %q", f.name, f.h, f.w))
		}
	}
	if !sameSet(want.MuteTimeIntervals, have.MuteTimeIntervals) || !sameSet(want.ActiveTimeIntervals, have.ActiveTimeIntervals) {
		d = append(d, "time intervals changed")
	}
	return d
}

// sameSet compares label lists as sets; nil equals empty.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	x := append([]string(nil), a...)
	y := append([]string(nil), b...)
	sort.Strings(x)
	sort.Strings(y)
	for i := range x {
		if x[i] != y[i] {
			return false
		}
	}
	return true
}

func sameDuration(a, b string) bool {
	if a == b {
		return true
	}
	da, okA := parseDuration(a)
	db, okB := parseDuration(b)
	return okA && okB && da == db
}

var promDurationRE = regexp.MustCompile(`^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$`)

// parseDuration reads Go ("1h30m0s") and Prometheus ("1d", "90s") durations.
func parseDuration(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if v == "0" {
		return 0, true
	}
	if d, err := time.ParseDuration(v); err == nil {
		return d, true
	}
	m := promDurationRE.FindStringSubmatch(v)
	if m == nil {
		return 0, false
	}
	units := []time.Duration{365 * 24 * time.Hour, 7 * 24 * time.Hour, 24 * time.Hour, time.Hour, time.Minute, time.Second, time.Millisecond}
	var d time.Duration
	for i, u := range units {
		if m[i+1] == "" {
			continue
		}
		n, err := strconv.ParseInt(m[i+1], 10, 64)
		if err != nil {
			return 0, false
		}
		d += time.Duration(n) * u
	}
	return d, true
}

// Contact points.

// diffContactPoint compares everything but the integration key and its
// fingerprint, which are compared separately.
func diffContactPoint(want, have *models.EmbeddedContactPoint) []string {
	var d []string
	if want.Name != have.Name {
		d = append(d, fmt.Sprintf("name %s -> %s", have.Name, want.Name))
	}
	if s(want.Type) != s(have.Type) {
		d = append(d, fmt.Sprintf("type %s -> %s", s(have.Type), s(want.Type)))
	}
	if want.DisableResolveMessage != have.DisableResolveMessage {
		d = append(d, fmt.Sprintf("disableResolveMessage %t -> %t", have.DisableResolveMessage, want.DisableResolveMessage))
	}
	if want.Provenance != have.Provenance && !provenanceLocked(want.Provenance, have.Provenance) && provenanceWritable(have.Provenance) {
		d = append(d, fmt.Sprintf("provenance %q -> %q", have.Provenance, want.Provenance))
	}
	ws, hs := settingsMap(want.Settings), settingsMap(have.Settings)
	for _, m := range []map[string]any{ws, hs} {
		delete(m, "integrationKey")
		delete(m, keyFingerprintSetting)
	}
	var changed []string
	for _, k := range unionKeys(ws, hs) {
		if !reflect.DeepEqual(ws[k], hs[k]) {
			changed = append(changed, k)
		}
	}
	if len(changed) > 0 {
		d = append(d, "settings changed: "+strings.Join(changed, ", "))
	}
	return d
}

// provenanceLocked reports whether Grafana refuses to change a contact
// point's or the policy tree's provenance from have to want. Those
// endpoints never clear a provenance ("cannot change provenance from 'api'
// to ”"), so a write asking to fails every time; such objects are written
// keeping the provenance they have, which works only for api
// (provenanceWritable). Rule group writes may clear api (groupCanStamp).
func provenanceLocked[W, H ~string](want W, have H) bool { return want == "" && have != "" }

// provenanceWritable reports whether healthrouter can write an object
// Grafana holds with provenance have. Grafana lets an API write keep the
// stored provenance or replace none, and healthrouter writes api or none:
// an object with any other provenance ("file", from Grafana's provisioning
// files) is read-only to it.
func provenanceWritable[H ~string](have H) bool { return have == "" || have == "api" }

// settingsMap turns contact-point settings into plain JSON values.
func settingsMap(v any) map[string]any {
	raw, err := json.Marshal(v)
	if err != nil {
		return map[string]any{}
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil || m == nil {
		return map[string]any{}
	}
	return m
}

// Policies.

// isManagedRoute reports whether a policy route is healthrouter's: it
// matches managed_by=healthrouter.
func isManagedRoute(r *models.Route) bool {
	if r == nil {
		return false
	}
	for _, m := range r.ObjectMatchers {
		if len(m) == 3 && m[0] == ManagedByLabel && m[1] == "=" && m[2] == ManagedByValue {
			return true
		}
	}
	return r.Match[ManagedByLabel] == ManagedByValue
}
