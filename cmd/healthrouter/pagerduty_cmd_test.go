package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/pagerduty/pagerdutytest"
)

// TestPagerDutyCommands runs "pagerduty test|verify" from the real binary
// against the strict fake PagerDuty: what an operator sees, the exit codes
// scripts rely on, and that no routing key or token is ever printed.
func TestPagerDutyCommands(t *testing.T) {
	const (
		apiToken   = "u+CmdTestApiToken0123456789"
		unknownKey = "UnknownToPagerDuty00000000000042"
	)
	pd := pagerdutytest.New(pagerdutytest.WithRoutingKeys(pdDefaultKey, pdStorageKey), pagerdutytest.WithAPIToken(apiToken))
	defer pd.Close()
	pd.AddEscalationPolicy(pagerdutytest.EscalationPolicy{ID: "PEP1", Name: "Web on-call", Rules: [][]string{{"PU1"}}})
	pd.AddService(pagerdutytest.Service{ID: "PWEB", Name: "Web", EscalationPolicyID: "PEP1", Urgency: "severity_based",
		Integrations: []pagerdutytest.Integration{{ID: "PI1", Name: "healthrouter", Key: pdDefaultKey}}})
	pd.AddService(pagerdutytest.Service{ID: "POLD", Name: "Storage (retired)", Disabled: true, EscalationPolicyID: "PEP1",
		Integrations: []pagerdutytest.Integration{{ID: "PI2", Name: "healthrouter", Key: pdStorageKey}}})

	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	cfg := fmt.Sprintf(`
pagerduty:
  routing_keys: {default: TEST_PDCMD_DEFAULT, storage: TEST_PDCMD_STORAGE}
  events_url: %s
  api_url: %s
  timeout: 5s
`, pd.URL(), pd.URL())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	goodEnv := map[string]string{
		"TEST_PDCMD_DEFAULT":        pdDefaultKey,
		"TEST_PDCMD_STORAGE":        pdStorageKey,
		config.EnvPagerDutyAPIToken: apiToken,
	}
	with := func(changes map[string]string) map[string]string {
		env := map[string]string{}
		for k, v := range goodEnv {
			env[k] = v
		}
		for k, v := range changes {
			env[k] = v
		}
		return env
	}
	secrets := []string{pdDefaultKey, pdStorageKey, apiToken, unknownKey, "WrongToken0123456789"}

	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantCode   int
		wantStdout []string // lines, in order; each a prefix of the line
		wantStderr string
	}{
		{"test every key", []string{"test"}, goodEnv, 0,
			[]string{"default: OK: trigger and resolve accepted (dedup_key healthrouter/test/default/",
				"storage: OK: trigger and resolve accepted (dedup_key healthrouter/test/storage/"}, ""},
		{"test one key", []string{"test", "--key", "storage"}, goodEnv, 0,
			[]string{"storage: OK: trigger and resolve accepted"}, ""},
		{"test a key PagerDuty does not know", []string{"test"}, with(map[string]string{"TEST_PDCMD_STORAGE": unknownKey}), 1,
			[]string{"default: OK: ", "storage: FAIL: trigger: PagerDuty answered 400: Event object is invalid: Invalid routing key"},
			"healthrouter pagerduty: test event failed for 1 of 2 routing keys\n"},
		{"test an unknown key name", []string{"test", "--key", "nope"}, goodEnv, 1, nil,
			"healthrouter pagerduty: routing key \"nope\" is not in pagerduty.routing_keys\n"},
		{"verify every key", []string{"verify"}, goodEnv, 1,
			[]string{`default: OK: service "Web" (PWEB), escalation policy "Web on-call" (PEP1) with 1 rules`,
				`storage: FAIL: service "Storage (retired)" (POLD) is disabled`},
			"healthrouter pagerduty: some routing keys do not page as configured (see above)\n"},
		{"verify one good key", []string{"verify", "--key", "default"}, goodEnv, 0,
			[]string{`default: OK: service "Web" (PWEB)`}, ""},
		{"verify one bad key", []string{"verify", "--key", "storage"}, goodEnv, 1,
			[]string{`storage: FAIL: service "Storage (retired)" (POLD) is disabled`},
			"healthrouter pagerduty: some routing keys do not page as configured (see above)\n"},
		{"verify an unknown key name", []string{"verify", "--key", "nope"}, goodEnv, 1, nil,
			"healthrouter pagerduty: routing key \"nope\" is not in pagerduty.routing_keys\n"},
		{"verify without a token", []string{"verify"}, with(map[string]string{config.EnvPagerDutyAPIToken: ""}), 1, nil,
			"healthrouter pagerduty: HEALTHROUTER_PAGERDUTY_API_TOKEN is not set: verify needs a PagerDuty REST API token\n"},
		{"verify with a refused token", []string{"verify"}, with(map[string]string{config.EnvPagerDutyAPIToken: "WrongToken0123456789"}), 1, nil,
			"healthrouter pagerduty: list PagerDuty services: the API token was refused (401): check HEALTHROUTER_PAGERDUTY_API_TOKEN\n"},
		{"no subcommand", nil, goodEnv, 2, nil, "healthrouter pagerduty: want a subcommand: test or verify\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"pagerduty"}, tt.args...)
			if len(tt.args) > 0 {
				args = append(args, "--config", cfgPath)
			}
			cmd := exec.Command(binary, args...)
			cmd.Env = os.Environ()
			for k, v := range tt.env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			code := 0
			if err := cmd.Run(); err != nil {
				var exit *exec.ExitError
				if !errors.As(err, &exit) {
					t.Fatalf("run: %v", err)
				}
				code = exit.ExitCode()
			}
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d\nstdout:\n%sstderr:\n%s", code, tt.wantCode, &stdout, &stderr)
			}
			lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
			if stdout.Len() == 0 {
				lines = nil
			}
			if len(lines) != len(tt.wantStdout) {
				t.Errorf("stdout has %d lines, want %d:\n%s", len(lines), len(tt.wantStdout), &stdout)
			} else {
				for i, want := range tt.wantStdout {
					if !strings.HasPrefix(lines[i], want) {
						t.Errorf("stdout line %d = %q, want it to start %q", i+1, lines[i], want)
					}
				}
			}
			if stderr.String() != tt.wantStderr {
				t.Errorf("stderr = %q, want %q", stderr.String(), tt.wantStderr)
			}
			for _, s := range secrets {
				if strings.Contains(stdout.String()+stderr.String(), s) {
					t.Errorf("output shows a secret:\n%s%s", &stdout, &stderr)
				}
			}
		})
	}
	// Every test event was resolved: nothing left open for on-call.
	for _, inc := range pd.Incidents() {
		if inc.Open {
			t.Errorf("test incident %s left open", inc.DedupKey)
		}
	}
}
