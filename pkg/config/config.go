// Package config defines healthrouter's configuration file: its shape, its
// defaults, the environment variables that carry secrets, and the checks
// that make `healthrouter check-config` report every problem with its key.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// Config is the whole configuration file. Every key is optional; Default
// returns the values used when a key is absent.
type Config struct {
	Listen  string `yaml:"listen"`
	DataDir string `yaml:"data_dir"`
	// ExternalURL is how on-call reaches this service (links in alert
	// annotations point at its /v1/explain). Defaults to http://<listen>.
	ExternalURL string `yaml:"external_url"`
	// ShutdownTimeout bounds how long in-flight requests may finish.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// MaxConnections bounds the open client connections: past it, new
	// ones wait to be accepted, so idle or stalled connections cannot take
	// the memory and file descriptors the store and outbound calls need.
	MaxConnections int `yaml:"max_connections"`

	TLS    TLS    `yaml:"tls"`
	Auth   Auth   `yaml:"auth"`
	Log    Log    `yaml:"log"`
	Ingest Ingest `yaml:"ingest"`
	Engine Engine `yaml:"engine"`
	// Checks are per-check overrides; the first rule whose glob matches the
	// check name wins.
	Checks    []CheckRule `yaml:"checks"`
	Grafana   *Grafana    `yaml:"grafana"`
	PagerDuty *PagerDuty  `yaml:"pagerduty"`
}

// TLS turns on HTTPS for deployments without a proxy in front.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Enabled reports whether both files are set.
func (t TLS) Enabled() bool { return t.CertFile != "" && t.KeyFile != "" }

// LinkURL is the base of the links healthrouter puts in alerts and pages:
// external_url, else the configured listen address with the scheme TLS
// gives it. serve, plan, apply and export all use it, so what serve
// provisions and what plan compares agree.
func (c *Config) LinkURL() string {
	if c.ExternalURL != "" {
		return strings.TrimRight(c.ExternalURL, "/")
	}
	scheme := "http"
	if c.TLS.Enabled() {
		scheme = "https"
	}
	return scheme + "://" + c.Listen
}

// Auth holds the bearer tokens. Tokens come from files or the environment
// (HEALTHROUTER_INGEST_TOKENS comma-separated, HEALTHROUTER_ADMIN_TOKEN),
// never from the YAML itself, so a config file can be shared safely.
type Auth struct {
	// IngestTokensFile holds one token per line; several allow rotation.
	IngestTokensFile string `yaml:"ingest_tokens_file"`
	AdminTokenFile   string `yaml:"admin_token_file"`

	// Filled by Load from the files and the environment.
	IngestTokens []Secret `yaml:"-"`
	AdminToken   Secret   `yaml:"-"`
	// fileTokens counts the IngestTokens read from IngestTokensFile, which
	// come first: a problem with one names where it came from.
	fileTokens int
}

// Log configures the zap logger.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // json or console
}

// Ingest configures the front door: limits and the event contract.
type Ingest struct {
	MaxBodyBytes    Bytes `yaml:"max_body_bytes"`
	MaxDecodedBytes Bytes `yaml:"max_decoded_bytes"`
	MaxEvents       int   `yaml:"max_events"`
	MaxFieldBytes   int   `yaml:"max_field_bytes"`
	MaxOutputBytes  int   `yaml:"max_output_bytes"`
	// RegionFromHost derives the region from the host name when an event
	// has none: the first capture group (or the whole match) is the region.
	RegionFromHost string `yaml:"region_from_host"`
	// StatusMetric is the name of Vector metric events that carry a status.
	StatusMetric string `yaml:"status_metric"`
	// Fields renames the event fields.
	Fields Fields `yaml:"fields"`
	// Labels lists the label keys kept from an event's labels map.
	Labels []string `yaml:"labels"`
	// MaxInFlight bounds the ingest requests decoding, applying or waiting
	// for their commit at once, once their body is read; past it, 429.
	MaxInFlight int `yaml:"max_in_flight"`
	// MaxInflightBytes bounds the memory the bodies of all in-flight
	// requests hold together; a request that would pass it gets 429.
	MaxInflightBytes Bytes `yaml:"max_inflight_bytes"`
	// RequestTimeout bounds reading one request body.
	RequestTimeout Duration `yaml:"request_timeout"`
	// DeadLetterMax bounds the dead-letter store (oldest dropped first).
	DeadLetterMax int `yaml:"dead_letter_max"`
}

// Fields names the event fields, for senders that cannot rename them.
type Fields struct {
	Host      string `yaml:"host"`
	Region    string `yaml:"region"`
	Check     string `yaml:"check"`
	Status    string `yaml:"status"`
	Timestamp string `yaml:"timestamp"`
	Output    string `yaml:"output"`
	Message   string `yaml:"message"`
	Severity  string `yaml:"severity"`
	Team      string `yaml:"team"`
	Interval  string `yaml:"interval"`
	EventID   string `yaml:"event_id"`
	Labels    string `yaml:"labels"`
}

// Engine configures how results become alerts (DESIGN §2).
type Engine struct {
	ConfirmAfter int      `yaml:"confirm_after"`
	RecoverAfter int      `yaml:"recover_after"`
	StaleAfter   Duration `yaml:"stale_after"`
	Flap         Flap     `yaml:"flap"`
	Region       Region   `yaml:"region"`
	MaxChecks    int      `yaml:"max_checks"`
	// Checkpoint is how often last-seen times are written to disk.
	Checkpoint Duration `yaml:"checkpoint"`
	// JournalMax bounds the transition journal (oldest dropped first).
	JournalMax int `yaml:"journal_max"`
	// TickEvery is how often staleness and maintenance expiry are evaluated.
	TickEvery Duration `yaml:"tick_every"`
	// ForgetAfter forgets a host, its checks and their alerts once every
	// one of its checks has gone this long without a result (a
	// decommissioned host); 0 never forgets.
	ForgetAfter Duration `yaml:"forget_after"`
}

// Flap holds the flap-detection thresholds, as fractions of the weighted
// state changes over the last 21 results.
type Flap struct {
	High float64 `yaml:"high"`
	Low  float64 `yaml:"low"`
}

// Region holds the region-rollup thresholds.
type Region struct {
	OutageRatio float64 `yaml:"outage_ratio"`
	MinHosts    int     `yaml:"min_hosts"`
}

// CheckRule overrides engine settings for checks whose name matches Match.
// Zero values inherit.
type CheckRule struct {
	Match        string   `yaml:"match"`
	Severity     string   `yaml:"severity"`
	Team         string   `yaml:"team"`
	ConfirmAfter int      `yaml:"confirm_after"`
	RecoverAfter int      `yaml:"recover_after"`
	StaleAfter   Duration `yaml:"stale_after"`
}

// Grafana configures provisioning. Absent: nothing is provisioned.
type Grafana struct {
	URL           string `yaml:"url"`
	OrgID         int64  `yaml:"org_id"`
	FolderUID     string `yaml:"folder_uid"`
	FolderTitle   string `yaml:"folder_title"`
	DatasourceUID string `yaml:"datasource_uid"`
	// Interval is the rule groups' evaluation interval (a multiple of 10s).
	Interval          Duration `yaml:"interval"`
	Pending           Pending  `yaml:"pending"`
	Routing           string   `yaml:"routing"` // notification_settings or policy
	DisableProvenance bool     `yaml:"disable_provenance"`
	ReconcileEvery    Duration `yaml:"reconcile_every"`
	Timeout           Duration `yaml:"timeout"`
	// Prune deletes rule groups of regions not seen for PruneAfter.
	Prune      bool     `yaml:"prune"`
	PruneAfter Duration `yaml:"prune_after"`
	// WatchdogNoEvents is how long without any event before the pipeline
	// watchdog fires.
	WatchdogNoEvents Duration `yaml:"watchdog_no_events"`
	// Notification timings for the routes healthrouter's rules use.
	GroupWait      Duration `yaml:"group_wait"`
	GroupInterval  Duration `yaml:"group_interval"`
	RepeatInterval Duration `yaml:"repeat_interval"`

	// Token comes from HEALTHROUTER_GRAFANA_TOKEN.
	Token Secret `yaml:"-"`
}

// Pending is how long a condition must hold before a rule fires.
type Pending struct {
	Host   Duration `yaml:"host"`
	Region Duration `yaml:"region"`
}

// Routing modes.
const (
	RoutingNotificationSettings = "notification_settings"
	RoutingPolicy               = "policy"
)

// PagerDuty configures contact points, direct (fallback) paging and verify.
type PagerDuty struct {
	// RoutingKeys maps a routing key's name to the environment variable
	// that holds it; the keys themselves never appear in the file.
	RoutingKeys map[string]string `yaml:"routing_keys"`
	// Routes pick a key by alert labels (team, region, host, check,
	// severity, level); the first match wins, else the key named "default".
	Routes        []Route  `yaml:"routes"`
	EventsURL     string   `yaml:"events_url"`
	APIURL        string   `yaml:"api_url"`
	FallbackAfter Duration `yaml:"fallback_after"`
	// FallbackRecoverAfter is how long Grafana must answer without a break
	// before direct paging stops: longer than the rules' pending period, so
	// Grafana has paged what still fires before healthrouter resolves its
	// own incidents, and a Grafana that answers once in an outage does not
	// resolve and re-page everything.
	FallbackRecoverAfter Duration `yaml:"fallback_recover_after"`
	RatePerMinute        int      `yaml:"rate_per_minute"`
	// ResolveOnRecovery: when Grafana is healthy again, resolve the
	// incidents fallback paging opened (else leave them to humans).
	ResolveOnRecovery *bool `yaml:"resolve_on_recovery"`
	// Warning decides where warning-severity alerts go: "low" (PagerDuty,
	// low urgency) or "none".
	Warning string   `yaml:"warning"`
	Timeout Duration `yaml:"timeout"`

	// Keys holds the routing keys read from the environment, by name.
	Keys map[string]Secret `yaml:"-"`
	// APIToken comes from HEALTHROUTER_PAGERDUTY_API_TOKEN (REST, verify).
	APIToken Secret `yaml:"-"`
}

// Route sends alerts whose labels all match to the named routing key.
type Route struct {
	Match map[string]string `yaml:"match"`
	Key   string            `yaml:"key"`
}

// Default returns the configuration used when no file is given: loopback,
// ./data, provisioning off.
func Default() *Config {
	return &Config{
		Listen:          "127.0.0.1:8080",
		DataDir:         "./data",
		ShutdownTimeout: Duration(20 * time.Second),
		MaxConnections:  4096,
		Log:             Log{Level: "info", Format: "json"},
		Ingest: Ingest{
			MaxBodyBytes:    16 << 20,
			MaxDecodedBytes: 64 << 20,
			MaxEvents:       100000,
			MaxFieldBytes:   256,
			MaxOutputBytes:  1024,
			StatusMetric:    "health_check_status",
			Fields: Fields{
				Host: "host", Region: "region", Check: "check", Status: "status",
				Timestamp: "timestamp", Output: "output", Message: "message",
				Severity: "severity", Team: "team", Interval: "interval",
				EventID: "event_id", Labels: "labels",
			},
			MaxInFlight:      64,
			MaxInflightBytes: 256 << 20,
			RequestTimeout:   Duration(30 * time.Second),
			DeadLetterMax:    10000,
		},
		Engine: Engine{
			ConfirmAfter: 2,
			RecoverAfter: 1,
			StaleAfter:   Duration(5 * time.Minute),
			Flap:         Flap{High: 0.5, Low: 0.25},
			Region:       Region{OutageRatio: 0.3, MinHosts: 3},
			MaxChecks:    5000000,
			Checkpoint:   Duration(30 * time.Second),
			JournalMax:   100000,
			TickEvery:    Duration(5 * time.Second),
			ForgetAfter:  0,
		},
	}
}

// DefaultPending is grafana.pending's default: 2m for host rules, 1m for
// region rules. Without a grafana section, direct paging and replay wait
// as long as Grafana's rules would.
func DefaultPending() Pending {
	return Pending{Host: Duration(2 * time.Minute), Region: Duration(time.Minute)}
}

// defaultGrafana fills an explicitly present grafana section.
func defaultGrafana() Grafana {
	return Grafana{
		URL:              "http://127.0.0.1:3000",
		OrgID:            1,
		FolderUID:        "healthrouter",
		FolderTitle:      "healthrouter",
		DatasourceUID:    "prometheus",
		Interval:         Duration(time.Minute),
		Pending:          DefaultPending(),
		Routing:          RoutingNotificationSettings,
		ReconcileEvery:   Duration(5 * time.Minute),
		Timeout:          Duration(10 * time.Second),
		PruneAfter:       Duration(7 * 24 * time.Hour),
		WatchdogNoEvents: Duration(5 * time.Minute),
		GroupWait:        Duration(30 * time.Second),
		GroupInterval:    Duration(5 * time.Minute),
		RepeatInterval:   Duration(4 * time.Hour),
	}
}

// DefaultEventsURL is PagerDuty's Events API, pagerduty.events_url's
// default; Grafana's PagerDuty integration sends there unless told otherwise.
const DefaultEventsURL = "https://events.pagerduty.com"

// defaultPagerDuty fills an explicitly present pagerduty section.
func defaultPagerDuty() PagerDuty {
	return PagerDuty{
		EventsURL:            DefaultEventsURL,
		APIURL:               "https://api.pagerduty.com",
		FallbackAfter:        Duration(3 * time.Minute),
		FallbackRecoverAfter: Duration(5 * time.Minute),
		RatePerMinute:        120,
		Warning:              "low",
		Timeout:              Duration(10 * time.Second),
	}
}

// ResolveOwn reports whether fallback incidents are resolved once Grafana
// is healthy again (default true).
func (p *PagerDuty) ResolveOwn() bool {
	return p.ResolveOnRecovery == nil || *p.ResolveOnRecovery
}

// Pages reports whether alerts of severity s reach PagerDuty, by Grafana's
// rules or by direct paging: critical and error always (an unset severity
// counts as critical), warning unless warning is "none", info never.
func (p *PagerDuty) Pages(s health.Severity) bool {
	switch s {
	case health.SeverityInfo:
		return false
	case health.SeverityWarning:
		return p.Warning != "none"
	}
	return true
}

// Notes are the routing keys' notes and the routes'.
func (p *PagerDuty) Notes() []string { return append(p.KeyNotes(), p.RouteNotes()...) }

// RouteNotes warns about routes that match on check without level: only
// region alerts (and not_reporting) carry a check; a host alert is one for
// all of the host's failing checks and carries none, so such a route never
// takes a host's failures of that check. (With level host it could match
// nothing, which validation refuses.)
func (p *PagerDuty) RouteNotes() []string {
	var notes []string
	for i, r := range p.Routes {
		check, ok := r.Match["check"]
		if !ok || check == health.NotReporting || r.Match["level"] != "" || r.Match["host"] != "" {
			continue
		}
		notes = append(notes, fmt.Sprintf("pagerduty.routes[%d] matches check %q: only the region alert for %s carries that label; "+
			"a host alert (one for all of a host's failing checks) has none, so hosts failing %s go to the next route; to route them, "+
			"give the check a team in checks: and match team", i, check, check, check))
	}
	return notes
}

// KeyNotes warns, naming each key and its variable but never its value,
// about the routing keys PagerDuty's Events API v2 would refuse: its
// integration keys are 32 letters and digits. A note, not a problem: an
// events_url may point at something other than PagerDuty.
func (p *PagerDuty) KeyNotes() []string {
	names := make([]string, 0, len(p.Keys))
	for name := range p.Keys {
		names = append(names, name)
	}
	slices.Sort(names)
	var notes []string
	for _, name := range names {
		key := p.Keys[name].Reveal()
		alnum := true
		for i := 0; i < len(key); i++ {
			c := key[i]
			alnum = alnum && ('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z')
		}
		if len(key) == 32 && alnum {
			continue
		}
		shape := fmt.Sprintf("%d characters", len(key))
		if !alnum {
			shape += " with some not a letter or digit"
		}
		notes = append(notes, fmt.Sprintf("routing key %q (%s) has %s; PagerDuty's Events API v2 keys are 32 letters and digits and it refuses others",
			name, p.RoutingKeys[name], shape))
	}
	return notes
}

// KeyFingerprint identifies the routing key named name without revealing
// it, "" when the key is not set. It is stored where a later run must tell
// whether the key changed: a resolve reaches PagerDuty's incident only
// through the key that opened it. A truncated SHA-256 of a 128-bit random
// key identifies the key and gives nothing away.
func (p *PagerDuty) KeyFingerprint(name string) string {
	key := p.Keys[name].Reveal()
	if key == "" {
		return ""
	}
	sum := sha256.Sum256([]byte("healthrouter/pagerduty-routing-key\x00" + key))
	return hex.EncodeToString(sum[:8])
}
