package pagerduty

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/pagerduty/pagerdutytest"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// verifyKeys names one routing key per outcome Verify reports.
var verifyKeys = []string{"default", "no-service", "disabled", "no-policy", "policy-gone", "no-rules",
	"no-targets", "events-v1", "unset", "low-urgency", "warnings-high", "critical-only", "off-hours-low"}

// urgencyRoutes send each urgency case its alerts: every severity, or
// critical only.
var urgencyRoutes = []config.Route{
	{Match: map[string]string{"team": "quiet"}, Key: "low-urgency"},
	{Match: map[string]string{"team": "loud"}, Key: "warnings-high"},
	{Match: map[string]string{"team": "db", "severity": "critical"}, Key: "critical-only"},
	{Match: map[string]string{"team": "night"}, Key: "off-hours-low"},
}

// routingKeyFor makes a distinct 32-character alphanumeric key per name.
func routingKeyFor(name string) string {
	k := strings.ToUpper(strings.NewReplacer("-", "", "_", "").Replace(name))
	return (k + strings.Repeat("0", 32))[:31] + "9"
}

// verifyWorld is a PagerDuty account with a service per outcome, past the
// first page of services so Verify must paginate.
func verifyWorld(t *testing.T, opts ...pagerdutytest.Option) (*config.PagerDuty, *pagerdutytest.Server) {
	t.Helper()
	var keys []string
	for _, n := range verifyKeys {
		keys = append(keys, routingKeyFor(n))
	}
	pd := pagerdutytest.New(append([]pagerdutytest.Option{pagerdutytest.WithAPIToken(apiToken),
		pagerdutytest.WithRoutingKeys(keys...)}, opts...)...)
	t.Cleanup(pd.Close)

	pd.AddEscalationPolicy(pagerdutytest.EscalationPolicy{ID: "PEP1", Name: "Web on-call", Rules: [][]string{{"PU1"}, {"PU2", "PU3"}}})
	pd.AddEscalationPolicy(pagerdutytest.EscalationPolicy{ID: "PEP2", Name: "Empty"})
	pd.AddEscalationPolicy(pagerdutytest.EscalationPolicy{ID: "PEP3", Name: "Half set up", Rules: [][]string{{"PU1"}, {}}})
	for i := range 120 {
		pd.AddService(pagerdutytest.Service{ID: fmt.Sprintf("PFILL%03d", i), Name: fmt.Sprintf("filler %d", i),
			EscalationPolicyID: "PEP1", Integrations: []pagerdutytest.Integration{
				{ID: fmt.Sprintf("PIF%03d", i), Name: "email", Type: pagerdutytest.TypeEmail}}})
	}
	v2 := func(name string) []pagerdutytest.Integration {
		return []pagerdutytest.Integration{{ID: "PI" + strings.ToUpper(name), Name: "healthrouter", Key: routingKeyFor(name)}}
	}
	pd.AddService(pagerdutytest.Service{ID: "PWEB", Name: "Web", EscalationPolicyID: "PEP1", Integrations: v2("default"),
		Urgency: "severity_based"})
	pd.AddService(pagerdutytest.Service{ID: "PLOW", Name: "Quiet", EscalationPolicyID: "PEP1", Integrations: v2("low-urgency"),
		Urgency: "low"})
	pd.AddService(pagerdutytest.Service{ID: "PLOUD", Name: "Loud", EscalationPolicyID: "PEP1", Integrations: v2("warnings-high")})
	pd.AddService(pagerdutytest.Service{ID: "PDB", Name: "Databases", EscalationPolicyID: "PEP1", Integrations: v2("critical-only")})
	pd.AddService(pagerdutytest.Service{ID: "PNIGHT", Name: "Office hours", EscalationPolicyID: "PEP1", Integrations: v2("off-hours-low"),
		Urgency: "severity_based", OffHoursUrgency: "low"})
	pd.AddService(pagerdutytest.Service{ID: "POFF", Name: "Retired", Disabled: true, EscalationPolicyID: "PEP1", Integrations: v2("disabled")})
	pd.AddService(pagerdutytest.Service{ID: "PNOEP", Name: "Orphan", Integrations: v2("no-policy")})
	pd.AddService(pagerdutytest.Service{ID: "PGONE", Name: "Dangling", EscalationPolicyID: "PDELETED", Integrations: v2("policy-gone")})
	pd.AddService(pagerdutytest.Service{ID: "PEMPTY", Name: "Nobody", EscalationPolicyID: "PEP2", Integrations: v2("no-rules")})
	pd.AddService(pagerdutytest.Service{ID: "PHALF", Name: "Half", EscalationPolicyID: "PEP3", Integrations: v2("no-targets")})
	pd.AddService(pagerdutytest.Service{ID: "PV1", Name: "Legacy", EscalationPolicyID: "PEP1", Integrations: []pagerdutytest.Integration{
		{ID: "PIV1", Name: "old events", Type: pagerdutytest.TypeEventsV1, Key: routingKeyFor("events-v1")}}})

	cfg := testConfig(pd.URL())
	cfg.Routes = append(cfg.Routes, urgencyRoutes...)
	cfg.RoutingKeys, cfg.Keys = map[string]string{}, map[string]config.Secret{}
	for _, n := range verifyKeys {
		cfg.RoutingKeys[n] = "HEALTHROUTER_PD_" + strings.ToUpper(strings.ReplaceAll(n, "-", "_"))
		if n != "unset" {
			cfg.Keys[n] = config.Secret(routingKeyFor(n))
		}
	}
	return cfg, pd
}

func assertNoKeys(t *testing.T, where, text string, cfg *config.PagerDuty) {
	t.Helper()
	for name, k := range cfg.Keys {
		if strings.Contains(text, k.Reveal()) {
			t.Errorf("%s shows the routing key of %s", where, name)
		}
	}
	if strings.Contains(text, cfg.APIToken.Reveal()) {
		t.Errorf("%s shows the API token", where)
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s:\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func TestVerifyReportsEachFailureKind(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []pagerdutytest.Option
	}{
		{"integrations included", nil},
		{"integrations as references", []pagerdutytest.Option{pagerdutytest.WithIntegrationReferences()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _ := verifyWorld(t, tt.opts...)
			var out bytes.Buffer
			ok, err := Verify(context.Background(), cfg, "", &out)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if ok {
				t.Errorf("ok with broken keys")
			}
			golden(t, "verify.golden", out.Bytes())
			assertNoKeys(t, "Verify output", out.String(), cfg)
		})
	}
}

func TestVerifyAllGood(t *testing.T) {
	cfg, _ := verifyWorld(t)
	for _, n := range verifyKeys {
		if n != "default" {
			delete(cfg.RoutingKeys, n)
			delete(cfg.Keys, n)
		}
	}
	var out bytes.Buffer
	ok, err := Verify(context.Background(), cfg, "", &out)
	if err != nil || !ok {
		t.Fatalf("Verify = %v, %v\n%s", ok, err, out.String())
	}
	if want := "default: OK: service \"Web\" (PWEB), escalation policy \"Web on-call\" (PEP1) with 2 rules, urgency severity-based\n"; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
}

func TestVerifyOneKey(t *testing.T) {
	cfg, _ := verifyWorld(t)
	tests := []struct {
		key, want string
		ok        bool
	}{
		{"default", "default: OK: service \"Web\" (PWEB), escalation policy \"Web on-call\" (PEP1) with 2 rules, urgency severity-based\n", true},
		{"critical-only", "critical-only: OK: service \"Databases\" (PDB), escalation policy \"Web on-call\" (PEP1) with 2 rules, urgency high\n", true},
		{"disabled", "disabled: FAIL: service \"Retired\" (POFF) is disabled\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			var out bytes.Buffer
			ok, err := Verify(context.Background(), cfg, tt.key, &out)
			if err != nil || ok != tt.ok || out.String() != tt.want {
				t.Errorf("Verify(%q) = %v, %v\n%s\nwant %v\n%s", tt.key, ok, err, out.String(), tt.ok, tt.want)
			}
		})
	}
	var out bytes.Buffer
	if ok, err := Verify(context.Background(), cfg, "nope", &out); ok || err == nil || !strings.Contains(err.Error(), `"nope" is not in pagerduty.routing_keys`) {
		t.Errorf("unknown key name: %v, %v", ok, err)
	}
}

func TestVerifyErrors(t *testing.T) {
	cfg, pd := verifyWorld(t)
	tests := []struct {
		name   string
		mutate func(*config.PagerDuty)
		want   string
	}{
		{"no token", func(c *config.PagerDuty) { c.APIToken = "" }, "HEALTHROUTER_PAGERDUTY_API_TOKEN is not set"},
		{"token refused", func(c *config.PagerDuty) { c.APIToken = "WrongToken1234567890" }, "refused (401)"},
		{"API unreachable", func(c *config.PagerDuty) { c.APIURL = "http://127.0.0.1:1" }, "list PagerDuty services"},
		{"no keys", func(c *config.PagerDuty) { c.RoutingKeys = nil }, "routing_keys is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := *cfg
			tt.mutate(&c)
			var out bytes.Buffer
			ok, err := Verify(context.Background(), &c, "", &out)
			if ok || err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Verify = %v, %v; want an error mentioning %q", ok, err, tt.want)
			}
			assertNoKeys(t, "error", err.Error(), cfg)
			if strings.Contains(err.Error(), "WrongToken1234567890") {
				t.Errorf("error shows the token")
			}
		})
	}
	if pd.RESTRequests() == 0 {
		t.Errorf("no REST request reached the fake")
	}
}

func TestSendTest(t *testing.T) {
	pd := newFakePD(t)
	cfg := testConfig(pd.URL())
	var out bytes.Buffer
	if err := SendTest(context.Background(), cfg, "", &out); err != nil {
		t.Fatalf("SendTest: %v\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "default: OK: ") || !strings.HasPrefix(lines[1], "storage: OK: ") {
		t.Errorf("output:\n%s", out.String())
	}
	incs := pd.Incidents()
	if len(incs) != 2 {
		t.Fatalf("incidents %+v, want one per key", incs)
	}
	for _, inc := range incs {
		if inc.Open || inc.Opened != 1 || inc.Resolves != 1 || inc.Last.Severity != "info" {
			t.Errorf("test incident %+v: want opened and resolved, severity info", inc)
		}
		if !strings.HasPrefix(inc.DedupKey, "healthrouter/test/") || !strings.Contains(out.String(), inc.DedupKey) {
			t.Errorf("dedup key %q not reported", inc.DedupKey)
		}
	}
	assertNoKeys(t, "SendTest output", out.String(), cfg)

	out.Reset()
	if err := SendTest(context.Background(), cfg, "storage", &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "storage: OK") || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("one key: %q", out.String())
	}
}

func TestSendTestFailures(t *testing.T) {
	pd := newFakePD(t)
	// echoing quotes the routing key in its error answers.
	echoing := newFakePD(t, pagerdutytest.WithRoutingKeyEcho())
	tests := []struct {
		name    string
		mutate  func(*config.PagerDuty)
		keyName string
		wantErr string
		wantOut string
		echo    bool
	}{
		{"unknown key name", func(*config.PagerDuty) {}, "nope", `"nope" is not in pagerduty.routing_keys`, "", false},
		{"key not set", func(c *config.PagerDuty) { delete(c.Keys, "storage") }, "storage", "1 of 1",
			"storage: FAIL: HEALTHROUTER_PD_STORAGE is not set\n", false},
		{"key unknown to PagerDuty", func(c *config.PagerDuty) { c.Keys["storage"] = "UnknownKeyUnknownKeyUnknownKey00" }, "",
			"1 of 2", "storage: FAIL: trigger: PagerDuty answered 400: Event object is invalid: Invalid routing key\n", false},
		{"key unknown to PagerDuty, which quotes it", func(c *config.PagerDuty) { c.Keys["storage"] = "UnknownKeyUnknownKeyUnknownKey00" }, "",
			"1 of 2", "storage: FAIL: trigger: PagerDuty answered 400: Event object is invalid (routing_key [REDACTED]): Invalid routing key: [REDACTED]\n", true},
		{"PagerDuty down", func(c *config.PagerDuty) { c.EventsURL = "http://127.0.0.1:1" }, "default", "1 of 1",
			"default: FAIL: trigger: error calling the API endpoint", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := pd.URL()
			if tt.echo {
				url = echoing.URL()
			}
			cfg := testConfig(url)
			tt.mutate(cfg)
			var out bytes.Buffer
			err := SendTest(context.Background(), cfg, tt.keyName, &out)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("output %q, want it to contain %q", out.String(), tt.wantOut)
			}
			assertNoKeys(t, "output", out.String()+err.Error(), cfg)
			assertNoKeys(t, "output", out.String()+err.Error(), testConfig(pd.URL()))
		})
	}
}
