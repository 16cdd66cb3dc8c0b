package config

import (
	"crypto/tls"
	"fmt"
	"maps"
	"math"
	"net"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/healthrouter/healthrouter/pkg/health"
)

var (
	uidPattern     = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,40}$`)
	envNamePattern = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)
	keyNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,39}$`)
)

// MetricValueKeys returns the value kinds of Vector's metric JSON besides
// "gauge", the one a status metric carries.
func MetricValueKeys() []string {
	return []string{"counter", "set", "distribution", "aggregated_histogram", "aggregated_summary", "sketch"}
}

// metricEventKeys are the top-level keys of Vector's metric events that
// the ingest decoder reads (pkg/ingest, buildKeyTables). An event field
// may not be renamed to one of them: the decoder would feed the key to
// both, and misread every metric event (fields.check: name) or take a log
// event for a metric. "timestamp" is the one key both shapes share on
// purpose, so fields.timestamp, and only it, may keep that name.
var metricEventKeys = func() map[string]bool {
	keys := map[string]bool{"name": true, "kind": true, "tags": true, "timestamp": true, "interval_ms": true, "gauge": true}
	for _, k := range MetricValueKeys() {
		keys[k] = true
	}
	return keys
}()

// routeLabels are the alert labels a PagerDuty route can match on.
var routeLabels = map[string]bool{"team": true, "region": true, "severity": true, "check": true, "host": true, "level": true}

// maxPending bounds a rule's pending period: from 365 days Grafana writes
// it with a year unit ("1y").
const maxPending = 365 * 24 * time.Hour

// MinTokenLength is the shortest bearer token accepted: shorter ones can be
// guessed.
const MinTokenLength = 16

// Validate checks every key and returns all problems found, section by
// section in the order of the configuration file.
func (c *Config) Validate() Problems {
	var v validator
	v.server(c)
	v.auth(&c.Auth)
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "json", "console")
	v.ingest(&c.Ingest)
	v.engine(&c.Engine)
	v.checks(c.Checks, c.Engine.ForgetAfter, c.Engine.TickEvery)
	if c.Grafana != nil {
		v.grafana(c.Grafana, c.PagerDuty)
	}
	if c.PagerDuty != nil {
		v.pagerDuty(c.PagerDuty)
	}
	return v.ps
}

// server checks the top-level keys and tls.
func (v *validator) server(c *Config) {
	if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		v.add("listen", "want host:port such as 127.0.0.1:8080")
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.add("listen", fmt.Sprintf("port %q: want a number from 0 to 65535", port))
	}
	v.check(c.DataDir != "", "data_dir", "must not be empty")
	if c.ExternalURL != "" {
		v.url("external_url", c.ExternalURL)
	}
	v.check(c.ShutdownTimeout > 0, "shutdown_timeout", "must be positive")
	v.check(c.MaxConnections >= 16, "max_connections", "must be at least 16")

	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		v.add("tls", "cert_file and key_file go together")
	}
	certOK := v.readable("tls.cert_file", c.TLS.CertFile)
	keyOK := v.readable("tls.key_file", c.TLS.KeyFile)
	if c.TLS.Enabled() && certOK && keyOK {
		// Parsed as serve will, so a wrong or garbled pair fails here and
		// not after the server announced itself.
		if _, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile); err != nil {
			v.addServerOnly("tls.cert_file", "with tls.key_file, not a usable certificate and private key: "+err.Error())
		}
	}
}

// auth checks the tokens. They come from the environment or a file, never
// a key of their own: the problems name where to fix them.
func (v *validator) auth(a *Auth) {
	adminSource := EnvAdminToken
	if a.AdminTokenFile != "" {
		adminSource += " / auth.admin_token_file"
	}
	for i, t := range a.IngestTokens {
		if len(t) >= MinTokenLength {
			continue
		}
		// Count as the operator would look: the file's tokens in order,
		// then the items of the variable's list.
		source, n := EnvIngestTokens, i+1-a.fileTokens
		if i < a.fileTokens {
			source, n = "auth.ingest_tokens_file", i+1
		}
		v.addServerOnly(source, fmt.Sprintf("token %d is shorter than %d characters", n, MinTokenLength))
	}
	if a.AdminToken != "" && len(a.AdminToken) < MinTokenLength {
		v.addServerOnly(adminSource, fmt.Sprintf("shorter than %d characters", MinTokenLength))
	}
	if a.AdminToken != "" && slices.Contains(a.IngestTokens, a.AdminToken) {
		v.addServerOnly(adminSource, "the admin token is also an ingest token: every sender would hold admin rights "+
			"(maintenance windows, forgetting hosts, profiles); give the admin its own token")
	}
}

func (v *validator) ingest(in *Ingest) {
	v.check(in.MaxBodyBytes > 0, "ingest.max_body_bytes", "must be positive")
	v.check(in.MaxDecodedBytes >= in.MaxBodyBytes, "ingest.max_decoded_bytes", "must be at least max_body_bytes")
	v.check(in.MaxEvents > 0, "ingest.max_events", "must be positive")
	v.check(in.MaxFieldBytes > 0 && in.MaxFieldBytes <= 4096, "ingest.max_field_bytes", "must be between 1 and 4096")
	v.check(in.MaxOutputBytes > 0 && in.MaxOutputBytes <= 65536, "ingest.max_output_bytes", "must be between 1 and 65536")
	if in.RegionFromHost != "" {
		if re, err := regexp.Compile(in.RegionFromHost); err != nil {
			v.add("ingest.region_from_host", "not a valid regular expression: "+err.Error())
		} else if re.NumSubexp() > 1 {
			v.add("ingest.region_from_host", "use at most one capture group (the region)")
		}
	}
	v.check(in.StatusMetric != "", "ingest.status_metric", "must not be empty")
	v.fields(in.Fields)
	v.check(len(in.Labels) <= health.MaxLabels, "ingest.labels", fmt.Sprintf("at most %d keys", health.MaxLabels))
	seenLabel := map[string]bool{}
	for i, l := range in.Labels {
		key := "ingest.labels[" + strconv.Itoa(i) + "]"
		v.check(l != "" && !strings.ContainsAny(l, " \t\n\""), key, "must be a plain label key")
		v.check(!seenLabel[l], key, fmt.Sprintf("%q is listed twice", l))
		seenLabel[l] = true
	}
	v.check(in.MaxInFlight > 0, "ingest.max_in_flight", "must be positive")
	v.check(in.MaxInflightBytes >= in.MaxBodyBytes, "ingest.max_inflight_bytes",
		"must be at least max_body_bytes, or no body of the largest size is ever read")
	v.check(in.RequestTimeout > 0, "ingest.request_timeout", "must be positive")
	v.check(in.DeadLetterMax > 0, "ingest.dead_letter_max", "must be positive")
}

func (v *validator) engine(e *Engine) {
	v.check(e.ConfirmAfter >= 1 && e.ConfirmAfter <= 20, "engine.confirm_after", "must be between 1 and 20")
	v.check(e.RecoverAfter >= 1 && e.RecoverAfter <= 20, "engine.recover_after", "must be between 1 and 20")
	v.check(e.StaleAfter > 0, "engine.stale_after", "must be positive")
	v.check(e.Flap.High > 0 && e.Flap.High <= 1, "engine.flap.high", "must be in (0, 1]")
	// A flapping check settles once its change rate falls below low:
	// nothing falls below 0, so low 0 would hold it flapping for ever.
	v.check(e.Flap.Low > 0 && e.Flap.Low < e.Flap.High, "engine.flap.low", "must be above 0 and below flap.high")
	v.check(e.Region.OutageRatio > 0 && e.Region.OutageRatio <= 1, "engine.region.outage_ratio", "must be in (0, 1]")
	v.check(e.Region.MinHosts >= 1 && e.Region.MinHosts <= math.MaxInt32, "engine.region.min_hosts",
		fmt.Sprintf("must be between 1 and %d", math.MaxInt32))
	v.check(e.MaxChecks > 0, "engine.max_checks", "must be positive")
	v.check(e.Checkpoint > 0, "engine.checkpoint", "must be positive")
	v.check(e.JournalMax > 0, "engine.journal_max", "must be positive")
	v.check(e.TickEvery > 0, "engine.tick_every", "must be positive")
	// Staleness and maintenance expiry are noticed at a tick: ticking
	// slower than checks go stale would find a silent host that late.
	v.check(e.TickEvery <= e.StaleAfter, "engine.tick_every", "must not exceed engine.stale_after: a silent host is found only at a tick")
	// Forgetting a host before its checks are even stale would turn a
	// short gap in its results into a lost host.
	v.check(e.ForgetAfter == 0 || e.ForgetAfter >= e.StaleAfter, "engine.forget_after",
		"must be 0 (never) or at least engine.stale_after")
}

// checks checks the per-check overrides; forgetAfter and tickEvery are
// engine.forget_after and engine.tick_every.
func (v *validator) checks(rules []CheckRule, forgetAfter, tickEvery Duration) {
	for i, r := range rules {
		key := "checks[" + strconv.Itoa(i) + "]"
		if r.Match == "" {
			v.add(key+".match", "must not be empty")
		} else if _, err := path.Match(r.Match, ""); err != nil {
			v.add(key+".match", "not a valid glob: "+err.Error())
		}
		if r.Severity != "" {
			v.severity(key+".severity", r.Severity)
		}
		v.check(r.ConfirmAfter >= 0 && r.ConfirmAfter <= 20, key+".confirm_after", "must be between 1 and 20 (0 or absent: engine.confirm_after)")
		v.check(r.RecoverAfter >= 0 && r.RecoverAfter <= 20, key+".recover_after", "must be between 1 and 20 (0 or absent: engine.recover_after)")
		v.check(r.StaleAfter >= 0, key+".stale_after", "must not be negative")
		v.check(forgetAfter == 0 || r.StaleAfter <= forgetAfter, key+".stale_after",
			"must not exceed engine.forget_after: its checks would be forgotten before they are stale")
		v.check(r.StaleAfter == 0 || r.StaleAfter >= tickEvery, key+".stale_after",
			"must be at least engine.tick_every: a silent check is found only at a tick")
	}
}

// grafana checks the grafana section; pd is the pagerduty section, which
// every rule pages through (nil when absent).
func (v *validator) grafana(g *Grafana, pd *PagerDuty) {
	v.url("grafana.url", g.URL)
	v.check(g.OrgID >= 1, "grafana.org_id", "must be at least 1")
	v.uid("grafana.folder_uid", g.FolderUID)
	// Grafana reserves "general" for its root folder and refuses to
	// create a folder with that uid.
	v.check(g.FolderUID != "general", "grafana.folder_uid", `"general" is Grafana's root folder: choose another uid`)
	v.check(g.FolderTitle != "" && len(g.FolderTitle) <= 190, "grafana.folder_title", "must be 1 to 190 characters")
	v.check(g.DatasourceUID != "" && len(g.DatasourceUID) <= 40, "grafana.datasource_uid", "must be 1 to 40 characters")
	iv := g.Interval.D()
	v.check(iv > 0 && iv%(10*time.Second) == 0, "grafana.interval", "must be a positive multiple of 10s (Grafana's scheduler interval)")
	v.pending("grafana.pending.host", g.Pending.Host)
	v.pending("grafana.pending.region", g.Pending.Region)
	v.oneOf("grafana.routing", g.Routing, RoutingNotificationSettings, RoutingPolicy)
	v.check(g.ReconcileEvery >= Duration(10*time.Second), "grafana.reconcile_every", "must be at least 10s")
	v.check(g.Timeout > 0, "grafana.timeout", "must be positive")
	v.check(g.PruneAfter > 0, "grafana.prune_after", "must be positive")
	v.check(g.WatchdogNoEvents > 0, "grafana.watchdog_no_events", "must be positive")
	v.check(g.GroupWait >= 0, "grafana.group_wait", "must not be negative")
	v.check(g.GroupInterval > 0, "grafana.group_interval", "must be positive")
	v.check(g.RepeatInterval > 0, "grafana.repeat_interval", "must be positive")
	if pd == nil || len(pd.RoutingKeys) == 0 {
		v.add("grafana", "needs pagerduty.routing_keys: every rule pages through a PagerDuty contact point")
	}
}

// pending checks a rule's pending period, which becomes its "for". The
// Grafana client sends that in Go's form, and Grafana reads it as a
// Prometheus duration, which has no fractions: "500ms" and "2s" pass,
// "1.5s" is refused on every reconcile. Grafana writes a year or more
// back as "1y", a unit the client cannot read, so every later reconcile
// would fail reading the group.
func (v *validator) pending(key string, d Duration) {
	switch {
	case d < 0:
		v.add(key, "must not be negative")
	case d.D() >= maxPending:
		v.add(key, "must be under 365 days: Grafana writes a longer for as years, which its API client cannot read back")
	case d.D() > time.Second && d.D()%time.Second != 0:
		v.add(key, "must be whole seconds, or under 1s: Grafana refuses a rule's for written as a fraction (1.5s)")
	}
}

func (v *validator) pagerDuty(p *PagerDuty) {
	names := make([]string, 0, len(p.RoutingKeys))
	for name := range p.RoutingKeys {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		key := "pagerduty.routing_keys." + name
		v.check(keyNamePattern.MatchString(name), key, "name must be lower-case letters, digits, - or _ (at most 40)")
		v.check(envNamePattern.MatchString(p.RoutingKeys[name]), key,
			"value names the environment variable holding the key, e.g. HEALTHROUTER_PD_DEFAULT")
	}
	if len(p.RoutingKeys) > 0 {
		_, hasDefault := p.RoutingKeys["default"]
		v.check(hasDefault, "pagerduty.routing_keys", `needs a key named "default" for alerts no route matches`)
	}
	for i, r := range p.Routes {
		key := "pagerduty.routes[" + strconv.Itoa(i) + "]"
		_, ok := p.RoutingKeys[r.Key]
		v.check(ok, key+".key", fmt.Sprintf("%q is not in pagerduty.routing_keys", r.Key))
		v.check(len(r.Match) > 0, key+".match", "must name at least one label")
		for _, l := range slices.Sorted(maps.Keys(r.Match)) {
			lkey := key + ".match." + l
			switch {
			case !routeLabels[l]:
				v.add(lkey, "can match team, region, severity, check, host or level")
			case l == "severity":
				v.severity(lkey, r.Match[l])
			case l == "level":
				v.oneOf(lkey, r.Match[l], "host", "region")
			case l == "check" && r.Match[l] != health.NotReporting && (strings.EqualFold(r.Match["level"], "host") || r.Match["host"] != ""):
				// Only region alerts carry a check, and they name no host.
				v.add(lkey, "a host alert carries no check (it is one for all of the host's failing checks; only not_reporting names one), "+
					"and a region alert no host: with level host or a host this route matches nothing; match the check's team instead")
			}
		}
	}
	v.url("pagerduty.events_url", p.EventsURL)
	v.url("pagerduty.api_url", p.APIURL)
	v.check(p.FallbackAfter > 0, "pagerduty.fallback_after", "must be positive")
	v.check(p.FallbackRecoverAfter >= 0, "pagerduty.fallback_recover_after", "must not be negative")
	v.check(p.RatePerMinute >= 1 && p.RatePerMinute <= 10000, "pagerduty.rate_per_minute", "must be between 1 and 10000")
	v.oneOf("pagerduty.warning", p.Warning, "low", "none")
	v.check(p.Timeout > 0, "pagerduty.timeout", "must be positive")
}

type validator struct{ ps Problems }

func (v *validator) add(key, msg string) { v.ps = append(v.ps, Problem{Key: key, Message: msg}) }

func (v *validator) addServerOnly(key, msg string) {
	v.ps = append(v.ps, Problem{Key: key, Message: msg, ServerOnly: true})
}

func (v *validator) check(ok bool, key, msg string) {
	if !ok {
		v.add(key, msg)
	}
}

func (v *validator) oneOf(key, got string, allowed ...string) {
	for _, a := range allowed {
		if got == a {
			return
		}
	}
	v.add(key, fmt.Sprintf("%q is not one of %s", got, strings.Join(allowed, ", ")))
}

// severity checks a severity normalize has made canonical.
func (v *validator) severity(key, s string) {
	v.oneOf(key, s, "critical", "error", "warning", "info")
}

func (v *validator) url(key, s string) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.add(key, "want an absolute http:// or https:// URL")
		return
	}
	// Credentials in a URL would be logged and shown wherever the URL is
	// (errors, /readyz); the secrets have their own variables and files.
	if u.User != nil {
		v.add(key, "must not carry credentials (user:password@): a URL is logged and shown in errors; the tokens have their own environment variables")
	}
}

// ValidUID reports whether s is a uid Grafana accepts for a folder, rule or
// contact point: 1 to 40 letters, digits, - or _.
func ValidUID(s string) bool { return uidPattern.MatchString(s) }

func (v *validator) uid(key, s string) {
	v.check(ValidUID(s), key, "must be 1 to 40 letters, digits, - or _")
}

// readable reports whether file is set and can be opened; an unset file
// is not a problem here.
func (v *validator) readable(key, file string) bool {
	if file == "" {
		return false
	}
	f, err := os.Open(file)
	if err != nil {
		v.addServerOnly(key, "cannot read: "+err.Error())
		return false
	}
	f.Close()
	return true
}

func (v *validator) fields(f Fields) {
	seen := map[string]string{}
	for _, nf := range []struct{ key, name string }{
		{"host", f.Host}, {"region", f.Region}, {"check", f.Check}, {"status", f.Status},
		{"timestamp", f.Timestamp}, {"output", f.Output}, {"message", f.Message},
		{"severity", f.Severity}, {"team", f.Team}, {"interval", f.Interval},
		{"event_id", f.EventID}, {"labels", f.Labels},
	} {
		key := "ingest.fields." + nf.key
		if nf.name == "" {
			v.add(key, "must not be empty")
			continue
		}
		if other, dup := seen[nf.name]; dup {
			if nf.name == nf.key {
				// This field keeps its default name: the other one was
				// renamed onto it, and that is the key to fix.
				v.add("ingest.fields."+other, fmt.Sprintf("%q is the name of field %s (its default): choose another, or rename %s too", nf.name, nf.key, nf.key))
			} else {
				v.add(key, fmt.Sprintf("%q is already the name of %s", nf.name, other))
			}
			continue
		}
		seen[nf.name] = nf.key
		if metricEventKeys[nf.name] && !(nf.key == "timestamp" && nf.name == "timestamp") {
			v.add(key, fmt.Sprintf("%q is a top-level key of Vector's metric events, which would then be read as this field too: choose another name", nf.name))
		}
	}
}
