package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/grafana/grafanatest"
)

// Routing keys for the provisioning commands' tests: 32 hex digits.
const (
	provisionKeyDefault = "0123456789abcdef0123456789abcdef"
	provisionKeyStorage = "fedcba9876543210fedcba9876543210"
)

// provisionConfig is the config pkg/grafana's export golden files are made
// from, pointed at url.
const provisionConfig = `
external_url: https://healthrouter.example.com
grafana:
  url: %URL%
  folder_uid: healthrouter
  folder_title: Health checks
  datasource_uid: prometheus
  interval: 1m
  pending: {host: 2m, region: 1m}
  reconcile_every: 5m
pagerduty:
  routing_keys: {default: HR_PD_DEFAULT, storage: HR_PD_STORAGE}
  routes: [{match: {team: storage}, key: storage}]
`

// provisionRun is one run of the binary.
type provisionRun struct {
	code           int
	stdout, stderr string
}

// provisionCmd runs the binary with exactly env (no variable of the test's
// own environment leaks in but PATH) and checks that no secret is printed.
func provisionCmd(t *testing.T, env map[string]string, args ...string) provisionRun {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := provisionRun{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("running %v: %v", args, err)
	}
	for _, secret := range []string{provisionKeyDefault, provisionKeyStorage, env[config.EnvGrafanaToken]} {
		if secret != "" && strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("%v printed a secret:\n%s%s", args, r.stdout, r.stderr)
		}
	}
	return r
}

func writeProvisionConfig(t *testing.T, url string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "healthrouter.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(provisionConfig, "%URL%", url)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestProvisionCommands drives plan and apply against the test Grafana the
// way an operator and CI do: plan's exit code says whether changes are
// pending (0 none, 2 some, 1 error), its output is stable, apply makes plan
// come back clean, and no token or routing key is ever printed.
func TestProvisionCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	srv := grafanatest.New()
	defer srv.Close()
	cfgPath := writeProvisionConfig(t, srv.URL)
	regionsFlag := "--regions=eu-west-1,us-east-1"
	allEnv := map[string]string{
		config.EnvGrafanaToken: srv.Token,
		"HR_PD_DEFAULT":        provisionKeyDefault,
		"HR_PD_STORAGE":        provisionKeyStorage,
	}
	tokenOnly := map[string]string{config.EnvGrafanaToken: srv.Token}

	first := provisionCmd(t, allEnv, "plan", "--config", cfgPath, regionsFlag)
	if first.code != 2 || !strings.HasPrefix(first.stdout, "Grafana plan: 6 to create, 0 to update, 0 to delete.\n") {
		t.Fatalf("plan on an empty Grafana: exit %d\n%s%s", first.code, first.stdout, first.stderr)
	}
	if again := provisionCmd(t, allEnv, "plan", "--config", cfgPath, regionsFlag); again != first {
		t.Fatalf("plan output is not stable:\n%s\n---\n%s", first.stdout, again.stdout)
	}

	// Plan reads Grafana only: without the routing keys it runs, and says
	// what apply will need.
	noKeys := provisionCmd(t, tokenOnly, "plan", "--config", cfgPath, regionsFlag)
	if noKeys.code != 2 || !strings.Contains(noKeys.stdout, "routing key from $HR_PD_STORAGE (not set: apply will fail until it is)") {
		t.Fatalf("plan without routing keys: exit %d\n%s%s", noKeys.code, noKeys.stdout, noKeys.stderr)
	}
	if n := srv.Writes(); n != 0 {
		t.Fatalf("plan wrote %d times", n)
	}

	failures := []struct {
		name string
		env  map[string]string
		args []string
		says string
	}{
		{"plan without the Grafana token", map[string]string{"HR_PD_DEFAULT": provisionKeyDefault}, []string{"plan"}, config.EnvGrafanaToken},
		{"apply without a routing key", tokenOnly, []string{"apply"}, "HR_PD_DEFAULT is not set"},
		{"plan with a missing config", allEnv, []string{"plan", "--config", filepath.Join(t.TempDir(), "nope.yaml")}, "nope.yaml"},
	}
	for _, f := range failures {
		t.Run(f.name, func(t *testing.T) {
			args := f.args
			if len(args) == 1 {
				args = append(args, "--config", cfgPath)
			}
			r := provisionCmd(t, f.env, append(args, regionsFlag)...)
			if r.code != 1 || !strings.Contains(r.stderr, f.says) {
				t.Fatalf("exit %d, want 1 and stderr naming %q\n%s%s", r.code, f.says, r.stdout, r.stderr)
			}
		})
	}
	if n := srv.Writes(); n != 0 {
		t.Fatalf("failed commands wrote %d times", n)
	}

	applied := provisionCmd(t, allEnv, "apply", "--config", cfgPath, regionsFlag)
	if applied.code != 0 || !strings.HasPrefix(applied.stdout, "Applied to Grafana: 6 created, 0 updated, 0 deleted.\n") {
		t.Fatalf("apply: exit %d\n%s%s", applied.code, applied.stdout, applied.stderr)
	}
	if _, key, ok := srv.ContactPoint("hr-pd-storage"); !ok || key != provisionKeyStorage {
		t.Fatal("apply did not write the storage contact point with its key")
	}
	srv.ResetLog()
	for _, env := range []map[string]string{allEnv, tokenOnly} {
		clean := provisionCmd(t, env, "plan", "--config", cfgPath, regionsFlag)
		if clean.code != 0 || !strings.HasPrefix(clean.stdout, "No changes: Grafana matches the desired state.\n") {
			t.Fatalf("plan after apply: exit %d\n%s%s", clean.code, clean.stdout, clean.stderr)
		}
	}
	if n := srv.Writes(); n != 0 {
		t.Fatalf("plan after apply wrote %d times", n)
	}

	if again := provisionCmd(t, allEnv, "apply", "--config", cfgPath, regionsFlag); again.code != 0 ||
		again.stdout != "No changes: Grafana already matched the desired state.\n" {
		t.Fatalf("apply after apply: exit %d\n%s%s", again.code, again.stdout, again.stderr)
	}

	// Grafana failing is an error, not "no changes".
	srv.FailAll(503)
	for _, cmd := range []string{"plan", "apply"} {
		if r := provisionCmd(t, allEnv, cmd, "--config", cfgPath, regionsFlag); r.code != 1 || !strings.Contains(r.stderr, "503") || r.stdout != "" {
			t.Fatalf("%s against a failing Grafana: exit %d, want 1, the error on stderr and nothing on stdout\n%s%s", cmd, r.code, r.stdout, r.stderr)
		}
	}
}

// TestExportCommand checks that export needs no secret and writes exactly
// what pkg/grafana's golden file holds, to stdout or to --out.
func TestExportCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	want, err := os.ReadFile("../../pkg/grafana/testdata/export_notification_settings.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := writeProvisionConfig(t, "http://grafana.example.com:3000")
	r := provisionCmd(t, nil, "export", "--config", cfgPath, "--regions", "us-east-1,eu-west-1")
	if r.code != 0 || r.stdout != string(want) {
		t.Fatalf("export: exit %d, stderr %q; output differs from the golden file:\n%s", r.code, r.stderr, r.stdout)
	}
	out := filepath.Join(t.TempDir(), "alerting.yaml")
	r = provisionCmd(t, nil, "export", "--config", cfgPath, "--regions", "eu-west-1,us-east-1", "--out", out)
	got, err := os.ReadFile(out)
	if r.code != 0 || r.stdout != "" || err != nil || string(got) != string(want) {
		t.Fatalf("export --out: exit %d, stdout %q, read %v; file differs from the golden file:\n%s", r.code, r.stdout, err, got)
	}
	// With the keys set, the export still holds only references to them.
	r = provisionCmd(t, map[string]string{"HR_PD_DEFAULT": provisionKeyDefault, "HR_PD_STORAGE": provisionKeyStorage},
		"export", "--config", cfgPath, "--regions", "eu-west-1,us-east-1")
	if r.code != 0 || r.stdout != string(want) {
		t.Fatalf("export with keys set: exit %d\n%s", r.code, r.stderr)
	}
}
