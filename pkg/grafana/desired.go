package grafana

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-openapi/strfmt"
	"github.com/grafana/grafana-openapi-client-go/models"

	"github.com/healthrouter/healthrouter/pkg/config"
)

// Metric names the rules query (DESIGN §3: a contract with /metrics).
const (
	metricAlert     = "healthrouter_alert"
	metricAlertTeam = "healthrouter_alert_team"
	metricLastEvent = "healthrouter_last_event_timestamp_seconds"
)

// Rule states. Host and region rules: no data means no alert (the metric
// exists only while an alert is active), and a query error keeps the last
// state: otherwise one Prometheus outage would page once per rule, the storm
// healthrouter exists to prevent; the watchdog pages for the outage once.
const (
	stateOK       = "OK"
	stateAlerting = "Alerting"
	stateKeepLast = "KeepLast"
)

// exprDatasource is the uid Grafana gives server-side expressions.
const exprDatasource = "__expr__"

// keyFingerprintSetting is the contact-point setting holding a fingerprint of
// the routing key last written. Grafana returns the key itself only as
// "[REDACTED]", so the fingerprint is how a reconcile knows the key is
// unchanged and need not be rewritten. It is a truncated SHA-256 of a 128-bit
// random key: it identifies the key without revealing it.
const keyFingerprintSetting = "healthrouter_key_fingerprint"

// Region is a region healthrouter has seen events for.
type Region struct {
	Name string
	// LastSeen is the newest event from the region; zero means unknown,
	// and a region with an unknown last-seen time is never pruned.
	LastSeen time.Time
}

// RegionSource lists the regions seen so far.
type RegionSource interface {
	Regions() []Region
}

// desiredState is everything healthrouter wants Grafana to hold.
type desiredState struct {
	folderUID, folderTitle string
	// groups: the pipeline group first, then regions by name.
	groups []*desiredGroup
	// contactPoints by routing key name.
	contactPoints []*desiredContactPoint
	// policyRoute is healthrouter's sub-route of the notification policy
	// tree in policy mode; nil in notification_settings mode.
	policyRoute *models.Route
	// regions known to the caller, for pruning decisions.
	regions map[string]Region
	// stale are regions not seen for prune_after, with pruning on.
	stale map[string]Region
}

type desiredGroup struct {
	name     string
	region   string // empty for the pipeline group
	interval int64  // seconds
	rules    []*models.ProvisionedAlertRule
}

type desiredContactPoint struct {
	key    string // routing key name in the config
	envVar string // where the key comes from, for messages
	secret config.Secret
	// cp is the contact point without its integration key.
	cp          *models.EmbeddedContactPoint
	fingerprint string // empty when the key is not in the environment
}

// builder derives the desired state from the configuration.
type builder struct {
	g           *config.Grafana
	pd          *config.PagerDuty
	externalURL string
	severities  []string
	provenance  models.Provenance
}

func newBuilder(cfg *config.Config) (*builder, error) {
	if cfg.Grafana == nil {
		return nil, fmt.Errorf("grafana provisioning is not configured (no grafana section)")
	}
	if cfg.PagerDuty == nil || len(cfg.PagerDuty.RoutingKeys) == 0 {
		return nil, fmt.Errorf("grafana provisioning needs pagerduty.routing_keys: every rule pages through a PagerDuty contact point")
	}
	if _, ok := cfg.PagerDuty.RoutingKeys[defaultKey]; !ok {
		return nil, fmt.Errorf("pagerduty.routing_keys needs a key named %q", defaultKey)
	}
	for i, r := range cfg.PagerDuty.Routes {
		if _, ok := cfg.PagerDuty.RoutingKeys[r.Key]; !ok {
			return nil, fmt.Errorf("pagerduty.routes[%d]: key %q is not in pagerduty.routing_keys", i, r.Key)
		}
	}
	iv := cfg.Grafana.Interval.D()
	if iv <= 0 || iv%(10*time.Second) != 0 {
		return nil, fmt.Errorf("grafana.interval %s: must be a positive multiple of 10s", iv)
	}
	if !validUID(cfg.Grafana.FolderUID) {
		return nil, fmt.Errorf("grafana.folder_uid %q: must be 1 to 40 letters, digits, - or _", cfg.Grafana.FolderUID)
	}
	ext := cfg.LinkURL()
	b := &builder{
		g:           cfg.Grafana,
		pd:          cfg.PagerDuty,
		externalURL: ext,
		severities:  pagingSeverities(cfg.PagerDuty),
		provenance:  "api",
	}
	if cfg.Grafana.DisableProvenance {
		b.provenance = ""
	}
	return b, nil
}

func (b *builder) policyMode() bool { return b.g.Routing == config.RoutingPolicy }

// build computes the desired state for the given regions at now.
func (b *builder) build(regions []Region, now time.Time) *desiredState {
	d := &desiredState{
		folderUID:   b.g.FolderUID,
		folderTitle: b.g.FolderTitle,
		regions:     map[string]Region{},
		stale:       map[string]Region{},
	}
	if d.folderTitle == "" {
		d.folderTitle = b.g.FolderUID
	}
	d.groups = append(d.groups, b.pipelineGroup())

	var names []string
	for _, r := range regions {
		if r.Name == "" {
			continue
		}
		if prev, dup := d.regions[r.Name]; dup {
			if r.LastSeen.After(prev.LastSeen) {
				d.regions[r.Name] = r
			}
			continue
		}
		d.regions[r.Name] = r
		names = append(names, r.Name)
	}
	sort.Strings(names)
	for _, name := range names {
		r := d.regions[name]
		if b.g.Prune && !r.LastSeen.IsZero() && now.Sub(r.LastSeen) > b.g.PruneAfter.D() {
			d.stale[name] = r
			continue
		}
		d.groups = append(d.groups, b.regionGroup(name))
	}

	for _, key := range slices.Sorted(maps.Keys(b.pd.RoutingKeys)) {
		d.contactPoints = append(d.contactPoints, b.contactPoint(key))
	}
	if b.policyMode() {
		d.policyRoute = b.policyRoute()
	}
	return d
}

func (b *builder) intervalSeconds() int64 { return int64(b.g.Interval.D() / time.Second) }

func (b *builder) regionGroup(region string) *desiredGroup {
	g := &desiredGroup{name: groupName(region), region: region, interval: b.intervalSeconds()}
	for _, level := range []string{levelHost, levelRegion} {
		routes := []ruleRoute{{index: -1, key: defaultKey}}
		if !b.policyMode() {
			routes = routesFor(b.pd, region, level)
		}
		for _, rr := range routes {
			g.rules = append(g.rules, b.alertRule(g.name, region, level, rr))
		}
	}
	return g
}

// alertRule builds the multi-dimensional rule for one level of one region
// (and, in notification_settings mode, one route's share of it).
func (b *builder) alertRule(group, region, level string, rr ruleRoute) *models.ProvisionedAlertRule {
	kind := level + routeSuffix(rr)
	labels := map[string]string{ManagedByLabel: ManagedByValue, "level": level, "region": region}
	for l, v := range rr.match {
		labels[l] = v
	}
	var about string
	var pending time.Duration
	var ann map[string]string
	if level == levelHost {
		about = ": host failing checks"
		pending = b.g.Pending.Host.D()
		ann = b.hostAnnotations()
	} else {
		about = ": check failing region-wide"
		pending = b.g.Pending.Region.D()
		ann = b.regionAnnotations()
	}
	if rr.index >= 0 {
		about += " [" + describeMatch(rr.match) + "]"
	}
	r := b.rule(makeUID(UIDPrefix+kind+"-", region), group, ruleTitle(group, about),
		b.alertExpr(level, region, rr), "gt", 0, pending)
	r.Labels = labels
	r.Annotations = ann
	r.NoDataState = ptr(stateOK)
	r.ExecErrState = ptr(stateKeepLast)
	if !b.policyMode() {
		r.NotificationSettings = b.notificationSettings(rr.key)
	}
	return r
}

// alertExpr selects one region's healthrouter_alert series of one level and
// one route's share, and collapses an HA pair (two targets differing by
// instance, pod and the like) into one series per alert with max by.
func (b *builder) alertExpr(level, region string, rr ruleRoute) string {
	neq := map[string][]string{}
	var unless []string
	for _, ex := range rr.exclude {
		if len(ex) == 1 {
			if v, ok := ex["team"]; !ok {
				for l, v := range ex {
					neq[l] = append(neq[l], v)
				}
				continue
			} else if v == "" {
				continue
			}
		}
		unless = append(unless, b.routeSelector(level, region, ex, nil))
	}
	expr := b.routeSelector(level, region, rr.want, neq)
	for _, u := range unless {
		expr += " unless " + u
	}
	by := "region, host, check, severity"
	if level == levelRegion {
		by = "region, check, severity"
	}
	if b.policyMode() && b.routesMatchTeam() {
		// The policy's child routes match on team: give each alert its
		// team label, keeping the alerts that have none.
		team := "max by (region, host, check, team) (" +
			promSelector(metricAlertTeam, map[string]string{"level": level, "region": region}, nil, nil) + ")"
		expr = "(" + expr + ") * on (region, host, check) group_left (team) " + team +
			" or on (region, host, check) (" + expr + ")"
		by += ", team"
	}
	return "max by (" + by + ") (" + expr + ")"
}

// routesMatchTeam reports whether any PagerDuty route matches on team.
func (b *builder) routesMatchTeam() bool {
	for _, r := range b.pd.Routes {
		if _, ok := r.Match["team"]; ok {
			return true
		}
	}
	return false
}

// routeSelector selects the healthrouter_alert series of a level and region
// whose labels match m. The team is not one of healthrouter_alert's labels,
// which are a contract; healthrouter_alert_team names each firing alert's
// team, and a team match joins it on the alert's identity.
func (b *builder) routeSelector(level, region string, m map[string]string, neq map[string][]string) string {
	eq := map[string]string{"level": level, "region": region}
	team, byTeam := "", false
	for l, v := range m {
		if l == "team" {
			team, byTeam = v, true
			continue
		}
		eq[l] = v
	}
	sel := promSelector(metricAlert, eq, b.severities, neq)
	if !byTeam {
		return sel
	}
	return "(" + sel + " and on (region, host, check) " +
		promSelector(metricAlertTeam, map[string]string{"level": level, "region": region, "team": team}, nil, nil) + ")"
}

func (b *builder) hostAnnotations() map[string]string {
	const notReporting = `eq (index $labels "check") "not_reporting"`
	return map[string]string{
		"summary": `{{ if ` + notReporting + ` }}{{ $labels.host }} in {{ $labels.region }} is not reporting` +
			`{{ else }}{{ $labels.host }} in {{ $labels.region }}: {{ humanize $values.B.Value }} failing check(s){{ end }}`,
		"description": `healthrouter pages for host {{ $labels.host }} in region {{ $labels.region }} ` +
			`(severity {{ $labels.severity }}): {{ if ` + notReporting + ` }}none of its checks has reported within its staleness limit` +
			`{{ else }}{{ humanize $values.B.Value }} confirmed, unsuppressed failing check(s); a second failing check does not page again{{ end }}. ` +
			`The explain link lists the checks and why they page.`,
		"explain_url": b.externalURL + `/v1/explain?region={{ urlquery $labels.region }}&host={{ urlquery $labels.host }}` +
			`{{ with index $labels "check" }}&check={{ urlquery . }}{{ end }}`,
		"region_url": b.externalURL + `/v1/hosts?region={{ urlquery $labels.region }}`,
	}
}

func (b *builder) regionAnnotations() map[string]string {
	const notReporting = `eq $labels.check "not_reporting"`
	return map[string]string{
		"summary": `{{ if ` + notReporting + ` }}{{ humanizePercentage $values.B.Value }} of hosts in {{ $labels.region }} are not reporting` +
			`{{ else }}{{ $labels.check }} failing on {{ humanizePercentage $values.B.Value }} of hosts in {{ $labels.region }}{{ end }}`,
		"description": `healthrouter rolled up a region-wide failure: {{ if ` + notReporting + ` }}hosts stopped reporting` +
			`{{ else }}check {{ $labels.check }} fails{{ end }} on {{ humanizePercentage $values.B.Value }} of the hosts of region {{ $labels.region }} ` +
			`(severity {{ $labels.severity }}). The matching host alerts are suppressed while this fires, so this is the one page for it.`,
		"explain_url": b.externalURL + `/v1/explain?region={{ urlquery $labels.region }}&check={{ urlquery $labels.check }}`,
		"region_url":  b.externalURL + `/v1/hosts?region={{ urlquery $labels.region }}`,
	}
}

// pipelineGroup holds the watchdog: it fires when no event reached
// healthrouter for watchdog_no_events, and, through noDataState Alerting,
// when Prometheus has no healthrouter series at all (every instance down or
// not scraped). An HA pair counts as up while either instance reports.
func (b *builder) pipelineGroup() *desiredGroup {
	labels := map[string]string{
		ManagedByLabel: ManagedByValue, "level": levelPipeline, "check": "watchdog", "severity": "critical",
	}
	limit := b.g.WatchdogNoEvents.D()
	r := b.rule(watchdogUID(b.g.FolderUID), PipelineGroup, "healthrouter pipeline silent",
		"time() - max("+metricLastEvent+")", "gt", limit.Seconds(), b.g.Pending.Host.D())
	r.Labels = labels
	r.Annotations = map[string]string{
		"summary": "healthrouter pipeline is silent: no health-check event for over " + promDuration(limit) +
			", or healthrouter is down or not scraped",
		"description": "No health-check result has reached healthrouter for longer than " + promDuration(limit) +
			" (grafana.watchdog_no_events), or Prometheus has no healthrouter metrics at all. While this fires no other " +
			"healthrouter alert can be trusted: check the checks' Vector pipeline, healthrouter itself and its Prometheus scrape.",
		"status_url": b.externalURL + "/readyz",
	}
	// Silence is the incident: no data and query errors both fire.
	r.NoDataState = ptr(stateAlerting)
	r.ExecErrState = ptr(stateAlerting)
	if !b.policyMode() {
		r.NotificationSettings = b.notificationSettings(staticRouteKey(b.pd, labels))
	}
	return &desiredGroup{name: PipelineGroup, interval: b.intervalSeconds(), rules: []*models.ProvisionedAlertRule{r}}
}

// rule builds the A (Prometheus, instant) -> B (last) -> C (threshold) chain
// in the shape Grafana stores.
func (b *builder) rule(uid, group, title, expr, op string, threshold float64, pending time.Duration) *models.ProvisionedAlertRule {
	forDur := strfmt.Duration(pending)
	exprDS := map[string]any{"type": exprDatasource, "uid": exprDatasource}
	return &models.ProvisionedAlertRule{
		UID:       uid,
		OrgID:     ptr(b.g.OrgID),
		FolderUID: ptr(b.g.FolderUID),
		RuleGroup: ptr(group),
		Title:     ptr(title),
		Condition: ptr("C"),
		Data: []*models.AlertQuery{
			{
				RefID:             "A",
				DatasourceUID:     b.g.DatasourceUID,
				RelativeTimeRange: &models.RelativeTimeRange{From: 600, To: 0},
				Model: map[string]any{
					"refId":        "A",
					"datasource":   map[string]any{"type": "prometheus", "uid": b.g.DatasourceUID},
					"expr":         expr,
					"instant":      true,
					"range":        false,
					"editorMode":   "code",
					"legendFormat": "__auto",
					// float64, as JSON decodes numbers: see normalModel.
					"intervalMs":    float64(defaultIntervalMs),
					"maxDataPoints": float64(defaultMaxDataPoints),
				},
			},
			{
				RefID:             "B",
				DatasourceUID:     exprDatasource,
				RelativeTimeRange: &models.RelativeTimeRange{},
				Model: map[string]any{
					"refId":      "B",
					"datasource": exprDS,
					"type":       "reduce",
					"expression": "A",
					"reducer":    "last",
					"settings":   map[string]any{"mode": "dropNN"},
				},
			},
			{
				RefID:             "C",
				DatasourceUID:     exprDatasource,
				RelativeTimeRange: &models.RelativeTimeRange{},
				Model: map[string]any{
					"refId":      "C",
					"datasource": exprDS,
					"type":       "threshold",
					"expression": "B",
					"conditions": []any{map[string]any{"evaluator": map[string]any{"type": op, "params": []any{threshold}}}},
				},
			},
		},
		For:        &forDur,
		Provenance: b.provenance,
	}
}

// notificationGroupBy makes every alert instance its own notification (and
// so its own PagerDuty incident): the labels that tell instances apart.
// The first two are the ones Grafana requires, in the order it normalises to.
var notificationGroupBy = []string{"grafana_folder", "alertname", "check", "host", "region", "severity"}

func (b *builder) notificationSettings(key string) *models.AlertRuleNotificationSettings {
	return &models.AlertRuleNotificationSettings{
		Receiver:       ptr(contactPointName(key)),
		GroupBy:        append([]string(nil), notificationGroupBy...),
		GroupWait:      promDuration(b.g.GroupWait.D()),
		GroupInterval:  promDuration(b.g.GroupInterval.D()),
		RepeatInterval: promDuration(b.g.RepeatInterval.D()),
	}
}

// policyRoute is healthrouter's sub-route: everything labelled
// managed_by=healthrouter, split between the keys by pagerduty.routes in
// order, the rest to the default key.
func (b *builder) policyRoute() *models.Route {
	r := &models.Route{
		Receiver:       contactPointName(defaultKey),
		ObjectMatchers: models.ObjectMatchers{{ManagedByLabel, "=", ManagedByValue}},
		GroupBy:        append([]string(nil), notificationGroupBy...),
		GroupWait:      promDuration(b.g.GroupWait.D()),
		GroupInterval:  promDuration(b.g.GroupInterval.D()),
		RepeatInterval: promDuration(b.g.RepeatInterval.D()),
	}
	for _, rt := range b.pd.Routes {
		child := &models.Route{Receiver: contactPointName(rt.Key)}
		for _, l := range slices.Sorted(maps.Keys(rt.Match)) {
			child.ObjectMatchers = append(child.ObjectMatchers, models.ObjectMatcher{l, "=", rt.Match[l]})
		}
		r.Routes = append(r.Routes, child)
	}
	return r
}

// contactPoint is the PagerDuty integration of one routing key. The field
// mapping is the one direct paging uses: severity from the alert, group =
// region, component = host (host alerts) or region, class = the check for
// region alerts and not-reporting hosts, "host" for other host alerts.
func (b *builder) contactPoint(key string) *desiredContactPoint {
	dc := &desiredContactPoint{key: key, envVar: b.pd.RoutingKeys[key]}
	if s, ok := b.pd.Keys[key]; ok && s.Reveal() != "" {
		dc.secret = s
		dc.fingerprint = b.pd.KeyFingerprint(key)
	}
	settings := map[string]any{
		"severity": `{{ or .CommonLabels.severity "critical" }}`,
		"class": `{{ if and (eq .CommonLabels.level "host") (ne .CommonLabels.check "not_reporting") }}host` +
			`{{ else }}{{ or .CommonLabels.check .CommonLabels.alertname }}{{ end }}`,
		"component": `{{ if eq .CommonLabels.level "host" }}{{ or .CommonLabels.host .CommonLabels.region }}` +
			`{{ else }}{{ or .CommonLabels.region "healthrouter" }}{{ end }}`,
		"group":   `{{ or .CommonLabels.region "healthrouter" }}`,
		"summary": `{{ if .CommonAnnotations.summary }}{{ .CommonAnnotations.summary }}{{ else }}{{ template "default.title" . }}{{ end }}`,
		"source":  "healthrouter",
		"client":  "healthrouter",
		// The link of the alert itself, not of one instance: instances
		// sharding regions share the contact points, and a setting naming
		// one of them would have them rewrite it in turn forever.
		"client_url": `{{ or .CommonAnnotations.explain_url .CommonAnnotations.status_url .ExternalURL }}`,
		"details": map[string]any{
			"level":   "{{ .CommonLabels.level }}",
			"region":  "{{ .CommonLabels.region }}",
			"host":    "{{ .CommonLabels.host }}",
			"check":   "{{ .CommonLabels.check }}",
			"summary": "{{ .CommonAnnotations.summary }}",
			"explain": "{{ .CommonAnnotations.explain_url }}",
		},
	}
	// Grafana's integration sends to PagerDuty's Events API by default: the
	// url setting is written only when the config points elsewhere.
	if u := strings.TrimRight(b.pd.EventsURL, "/"); u != "" && u != config.DefaultEventsURL {
		settings["url"] = u + "/v2/enqueue"
	}
	dc.cp = &models.EmbeddedContactPoint{
		UID:        contactPointUID(key),
		Name:       contactPointName(key),
		Type:       ptr("pagerduty"),
		Settings:   settings,
		Provenance: string(b.provenance),
	}
	return dc
}

// promDuration renders d the way Prometheus and Grafana write durations:
// 4h, 5m, 1h30m, 30s.
func promDuration(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		unit string
		d    time.Duration
	}{{"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond}} {
		if n := d / u.d; n > 0 {
			b.WriteString(strconv.FormatInt(int64(n), 10))
			b.WriteString(u.unit)
			d -= n * u.d
		}
	}
	if b.Len() == 0 {
		return "0s"
	}
	return b.String()
}

func ptr[T any](v T) *T { return &v }
