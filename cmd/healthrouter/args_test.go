package main

import (
	"bytes"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/grafana/grafanatest"
)

// runCLI runs the command line in-process.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// A word a command does not take is refused, never read as the end of the
// flags: "check-config problems.yaml" used to check the embedded defaults,
// and every flag after a stray word was dropped.
func TestCommandsRefuseLeftoverWords(t *testing.T) {
	var requests atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		_, _ = w.Write([]byte(`{"windows":[]}`))
	}))
	defer api.Close()
	dir := t.TempDir()
	existing := filepath.Join(dir, "healthrouter-config")
	if err := os.WriteFile(existing, []byte("listen: 127.0.0.1:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const hint = "use --config FILE"
	tests := []struct {
		args   []string
		code   int
		want   string
		noHint bool // the word does not look like a file, or the command reads no config
	}{
		{args: []string{"check-config", "problems.yaml"}, code: 2, want: `unexpected argument "problems.yaml"`},
		{args: []string{"check-config", existing}, code: 2, want: `unexpected argument "` + existing + `"`},
		{args: []string{"check-config", "problems"}, code: 2, want: `unexpected argument "problems"`, noHint: true},
		{args: []string{"check-config", "a.yml", "b"}, code: 2, want: `unexpected arguments "a.yml", "b"`},
		// A bad --listen before the word fails fast if the word is ignored.
		{args: []string{"serve", "--listen", "nowhere", "problems.yaml", "--data-dir", dir}, code: 2, want: `unexpected argument "problems.yaml"`},
		{args: []string{"plan", "conf/hr.yaml", "--regions", "eu"}, code: 1, want: `unexpected argument "conf/hr.yaml"`},
		{args: []string{"apply", "hr.yaml"}, code: 2, want: `unexpected argument "hr.yaml"`},
		{args: []string{"export", "hr.yaml", "--regions", "eu"}, code: 2, want: `unexpected argument "hr.yaml"`},
		{args: []string{"pagerduty", "test", "hr.yaml"}, code: 2, want: `unexpected argument "hr.yaml"`},
		{args: []string{"pagerduty", "verify", "--key", "default", "now"}, code: 2, want: `unexpected argument "now"`, noHint: true},
		{args: []string{"replay", "a.ndjson", "hr.yaml"}, code: 2, want: `want exactly one FILE; unexpected argument "hr.yaml"`},
		{args: []string{"report", "x", "--server", api.URL}, code: 2, want: `unexpected argument "x"`, noHint: true},
		{args: []string{"maintenance", "list", "x", "--server", api.URL}, code: 2, want: `unexpected argument "x"`, noHint: true},
		{args: []string{"maintenance", "add", "eu", "--server", api.URL, "--region", "eu", "--for", "1h", "--reason", "r"}, code: 2,
			want: `unexpected argument "eu"`, noHint: true},
		// No --config to point at: no hint, whatever the word looks like.
		{args: []string{"hosts", "forget", "web-1", "web-2.yaml", "--server", api.URL}, code: 2,
			want: `give one host name; unexpected argument "web-2.yaml"`, noHint: true},
		{args: []string{"probe", "healthz.json", "--url", api.URL}, code: 2, want: `unexpected argument "healthz.json"`, noHint: true},
		{args: []string{"version", "--", "x"}, code: 2, want: `unexpected argument "x"`, noHint: true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := runCLI(tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.want)
			}
			if hinted := strings.Contains(stderr, hint); hinted == tt.noHint {
				t.Errorf("stderr %q: hint %q shown %v, want %v", stderr, hint, hinted, !tt.noHint)
			}
			if stdout != "" {
				t.Errorf("printed %q on a usage error", stdout)
			}
		})
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("usage errors sent %d requests", n)
	}
	// The same commands with flags only still run.
	if code, out, errs := runCLI("maintenance", "list", "--server", api.URL); code != 0 || requests.Load() != 1 || !strings.HasPrefix(out, "ID") {
		t.Errorf("maintenance list: exit %d, %d requests, %q %q", code, requests.Load(), out, errs)
	}
	if code, out, errs := runCLI("check-config", "--config", existing); code != 0 || out != "ok: "+existing+"\n" {
		t.Errorf("check-config --config: exit %d, %q %q", code, out, errs)
	}
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		maxArgs    int
		positional []string
		region     string
		verbose    bool
		err        string
	}{
		{name: "flags only", args: []string{"--region", "eu", "-v"}, maxArgs: 0, region: "eu", verbose: true},
		{name: "flags after a word", args: []string{"web-1", "--region", "eu"}, maxArgs: 1, positional: []string{"web-1"}, region: "eu"},
		{name: "flags around words", args: []string{"-v", "a", "--region=eu", "b"}, maxArgs: -1, positional: []string{"a", "b"}, region: "eu", verbose: true},
		{name: "after -- every word is positional", args: []string{"--region", "eu", "--", "-v", "--region", "us"}, maxArgs: -1,
			positional: []string{"-v", "--region", "us"}, region: "eu"},
		{name: "stdin dash", args: []string{"-", "-v"}, maxArgs: 1, positional: []string{"-"}, verbose: true},
		{name: "one word too many", args: []string{"a", "b", "--region", "eu"}, maxArgs: 1, err: `unexpected argument "b"`},
		{name: "no word taken", args: []string{"-v", "a", "b"}, maxArgs: 0, err: `unexpected arguments "a", "b"`},
		{name: "bad flag after a word", args: []string{"a", "--colour"}, maxArgs: 1, err: "exit 2"},
		{name: "a flag given twice", args: []string{"--region", "eu", "a", "-region=us"}, maxArgs: 1, err: "--region is given twice; give it once"},
		{name: "a bool given twice", args: []string{"-v", "--v=false"}, maxArgs: 0, err: "--v is given twice; give it once"},
		{name: "a value that looks like the flag", args: []string{"--region", "--region"}, maxArgs: 0, region: "--region"},
		{name: "twice after -- is positional", args: []string{"--region", "eu", "--", "--region", "us"}, maxArgs: -1,
			positional: []string{"--region", "us"}, region: "eu"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(&bytes.Buffer{})
			region := fs.String("region", "", "")
			verbose := fs.Bool("v", false, "")
			got, err := parseArgs(fs, tt.args, tt.maxArgs)
			if tt.err != "" {
				var ee *exitError
				if !errors.As(err, &ee) || ee.code != 2 || (tt.err != "exit 2" && ee.msg != tt.err) {
					t.Fatalf("error %#v, want a usage error %q", err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.positional) || *region != tt.region || *verbose != tt.verbose {
				t.Errorf("got %q, region %q, -v %v, err %v; want %q, %q, %v", got, *region, *verbose, err, tt.positional, tt.region, tt.verbose)
			}
		})
	}
}

// The top-level usage sends people to "healthrouter <command> -h": a
// command made of subcommands answers it with the list of them.
func TestSubcommandHelp(t *testing.T) {
	groups := map[string][]string{
		"maintenance": {"add", "list", "rm"},
		"hosts":       {"forget"},
		"pagerduty":   {"test", "verify"},
	}
	for name, subs := range groups {
		for _, help := range []string{"-h", "--help", "help", "-help"} {
			t.Run(name+" "+help, func(t *testing.T) {
				code, stdout, stderr := runCLI(name, help)
				if code != 0 || stdout != "" || !strings.HasPrefix(stderr, "usage: healthrouter "+name+" <subcommand>") {
					t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and the usage", code, stdout, stderr)
				}
				for _, s := range subs {
					if !strings.Contains(stderr, "\n  "+s) {
						t.Errorf("usage does not list %q:\n%s", s, stderr)
					}
				}
			})
		}
	}
	for _, args := range [][]string{
		{"hosts", "forget", "--help"},
		{"maintenance", "add", "-h"},
		{"maintenance", "rm", "x", "-h"},
		{"pagerduty", "verify", "--help"},
	} {
		code, _, stderr := runCLI(args...)
		if code != 0 || !strings.Contains(stderr, "healthrouter "+args[0]+" "+args[1]) {
			t.Errorf("%q: exit %d, %q; want 0 and the subcommand's usage", args, code, stderr)
		}
	}
	// Mistakes stay usage errors.
	for _, args := range [][]string{{"hosts"}, {"hosts", "list"}, {"maintenance", "extend"}, {"pagerduty", "page"}} {
		if code, _, stderr := runCLI(args...); code != 2 || !strings.Contains(stderr, "want ") {
			t.Errorf("%q: exit %d, %q; want 2", args, code, stderr)
		}
	}
}

// plan's exit code is read by CI: 0 nothing to do, 2 changes pending, 1
// anything else, a mistyped command line included. A failure is said once.
func TestPlanExitCodes(t *testing.T) {
	graf := grafanatest.New()
	defer graf.Close()
	t.Setenv(config.EnvGrafanaToken, graf.Token)
	cfgPath := writeProvisionConfig(t, graf.URL)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	unreachable := writeProvisionConfig(t, closed.URL)

	tests := []struct {
		name string
		args []string
		code int
		// stderr holds want exactly once.
		want string
	}{
		{"changes pending", []string{"--config", cfgPath, "--regions", "eu"}, 2, ""},
		{"unknown flag", []string{"--config", cfgPath, "--regions", "eu", "--dry-run"}, 1, "flag provided but not defined: -dry-run"},
		{"flag without its value", []string{"--config", cfgPath, "--regions"}, 1, "flag needs an argument: -regions"},
		{"leftover word", []string{cfgPath, "--regions", "eu"}, 1, "use --config FILE"},
		{"help", []string{"-h"}, 0, "Usage of healthrouter plan"},
		{"grafana unreachable", []string{"--config", unreachable, "--regions", "eu"}, 1, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(append([]string{"plan"}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.code, stderr)
			}
			if tt.want != "" && strings.Count(stderr, tt.want) != 1 {
				t.Errorf("stderr has %q %d times, want once:\n%s", tt.want, strings.Count(stderr, tt.want), stderr)
			}
		})
	}
	if n := graf.Writes(); n != 0 {
		t.Errorf("plan wrote %d times", n)
	}
}

// The production config names files only the server reads (TLS, token
// files). Tools run elsewhere, a workstation say, do without them; serve
// and check-config still insist.
func TestToolsIgnoreServerOnlyFiles(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "prod.yaml")
	cfg := `tls: {cert_file: /nonexistent/hr.crt, key_file: /nonexistent/hr.key}
auth: {ingest_tokens_file: /nonexistent/tokens}
grafana: {url: "http://grafana.example.com:3000"}
pagerduty: {routing_keys: {default: HR_PD_DEFAULT}}
`
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI("export", "--config", cfgPath, "--regions", "eu-west-1")
	if code != 0 || !strings.Contains(stdout, "hr-host-eu-west-1") {
		t.Errorf("export: exit %d, stderr %q", code, stderr)
	}
	code, stdout, stderr = runCLI("check-config", "--config", cfgPath)
	for _, want := range []string{"tls.cert_file", "auth.ingest_tokens_file"} {
		if code == 0 || !strings.Contains(stdout+stderr, want) {
			t.Errorf("check-config: exit %d, output %q, want a problem with %s", code, stdout+stderr, want)
		}
	}
	// A problem every command meets still stops a tool.
	if err := os.WriteFile(cfgPath, []byte(cfg+"engine: {confirm_after: 0}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCLI("export", "--config", cfgPath, "--regions", "eu-west-1")
	if code == 0 || !strings.Contains(stderr, "engine.confirm_after") || strings.Contains(stderr, "tls.cert_file") {
		t.Errorf("export with a real problem: exit %d, stderr %q", code, stderr)
	}
}

// check-config says what serve will do that the file does not show.
func TestCheckConfigNotes(t *testing.T) {
	t.Setenv(config.EnvIngestTokens, "")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfgPath, []byte("listen: 0.0.0.0:8080\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ := runCLI("check-config", "--config", cfgPath)
	if code != 0 || !strings.Contains(stdout, "note: no ingest token is configured: serve listens on 127.0.0.1:8080, not 0.0.0.0:8080") {
		t.Errorf("exit %d, output %q", code, stdout)
	}
	t.Setenv(config.EnvIngestTokens, "a-token-long-enough-0123")
	code, stdout, _ = runCLI("check-config", "--config", cfgPath)
	if code != 0 || strings.Contains(stdout, "no ingest token") ||
		!strings.Contains(stdout, "note: serve listens on 0.0.0.0:8080 over plain HTTP: bearer tokens cross the network in the clear") {
		t.Errorf("with a token: exit %d, output %q", code, stdout)
	}
}

// Secrets sent over plain http to another host are a note; loopback and
// https are not.
func TestCheckConfigNotesCleartextSecrets(t *testing.T) {
	dir := noteEnv(t)
	for _, tc := range []struct {
		name, yaml string
		notes      []string
	}{
		{"tls and https", "listen: 0.0.0.0:8443\ntls: {cert_file: " + dir + "/none.pem, key_file: " + dir + "/none.key}\n" +
			"grafana: {url: https://grafana.example.net}\npagerduty: {routing_keys: {default: T_PD_DEFAULT}}\n", nil},
		{"loopback", "listen: 127.0.0.1:8080\ngrafana: {url: http://127.0.0.1:3000}\n" +
			"pagerduty: {routing_keys: {default: T_PD_DEFAULT}, events_url: http://localhost:9000}\n", nil},
		{"remote plain http", "listen: 127.0.0.1:8080\ngrafana: {url: http://grafana.example.net:3000}\n" +
			"pagerduty: {routing_keys: {default: T_PD_DEFAULT}, events_url: http://pd-proxy.example.net, api_url: http://pd-proxy.example.net}\n",
			[]string{"grafana.url is plain http to another host: the Grafana token", "pagerduty.events_url is plain http to another host: routing keys",
				"pagerduty.api_url is plain http to another host: the PagerDuty API token"}},
	} {
		stdout := checkConfigOutput(t, dir, "external_url: https://hr.example.net\n"+tc.yaml)
		for _, want := range tc.notes {
			if !strings.Contains(stdout, "note: "+want) {
				t.Errorf("%s: no note %q in\n%s", tc.name, want, stdout)
			}
		}
		if len(tc.notes) == 0 && (strings.Contains(stdout, "in the clear")) {
			t.Errorf("%s: a cleartext note where nothing crosses the network in the clear:\n%s", tc.name, stdout)
		}
	}
}

// A routing key PagerDuty would refuse is a note, named by its variable,
// never shown.
func TestCheckConfigNotesRoutingKeyShape(t *testing.T) {
	t.Setenv(config.EnvIngestTokens, "a-token-long-enough-0123")
	cfgPath := filepath.Join(t.TempDir(), "c.yaml")
	y := "external_url: https://hr.example.net\npagerduty:\n  routing_keys: {default: T_PD_DEFAULT, storage: T_PD_STORAGE, db: T_PD_DB}\n"
	if err := os.WriteFile(cfgPath, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	const good = "0123456789abcdef0123456789ABCDEF"
	t.Setenv("T_PD_DEFAULT", good)
	t.Setenv("T_PD_STORAGE", "shortkey1")
	t.Setenv("T_PD_DB", "0123456789abcdef0123456789abcde/")
	code, stdout, _ := runCLI("check-config", "--config", cfgPath)
	want := []string{
		`note: routing key "db" (T_PD_DB) has 32 characters with some not a letter or digit; PagerDuty's Events API v2 keys are 32 letters and digits`,
		`note: routing key "storage" (T_PD_STORAGE) has 9 characters; PagerDuty's`,
	}
	for _, w := range want {
		if code != 0 || !strings.Contains(stdout, w) {
			t.Errorf("exit %d, output %q; want %q", code, stdout, w)
		}
	}
	for _, secret := range []string{good, "shortkey1", "abcde/"} {
		if strings.Contains(stdout, secret) {
			t.Errorf("output shows a routing key: %q", stdout)
		}
	}
	if strings.Contains(stdout, `"default"`) {
		t.Errorf("a well-formed key got a note: %q", stdout)
	}
}

// PagerDuty without Grafana pages directly all the time: check-config says
// so, since the file does not show it.
func TestCheckConfigNotesDirectMode(t *testing.T) {
	dir := noteEnv(t)
	for _, tc := range []struct {
		name, yaml string
		note       bool
	}{
		{"pagerduty only", "pagerduty: {routing_keys: {default: T_PD_DEFAULT}}\n", true},
		{"with grafana", "grafana: {}\npagerduty: {routing_keys: {default: T_PD_DEFAULT}}\n", false},
	} {
		stdout := checkConfigOutput(t, dir, "external_url: https://hr.example.net\n"+tc.yaml)
		want := "note: pagerduty is configured without grafana: serve pages PagerDuty directly (direct mode), each alert once it has fired for 2m0s (host) or 1m0s (region)"
		if got := strings.Contains(stdout, want); got != tc.note {
			t.Errorf("%s: note %v, want %v\n%s", tc.name, got, tc.note, stdout)
		}
	}
}

// A host pending period too short to hold back the brief host alerts of
// a region-wide failure is a note.
func TestCheckConfigNotesShortHostPending(t *testing.T) {
	dir := noteEnv(t)
	for _, tc := range []struct {
		pending string
		note    bool
	}{{"10s", true}, {"30s", false}, {"2m", false}} {
		stdout := checkConfigOutput(t, dir, "external_url: https://hr.example.net\ngrafana: {pending: {host: "+tc.pending+"}}\n"+
			"pagerduty: {routing_keys: {default: T_PD_DEFAULT}}\n")
		if got := strings.Contains(stdout, "note: grafana.pending.host is "+tc.pending); got != tc.note {
			t.Errorf("pending.host %s: note %v, want %v\n%s", tc.pending, got, tc.note, stdout)
		}
	}
}

// A build stamped at link time (the container image, which has no .git)
// reports that version; otherwise the toolchain's.
func TestVersionStampedAtLinkTime(t *testing.T) {
	defer func(v string) { buildVersion = v }(buildVersion)
	buildVersion = ""
	if v := version(); v == "" || v == "v1.2.3" {
		t.Fatalf("unstamped version %q", v)
	}
	buildVersion = "v1.2.3"
	if code, stdout, _ := runCLI("version"); code != 0 || stdout != "healthrouter v1.2.3\n" {
		t.Fatalf("version: exit %d, %q; want the stamped v1.2.3", code, stdout)
	}
}

// noteEnv sets the ingest token and the T_PD_DEFAULT routing key the note
// tests' configs use, and returns a directory for their files.
func noteEnv(t *testing.T) string {
	t.Helper()
	t.Setenv(config.EnvIngestTokens, "a-token-long-enough-0123")
	t.Setenv("T_PD_DEFAULT", "0123456789abcdef0123456789ABCDEF")
	return t.TempDir()
}

// checkConfigOutput runs check-config on a file in dir holding yaml and
// returns what it printed on stdout.
func checkConfigOutput(t *testing.T, dir, yaml string) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "config-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(yaml); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	_, stdout, _ := runCLI("check-config", "--config", f.Name())
	return stdout
}
