package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
)

// TestMaintenanceCommands drives "maintenance add|list|rm" against the real
// binary: what an operator types while draining a host, and the mistakes
// they make on the way.
func TestMaintenanceCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	const admin = "maintenance-admin-0123456789"
	t.Setenv(config.EnvAdminToken, admin)
	p := start(t, t.TempDir())
	// Two results confirm the failure (confirm_after 2).
	for _, ago := range []time.Duration{time.Minute, 30 * time.Second} {
		ev := `{"check":"disk_io","host":"db-1","region":"eu","status":"critical","timestamp":"` + time.Now().Add(-ago).UTC().Format(time.RFC3339) + `"}`
		if code := p.post([]byte(ev)); code != 200 {
			t.Fatalf("post: %d", code)
		}
	}

	cli := func(args ...string) (code int, stdout, stderr string) {
		t.Helper()
		var out, errb bytes.Buffer
		code = run(append([]string{"maintenance"}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}

	code, out, errs := cli("add", "--server", p.url, "--region", "eu", "--host", "db-1", "--check", "disk*", "--for", "2h", "--reason", "drain for RAID rebuild")
	if code != 0 {
		t.Fatalf("add: exit %d: %s", code, errs)
	}
	m := regexp.MustCompile(`^window (\S+): region eu host db-1 checks disk\* until (\S+) \(drain for RAID rebuild\)\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("add printed %q", out)
	}
	id := m[1]
	until, err := time.Parse(time.RFC3339, m[2])
	if left := time.Until(until); err != nil || left < 119*time.Minute || left > 121*time.Minute {
		t.Fatalf("until %q (%v), want about 2h from now", m[2], err)
	}

	code, out, errs = cli("list", "--server", p.url)
	if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "drain for RAID rebuild") {
		t.Fatalf("list: exit %d\n%s%s", code, out, errs)
	}
	var alerts struct {
		Suppressed []struct {
			Host       string `json:"host"`
			Suppressed string `json:"suppressed_by"`
		} `json:"suppressed"`
	}
	p.get(t, "/v1/alerts", &alerts)
	if len(alerts.Suppressed) != 1 || alerts.Suppressed[0].Host != "db-1" || alerts.Suppressed[0].Suppressed != "maintenance" {
		t.Fatalf("suppressed alerts %+v, want db-1 by maintenance", alerts.Suppressed)
	}

	// Flags after the id belong to rm, not to the list of ids.
	code, out, errs = cli("rm", id, "--server", p.url)
	if code != 0 || out != "window "+id+" ended\n" {
		t.Fatalf("rm: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, _ = cli("list", "--server", p.url)
	if code != 0 || strings.Contains(out, id) {
		t.Fatalf("list after rm: exit %d\n%s", code, out)
	}

	failures := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown window", []string{"rm", "--server", p.url, id}, 1, "(404)"},
		{"no window id", []string{"rm", "--server", p.url}, 2, "give the window id"},
		{"no length", []string{"add", "--server", p.url, "--region", "eu", "--reason", "x"}, 2, "--for or --until is required"},
		{"both lengths", []string{"add", "--server", p.url, "--region", "eu", "--reason", "x", "--for", "1h", "--until", "2030-01-01T00:00:00Z"}, 2, "not both"},
		{"bad until", []string{"add", "--server", p.url, "--region", "eu", "--reason", "x", "--until", "tomorrow"}, 2, "want RFC3339"},
		{"server refuses no region", []string{"add", "--server", p.url, "--reason", "x", "--for", "1h"}, 1, "(400)"},
		{"unknown subcommand", []string{"extend"}, 2, "want add, list or rm"},
	}
	for _, f := range failures {
		t.Run(f.name, func(t *testing.T) {
			code, _, errs := cli(f.args...)
			if code != f.code || !strings.Contains(errs, f.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errs, f.code, f.want)
			}
		})
	}

	t.Run("wrong admin token", func(t *testing.T) {
		t.Setenv(config.EnvAdminToken, "not-the-admin-token-000000")
		code, _, errs := cli("add", "--server", p.url, "--region", "eu", "--reason", "x", "--for", "1h")
		if code != 1 || !strings.Contains(errs, "(401)") {
			t.Errorf("exit %d, stderr %q; want 1 and a 401", code, errs)
		}
		if strings.Contains(errs, "not-the-admin-token") {
			t.Errorf("the token was printed: %q", errs)
		}
	})
}
