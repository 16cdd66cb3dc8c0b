package config

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func env(vars map[string]string) Getenv {
	return func(k string) string { return vars[k] }
}

func TestEmbeddedDefault(t *testing.T) {
	cfg, err := Load("", env(nil))
	if err != nil {
		t.Fatalf("defaults must be valid: %v", err)
	}
	if cfg.Listen != "127.0.0.1:8080" || cfg.DataDir != "./data" || cfg.Grafana != nil || cfg.PagerDuty != nil {
		t.Fatalf("defaults: listen %s data_dir %s grafana %v pagerduty %v", cfg.Listen, cfg.DataDir, cfg.Grafana, cfg.PagerDuty)
	}
	if cfg.Ingest.MaxBodyBytes != 16<<20 || cfg.Ingest.MaxDecodedBytes != 64<<20 {
		t.Fatalf("size defaults: %v %v", cfg.Ingest.MaxBodyBytes, cfg.Ingest.MaxDecodedBytes)
	}
	e := cfg.Engine
	if e.ConfirmAfter != 2 || e.StaleAfter.D() != 5*time.Minute || e.Flap.High != 0.5 || e.Flap.Low != 0.25 ||
		e.Region.OutageRatio != 0.3 || e.Region.MinHosts != 3 || e.MaxChecks != 5000000 || e.ForgetAfter != 0 {
		t.Fatalf("engine defaults: %+v", e)
	}
}

func TestExampleConfigIsValidAndComplete(t *testing.T) {
	path := filepath.Join("..", "..", "testdata", "config", "example.yaml")
	cfg, err := Load(path, env(map[string]string{
		"HEALTHROUTER_PD_DEFAULT": "0123456789abcdef0123456789abcdef",
		"HEALTHROUTER_PD_STORAGE": "fedcba9876543210fedcba9876543210",
		EnvGrafanaToken:           "glsa_grafana_token_value",
	}))
	if err != nil {
		t.Fatalf("example config: %v", err)
	}
	if ps := cfg.MissingSecrets(); len(ps) != 0 {
		t.Fatalf("secrets given but reported missing: %v", ps)
	}
	// The example documents every key: each yaml tag of the config types
	// appears in it.
	data, _ := os.ReadFile(path)
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	for _, key := range allKeys() {
		if !strings.Contains(string(data), key+":") {
			t.Errorf("example.yaml does not document %q", key)
		}
	}
}

// allKeys lists the leaf key names of the config types.
func allKeys() []string {
	var keys []string
	var c Config
	g, p := defaultGrafana(), defaultPagerDuty()
	c.Grafana, c.PagerDuty = &g, &p
	b, _ := yaml.Marshal(&c)
	var m map[string]any
	_ = yaml.Unmarshal(b, &m)
	var walk func(map[string]any)
	walk = func(m map[string]any) {
		for k, v := range m {
			keys = append(keys, k)
			if sub, ok := v.(map[string]any); ok {
				walk(sub)
			}
		}
	}
	walk(m)
	return keys
}

func TestProblemsNameTheirKeys(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string // substrings of the problem list
	}{
		{"unknown key with suggestion", "engine:\n  confrim_after: 3\n", []string{`engine.confrim_after (line 2): unknown key (did you mean "confirm_after"?)`}},
		{"unknown top level", "listne: 1.2.3.4:80\n", []string{`listne (line 1): unknown key (did you mean "listen"?)`}},
		{"bad duration", "engine:\n  stale_after: soon\n", []string{"want a duration such as 30s or 5m"}},
		{"bad size", "ingest:\n  max_body_bytes: lots\n", []string{"want a size such as 16MiB"}},
		{"flap low zero", "engine:\n  flap: {high: 0.5, low: 0}\n", []string{"engine.flap.low (line 2): must be above 0"}},
		{"too many labels", "ingest:\n  labels: [" + strings.Repeat("k,", 64) + "k]\n", []string{"ingest.labels (line 2): at most 64 keys"}},
		{"label twice", "ingest:\n  labels: [a, b, a]\n", []string{`ingest.labels[2] (line 2): "a" is listed twice`}},
		{"flap order", "engine:\n  flap: {high: 0.2, low: 0.3}\n", []string{"engine.flap.low (line 2): must be above 0 and below flap.high"}},
		{"ratio", "engine:\n  region: {outage_ratio: 0}\n", []string{"engine.region.outage_ratio (line 2): must be in (0, 1]"}},
		{"min hosts past the engine's range", "engine:\n  region: {min_hosts: 3000000000}\n", []string{"engine.region.min_hosts (line 2): must be between 1 and 2147483647"}},
		{"forget before stale", "engine: {stale_after: 10m, forget_after: 5m}\n", []string{"engine.forget_after (line 1): must be 0 (never) or at least engine.stale_after"}},
		{"negative forget_after", "engine:\n  forget_after: -1h\n", []string{"engine.forget_after (line 2): must be 0 (never)"}},
		{"rule stale past forget_after", "engine: {forget_after: 24h}\nchecks:\n  - {match: backup, stale_after: 26h}\n", []string{"checks[0].stale_after (line 3): must not exceed engine.forget_after"}},
		{"regex", "ingest:\n  region_from_host: '('\n", []string{"ingest.region_from_host (line 2): not a valid regular expression"}},
		{"two groups", "ingest:\n  region_from_host: '(a)(b)'\n", []string{"use at most one capture group"}},
		{"listen", "listen: nonsense\n", []string{"listen (line 1): want host:port"}},
		{"tick slower than staleness", "engine: {tick_every: 1h}\n", []string{"engine.tick_every (line 1): must not exceed engine.stale_after"}},
		{"tick slower than a rule's staleness", "engine: {tick_every: 1m}\nchecks:\n  - {match: 'ping*', stale_after: 20s}\n",
			[]string{"checks[0].stale_after (line 3): must be at least engine.tick_every"}},
		{"listen on a service name", "listen: 127.0.0.1:http\n", []string{`listen (line 1): port "http": want a number from 0 to 65535`}},
		{"rule without match: the item's line", "engine: {}\nchecks:\n  - {team: x}\n", []string{"checks[0].match (line 3): must not be empty"}},
		{"listen port out of range", "listen: 127.0.0.1:190010\n", []string{`listen (line 1): port "190010": want a number from 0 to 65535`}},
		{"decoded below body", "ingest: {max_body_bytes: 2MiB, max_decoded_bytes: 1MiB}\n", []string{"ingest.max_decoded_bytes (line 1): must be at least max_body_bytes"}},
		{"check rule", "checks:\n  - {match: '', severity: loud}\n", []string{"checks[0].match (line 2): must not be empty", `checks[0].severity (line 2): "loud" is not one of`}},
		{"duplicate field names", "ingest:\n  fields: {host: name, check: name}\n", []string{`"name" is already the name of`}},
		{"field renamed onto another's default", "ingest:\n  fields: {host: check}\n", []string{`ingest.fields.host (line 2): "check" is the name of field check (its default): choose another, or rename check too`}},
		{"grafana interval", "grafana: {interval: 15s}\npagerduty: {routing_keys: {default: PD}}\n", []string{"grafana.interval (line 1): must be a positive multiple of 10s"}},
		{"grafana without pagerduty", "grafana: {}\n", []string{"grafana (line 1): needs pagerduty.routing_keys"}},
		{"grafana folder uid", "grafana: {folder_uid: 'has space'}\npagerduty: {routing_keys: {default: PD}}\n", []string{"grafana.folder_uid (line 1): must be 1 to 40"}},
		{"grafana root folder uid", "grafana: {folder_uid: general}\n", []string{`grafana.folder_uid (line 1): "general" is Grafana's root folder`}},
		{"routing mode", "grafana: {routing: email}\npagerduty: {routing_keys: {default: PD}}\n", []string{`grafana.routing (line 1): "email" is not one of`}},
		{"route to unknown key", "pagerduty:\n  routing_keys: {default: PD}\n  routes: [{match: {team: x}, key: nope}]\n", []string{`pagerduty.routes[0].key (line 3): "nope" is not in pagerduty.routing_keys`}},
		{"route label", "pagerduty:\n  routing_keys: {default: PD}\n  routes: [{match: {colour: x}, key: default}]\n", []string{"pagerduty.routes[0].match.colour (line 3): can match"}},
		{"no default key", "pagerduty:\n  routing_keys: {storage: PD}\n", []string{`needs a key named "default"`}},
		{"env var name", "pagerduty:\n  routing_keys: {default: 'lower case'}\n", []string{"value names the environment variable"}},
		{"not a mapping", "- a\n- b\n", []string{"the top level must be a mapping"}},
		{"yaml syntax", "listen: [\n", []string{"(file)"}},
		{"host route on a check", "pagerduty:\n  routing_keys: {default: PD, storage: PD2}\n  routes: [{match: {check: lvm, level: host}, key: storage}]\n",
			[]string{"pagerduty.routes[0].match.check (line 3): a host alert carries no check"}},
		{"check route naming a host", "pagerduty:\n  routing_keys: {default: PD, storage: PD2}\n  routes: [{match: {check: lvm, host: db-1}, key: storage}]\n",
			[]string{"pagerduty.routes[0].match.check (line 3): a host alert carries no check"}},
		{"url credentials", "external_url: 'https://ops:hunter2@hr.example'\ngrafana: {url: 'https://admin:s3cret@grafana:3000'}\npagerduty: {routing_keys: {default: PD}, api_url: 'https://u@api.pagerduty.com'}\n",
			[]string{"external_url (line 1): must not carry credentials", "grafana.url (line 2): must not carry credentials", "pagerduty.api_url (line 3): must not carry credentials"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), env(nil))
			if err == nil {
				t.Fatal("want problems, got none")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("problems\n%v\nlack %q", err, w)
				}
			}
		})
	}
}

func TestEveryProblemIsReported(t *testing.T) {
	_, err := Parse([]byte("listen: x\nengine:\n  confirm_after: 0\n  bogus: 1\nlog: {level: loud}\n"), env(nil))
	ps, ok := err.(Problems)
	if !ok || len(ps) != 4 {
		t.Fatalf("want 4 problems at once, got %v", err)
	}
}

func TestSecretsFromEnvironmentAndFiles(t *testing.T) {
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "ingest")
	os.WriteFile(tokFile, []byte("# rotated monthly\nfile-token-aaaaaaaaaaaa\n\nfile-token-bbbbbbbbbbbb\n"), 0o600)
	adminFile := filepath.Join(dir, "admin")
	os.WriteFile(adminFile, []byte("admin-from-file-xxxxxxx\n"), 0o600)
	y := fmt.Sprintf("auth: {ingest_tokens_file: %s, admin_token_file: %s}\ngrafana: {}\npagerduty:\n  routing_keys: {default: PD_DEFAULT, storage: PD_STORAGE}\n", tokFile, adminFile)
	cfg, err := Parse([]byte(y), env(map[string]string{
		EnvIngestTokens:      "env-token-cccccccccccc, env-token-dddddddddddd",
		EnvGrafanaToken:      "grafana-secret",
		EnvPagerDutyAPIToken: "pd-rest-token",
		"PD_DEFAULT":         "0123456789abcdef0123456789abcdef",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Auth.IngestTokens) != 4 || cfg.Auth.IngestTokens[3].Reveal() != "env-token-dddddddddddd" {
		t.Fatalf("ingest tokens: %d", len(cfg.Auth.IngestTokens))
	}
	if cfg.Auth.AdminToken.Reveal() != "admin-from-file-xxxxxxx" || cfg.Grafana.Token.Reveal() != "grafana-secret" ||
		cfg.PagerDuty.APIToken.Reveal() != "pd-rest-token" {
		t.Fatal("secrets not loaded")
	}
	missing := cfg.MissingSecrets()
	if len(missing) != 1 || missing[0].Key != "pagerduty.routing_keys.storage" || !strings.Contains(missing[0].Message, "PD_STORAGE") {
		t.Fatalf("missing secrets: %v", missing)
	}
	// Secrets never render, whatever prints them.
	for _, s := range []string{
		fmt.Sprint(cfg.Auth.IngestTokens), fmt.Sprintf("%v %+v %#v", cfg.Auth, cfg.Auth, cfg.Auth),
		mustJSON(cfg), mustYAML(cfg),
	} {
		for _, secret := range []string{"file-token-aaaa", "env-token-cccc", "admin-from-file", "grafana-secret", "pd-rest-token", "0123456789abcdef"} {
			if strings.Contains(s, secret) {
				t.Fatalf("secret %q rendered in %q", secret, s)
			}
		}
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }
func mustYAML(v any) string { b, _ := yaml.Marshal(v); return string(b) }

func TestShortTokensRefused(t *testing.T) {
	_, err := Parse(nil, env(map[string]string{EnvIngestTokens: "short", EnvAdminToken: "also-short"}))
	if err == nil || !strings.Contains(err.Error(), "HEALTHROUTER_INGEST_TOKENS: token 1 is shorter than 16") ||
		!strings.Contains(err.Error(), "HEALTHROUTER_ADMIN_TOKEN: shorter than 16") {
		t.Fatalf("want short tokens refused, got %v", err)
	}

	// With a file too, each short token is named by where it came from,
	// counted there: the file's tokens come first.
	file := filepath.Join(t.TempDir(), "ingest-tokens")
	if err := os.WriteFile(file, []byte("# rotation\nlong-enough-token-one\nshort-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	y := "auth: {ingest_tokens_file: " + file + "}\n"
	_, err = Parse([]byte(y), env(map[string]string{EnvIngestTokens: "long-enough-env-token,tiny"}))
	if err == nil || !strings.Contains(err.Error(), "auth.ingest_tokens_file (line 1): token 2 is shorter than 16") ||
		!strings.Contains(err.Error(), "HEALTHROUTER_INGEST_TOKENS: token 2 is shorter than 16") ||
		strings.Contains(err.Error(), "token 1 ") || strings.Contains(err.Error(), "token 4") {
		t.Fatalf("want the file's second and the variable's second token named, got %v", err)
	}
}

// The admin token may not double as an ingest token: every sender holds
// the ingest tokens.
func TestAdminTokenMustDifferFromIngestTokens(t *testing.T) {
	const shared = "shared-token-0123456789"
	_, err := Parse(nil, env(map[string]string{EnvIngestTokens: "ingest-token-0123456789," + shared, EnvAdminToken: shared}))
	if err == nil || !strings.Contains(err.Error(), "HEALTHROUTER_ADMIN_TOKEN: the admin token is also an ingest token") ||
		strings.Contains(err.Error(), shared) {
		t.Fatalf("want the shared token refused without echoing it, got %v", err)
	}
	if _, err := Parse(nil, env(map[string]string{EnvIngestTokens: "ingest-token-0123456789", EnvAdminToken: "admin-token-0123456789"})); err != nil {
		t.Fatalf("distinct tokens refused: %v", err)
	}
}

// A token file's problems point at the key that names the file.
func TestTokenFileProblemHasItsLine(t *testing.T) {
	file := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(file, []byte("admin-token-one-0123456789\nadmin-token-two-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Parse([]byte("listen: 127.0.0.1:8080\nauth:\n  admin_token_file: "+file+"\n"), env(nil))
	if err == nil || !strings.Contains(err.Error(), "auth.admin_token_file (line 3): must hold exactly one token") {
		t.Fatalf("want the token file's problem on line 3, got %v", err)
	}
}

func TestEventsURLAcceptsBothSpellings(t *testing.T) {
	for _, u := range []string{"https://events.pagerduty.com", "https://events.pagerduty.com/", "https://events.pagerduty.com/v2/enqueue"} {
		cfg, err := Parse([]byte("pagerduty:\n  routing_keys: {default: PD}\n  events_url: "+u+"\n"), env(nil))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.PagerDuty.EventsURL != "https://events.pagerduty.com" {
			t.Errorf("%s -> %s", u, cfg.PagerDuty.EventsURL)
		}
	}
}

func TestForgetAfter(t *testing.T) {
	tests := []struct {
		yaml string
		want time.Duration
	}{
		{"engine: {forget_after: 168h}\n", 168 * time.Hour},
		{"engine: {forget_after: 0}\n", 0},
		{"engine: {stale_after: 10m, forget_after: 10m}\n", 10 * time.Minute},
		{"engine: {forget_after: 24h}\nchecks:\n  - {match: backup, stale_after: 24h}\n", 24 * time.Hour},
	}
	for _, tt := range tests {
		cfg, err := Parse([]byte(tt.yaml), env(nil))
		if err != nil {
			t.Errorf("%q: %v", tt.yaml, err)
			continue
		}
		if got := cfg.Engine.ForgetAfter.D(); got != tt.want {
			t.Errorf("%q: forget_after %s, want %s", tt.yaml, got, tt.want)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]Bytes{"16MiB": 16 << 20, "512KiB": 512 << 10, "1GiB": 1 << 30, "1MB": 1e6, "1024": 1024, "64 MiB": 64 << 20, "10B": 10} {
		got, err := ParseBytes(in)
		if err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1", "1.5MiB", "12XB", "99999999999999999GiB"} {
		if _, err := ParseBytes(bad); err == nil {
			t.Errorf("ParseBytes(%q) accepted", bad)
		}
	}
	if s := Bytes(16 << 20).String(); s != "16MiB" {
		t.Errorf("String = %s", s)
	}
}

func TestLinkURL(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"external_url wins, without its trailing slash", Config{Listen: "0.0.0.0:8080", ExternalURL: "https://hr.example.com/"}, "https://hr.example.com"},
		{"listen address", Config{Listen: "0.0.0.0:8080"}, "http://0.0.0.0:8080"},
		{"listen address over TLS", Config{Listen: "10.0.0.1:8443", TLS: TLS{CertFile: "c", KeyFile: "k"}}, "https://10.0.0.1:8443"},
	}
	for _, tt := range tests {
		if got := tt.cfg.LinkURL(); got != tt.want {
			t.Errorf("%s: LinkURL = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// A routing key's fingerprint tells whether the key changed between runs,
// and never gives the key away.
func TestKeyFingerprint(t *testing.T) {
	const a, b = "R0ut1ngKeyDefault000000000000001", "R0ut1ngKeyDefault000000000000002"
	pd := &PagerDuty{Keys: map[string]Secret{"default": a, "rotated": b, "unset": ""}}
	fp := pd.KeyFingerprint("default")
	if len(fp) != 16 || strings.Contains(a, fp) || strings.Contains(fp, a[:8]) {
		t.Errorf("fingerprint %q", fp)
	}
	// Stored in Grafana's contact points and on disk: a new way of
	// computing it would rewrite every contact point and forget every
	// direct page on upgrade.
	if fp != "19b3fcf703fce1d0" {
		t.Errorf("fingerprint %q changed", fp)
	}
	if again := (&PagerDuty{Keys: map[string]Secret{"other": a}}).KeyFingerprint("other"); again != fp {
		t.Errorf("the same key under another name: %q, want %q", again, fp)
	}
	if pd.KeyFingerprint("rotated") == fp {
		t.Error("two keys share a fingerprint")
	}
	if got := pd.KeyFingerprint("unset") + pd.KeyFingerprint("missing"); got != "" {
		t.Errorf("unset keys: %q, want none", got)
	}
}

func TestURLCredentialsNeverEchoed(t *testing.T) {
	_, err := Parse([]byte("grafana: {url: 'https://admin:s3cret@grafana:3000'}\npagerduty: {routing_keys: {default: PD}}\n"), env(nil))
	if err == nil || !strings.Contains(err.Error(), "grafana.url") {
		t.Fatalf("want grafana.url refused, got %v", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("the problem echoes the URL's credentials: %v", err)
	}
}

func TestRouteNotes(t *testing.T) {
	y := `pagerduty:
  routing_keys: {default: PD, storage: PD2}
  routes:
    - {match: {check: lvm}, key: storage}
    - {match: {check: lvm, level: region}, key: storage}
    - {match: {check: not_reporting}, key: storage}
    - {match: {check: not_reporting, level: host}, key: storage}
    - {match: {team: storage}, key: storage}
`
	cfg, err := Parse([]byte(y), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	notes := cfg.PagerDuty.RouteNotes()
	if len(notes) != 1 || !strings.HasPrefix(notes[0], `pagerduty.routes[0] matches check "lvm": only the region alert`) {
		t.Fatalf("route notes %q, want one for routes[0]", notes)
	}
	if all := cfg.PagerDuty.Notes(); len(all) != 1 {
		t.Fatalf("notes %q", all)
	}
}
