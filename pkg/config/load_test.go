package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestEveryProblemOnceWithItsKeyAndLine loads a file holding one of each
// kind of mistake: each is reported once, under its dotted key, with the
// line it is on.
func TestEveryProblemOnceWithItsKeyAndLine(t *testing.T) {
	cfg, err := Load(filepath.Join("testdata", "problems.yaml"), env(nil))
	ps, ok := err.(Problems)
	if !ok {
		t.Fatalf("want Problems, got %v", err)
	}
	want := []struct {
		key  string
		line int
		msg  string
	}{
		{"listen", 2, "want host:port"},
		{"engine.confirm_after", 4, `want a whole number, got "abc"`},
		{"engine.recover_after", 5, "want a single value, not a list"},
		{"engine.stale_after", 6, `want a duration such as 30s or 5m, got "soon"`},
		{"engine.flap.low", 7, `want a number, got "x"`},
		{"engine.confrim_after", 8, `unknown key (did you mean "confirm_after"?)`},
		{"engine.region", 9, `want a mapping of keys, not "3"`},
		{"ingest.max_body_bytes", 11, `want a size such as 16MiB or 1048576, got "lots"`},
		{"ingest.max_in_flight", 12, `want a whole number, got "1.5"`},
		{"ingest.labels", 13, `want a list, not "service"`},
		{"ingest.max_events", 15, "given twice (first on line 14)"},
		{"log.level", 16, `"loud" is not one of`},
		{"checks[0].severity", 18, `"loud" is not one of critical, error, warning, info`},
		{"checks[0].confirm_after", 18, `want a whole number, got "many"`},
		{"grafana.org_id", 21, `want a whole number, got "x"`},
		{"grafana.interval", 22, "must be a positive multiple of 10s"},
		{"pagerduty.routes[0].match.severity", 26, `"Loud" is not one of critical, error, warning, info`},
		{"pagerduty.routes[1].match.level", 27, `"Hosts" is not one of host, region`},
		{"pagerduty.routes[2].key", 28, `"nope" is not in pagerduty.routing_keys`},
		{"pagerduty.resolve_on_recovery", 29, `want true or false, got "maybe"`},
		{"pagerduty.rate_per_minute", 30, `want a whole number, got "lots"`},
	}
	count := map[string]int{}
	for _, p := range ps {
		count[p.Key]++
	}
	for _, w := range want {
		if count[w.key] != 1 {
			t.Errorf("%s reported %d times, want once\n%v", w.key, count[w.key], ps)
			continue
		}
		for _, p := range ps {
			if p.Key == w.key && (p.Line != w.line || !strings.Contains(p.Message, w.msg)) {
				t.Errorf("%s: line %d %q, want line %d and %q", w.key, p.Line, p.Message, w.line, w.msg)
			}
		}
	}
	if len(ps) != len(want) {
		t.Errorf("%d problems, want %d:\n%v", len(ps), len(want), ps)
	}
	// Values that did not decode kept their defaults; the good ones
	// around them were read, and normalised.
	if cfg == nil {
		t.Fatal("no Config returned with the problems")
	}
	if cfg.Engine.ConfirmAfter != 2 || cfg.Engine.Flap.High != 0.5 || cfg.Ingest.MaxEvents != 10 {
		t.Errorf("engine %+v, max_events %d", cfg.Engine, cfg.Ingest.MaxEvents)
	}
	if cfg.Checks[1].Severity != "warning" || cfg.PagerDuty.Routes[2].Match["severity"] != "critical" ||
		cfg.PagerDuty.Routes[2].Match["level"] != "region" {
		t.Errorf("not normalised: checks[1] %+v, routes[2] %v", cfg.Checks[1], cfg.PagerDuty.Routes[2].Match)
	}
	// The secrets the file names are missing as well, and said so.
	missing := cfg.MissingSecrets()
	if len(missing) != 3 {
		t.Errorf("missing secrets %v, want the grafana token and both routing keys", missing)
	}
}

func TestRouteMatchValuesAreNormalised(t *testing.T) {
	tests := []struct {
		match   string
		want    map[string]string
		problem string
	}{
		{"{severity: Warning}", map[string]string{"severity": "warning"}, ""},
		{"{severity: ' CRIT '}", map[string]string{"severity": "critical"}, ""},
		{"{severity: err, team: Storage}", map[string]string{"severity": "error", "team": "Storage"}, ""},
		{"{level: HOST}", map[string]string{"level": "host"}, ""},
		{"{level: region, severity: info}", map[string]string{"level": "region", "severity": "info"}, ""},
		{"{severity: page}", nil, `pagerduty.routes[0].match.severity (line 3): "page" is not one of critical, error, warning, info`},
		{"{level: cluster}", nil, `pagerduty.routes[0].match.level (line 3): "cluster" is not one of host, region`},
	}
	for _, tt := range tests {
		y := "pagerduty:\n  routing_keys: {default: PD}\n  routes: [{match: " + tt.match + ", key: default}]\n"
		cfg, err := Parse([]byte(y), env(nil))
		if tt.problem != "" {
			if err == nil || !strings.Contains(err.Error(), tt.problem) {
				t.Errorf("%s: %v, want %q", tt.match, err, tt.problem)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.match, err)
			continue
		}
		got := cfg.PagerDuty.Routes[0].Match
		if len(got) != len(tt.want) {
			t.Errorf("%s: %v, want %v", tt.match, got, tt.want)
		}
		for k, v := range tt.want {
			if got[k] != v {
				t.Errorf("%s: %s = %q, want %q", tt.match, k, got[k], v)
			}
		}
	}
}

func TestDecodingFollowsAliasesAndMerges(t *testing.T) {
	y := `
checks:
  - &storage {match: 'lvm*', severity: critical, team: storage}
  - {<<: *storage, match: 'raid*', confirm_after: 3}
engine:
  <<: {confirm_after: 5, recover_after: 2}
  confirm_after: 4
`
	cfg, err := Parse([]byte(y), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.Checks[1]; r.Match != "raid*" || r.Team != "storage" || r.Severity != "critical" || r.ConfirmAfter != 3 {
		t.Errorf("merged rule %+v", r)
	}
	if cfg.Engine.ConfirmAfter != 4 || cfg.Engine.RecoverAfter != 2 {
		t.Errorf("merged engine: confirm_after %d recover_after %d, want 4 and 2", cfg.Engine.ConfirmAfter, cfg.Engine.RecoverAfter)
	}
	// A merge bomb (each level merges the one below ten times) is
	// refused, not expanded: 10^8 merges otherwise.
	var b strings.Builder
	b.WriteString("checks:\n  - &m0 {match: x}\n")
	for i := 1; i <= 8; i++ {
		b.WriteString("  - &m" + itoa(i) + " {<<: [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*m" + itoa(i-1))
		}
		b.WriteString("]}\n")
	}
	_, err = Parse([]byte(b.String()), env(nil))
	if err == nil || !strings.Contains(err.Error(), "expands to more than") {
		t.Fatalf("merge bomb: %v", err)
	}
}

func itoa(i int) string { return string(rune('0' + i)) }

func TestTLSPairIsLoaded(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writePair(t, dir, "a")
	otherCert, _ := writePair(t, dir, "b")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM at all\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, cert, key, want string
	}{
		{"good pair", certFile, keyFile, ""},
		{"garbage certificate", garbage, keyFile, "tls.cert_file (line 1): with tls.key_file, not a usable certificate and private key"},
		{"garbage key", certFile, garbage, "tls.cert_file (line 1): with tls.key_file, not a usable certificate and private key"},
		{"key of another certificate", otherCert, keyFile, "private key does not match public key"},
		{"missing key file", certFile, filepath.Join(dir, "nope.pem"), "tls.key_file (line 1): cannot read"},
		{"cert without key", certFile, "", "tls (line 1): cert_file and key_file go together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := "tls: {cert_file: '" + tt.cert + "', key_file: '" + tt.key + "'}\n"
			_, err := Parse([]byte(y), env(nil))
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("%v, want %q", err, tt.want)
			}
		})
	}
}

func writePair(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "healthrouter " + name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+"-cert.pem"), filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestLinesOnlyForValuesFromTheFile: a problem with a value the file set is
// located at its line; one a flag changed since points at no line, as the
// file's line would show a value that is not the one refused.
func TestLinesOnlyForValuesFromTheFile(t *testing.T) {
	y := []byte("listen: nowhere\nengine:\n  flap: {high: 0.2, low: 0.3}\n")
	cases := []struct {
		name     string
		override Override
		want     []string
	}{
		{"from the file", nil, []string{
			"engine.flap.low (line 3): must be above 0 and below flap.high",
			"listen (line 1): want host:port such as 127.0.0.1:8080",
		}},
		{"listen from a flag", func(c *Config) { c.Listen = "still-nowhere" }, []string{
			"engine.flap.low (line 3): must be above 0 and below flap.high",
			"listen: want host:port such as 127.0.0.1:8080",
		}},
		{"flap from a flag", func(c *Config) { c.Engine.Flap.High = 0.1 }, []string{
			"engine.flap.low (line 3): must be above 0 and below flap.high",
			"listen (line 1): want host:port such as 127.0.0.1:8080",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var overrides []Override
			if tc.override != nil {
				overrides = append(overrides, tc.override)
			}
			_, err := Parse(y, env(nil), overrides...)
			if got := strings.Split(fmt.Sprint(err), "\n"); !slices.Equal(got, tc.want) {
				t.Fatalf("problems\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
