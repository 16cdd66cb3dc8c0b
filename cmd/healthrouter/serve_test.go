package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/ingest"
	"github.com/healthrouter/healthrouter/pkg/store"
)

// Without any ingest token the server is unauthenticated, so it binds
// loopback whatever --listen asks; with one it binds what was asked.
func TestServeBindsLoopbackOnlyWithoutToken(t *testing.T) {
	for _, tc := range []struct {
		name         string
		tokens       []config.Secret
		wantLoopback bool
	}{
		{"no token", nil, true},
		{"ingest token", []config.Secret{"serve-test-token-0123456789"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Listen = "0.0.0.0:0"
			cfg.DataDir = t.TempDir()
			cfg.Auth.IngestTokens = tc.tokens
			core, logs := observer.New(zap.InfoLevel)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- runServer(ctx, cfg, "embedded defaults", zap.New(core)) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("runServer: %v", err)
				}
			}()
			deadline := time.Now().Add(20 * time.Second)
			for logs.FilterMessage("ready").Len() == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("not ready within 20s: %v", logs.All())
				}
				time.Sleep(10 * time.Millisecond)
			}
			listening := logs.FilterMessage("listening").All()
			if len(listening) != 1 {
				t.Fatalf("%d listening lines", len(listening))
			}
			addr := listening[0].ContextMap()["addr"].(string)
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				t.Fatal(err)
			}
			if ip := net.ParseIP(host); ip == nil || ip.IsLoopback() != tc.wantLoopback {
				t.Fatalf("bound %s, want loopback %v", addr, tc.wantLoopback)
			}
			warned := logs.FilterMessageSnippet("no ingest token configured").Len() > 0
			if warned != tc.wantLoopback {
				t.Errorf("loopback warning logged: %v, want %v", warned, tc.wantLoopback)
			}
			// From another local address the port answers only when
			// not held to loopback.
			if other := nonLoopbackIP(); other != "" {
				conn, err := net.DialTimeout("tcp", net.JoinHostPort(other, port), 2*time.Second)
				if err == nil {
					conn.Close()
				}
				if (err == nil) == tc.wantLoopback {
					t.Errorf("dial %s:%s: %v, want reachable %v", other, port, err, !tc.wantLoopback)
				}
			}
		})
	}
}

// serve logs at start the notes check-config prints about what on-call
// will get, so a deploy that skipped check-config still hears them.
func TestServeLogsPagingNotes(t *testing.T) {
	env := map[string]string{"HEALTHROUTER_GRAFANA_TOKEN": "glsa_serve_notes_token", "T_PD_DEFAULT": "0123456789abcdef0123456789ABCDEF"}
	cfg, err := config.Parse([]byte("grafana: {url: \"http://"+loopbackAddr(t)+"\", pending: {host: 10s}}\n"+
		"pagerduty: {routing_keys: {default: T_PD_DEFAULT}}\n"),
		func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	core, logs := observer.New(zap.InfoLevel)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runServer(ctx, cfg, "test", zap.New(core)) }()
	deadline := time.Now().Add(20 * time.Second)
	for logs.FilterMessage("ready").Len() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runServer: %v", err)
	}
	for _, want := range []string{"external_url is not set: alert links point at http://127.0.0.1:0", "grafana.pending.host is 10s"} {
		if logs.FilterLevelExact(zap.WarnLevel).FilterMessageSnippet(want).Len() != 1 {
			t.Errorf("no single warning %q at start: %v", want, logs.All())
		}
	}
}

func nonLoopbackIP() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}

func TestForceLoopback(t *testing.T) {
	tests := []struct {
		in, want string
		changed  bool
	}{
		{"127.0.0.1:8080", "127.0.0.1:8080", false},
		{"localhost:8080", "localhost:8080", false},
		{"[::1]:8080", "[::1]:8080", false},
		{"0.0.0.0:8080", "127.0.0.1:8080", true},
		{":8080", "127.0.0.1:8080", true},
		{"10.1.2.3:9000", "127.0.0.1:9000", true},
		{"[::]:8080", "127.0.0.1:8080", true},
	}
	for _, tt := range tests {
		got, changed, err := forceLoopback(tt.in)
		if err != nil || got != tt.want || changed != tt.changed {
			t.Errorf("forceLoopback(%q) = %q, %v, %v; want %q, %v", tt.in, got, changed, err, tt.want, tt.changed)
		}
	}
	if _, _, err := forceLoopback("no-port"); err == nil {
		t.Error("an address without a port accepted")
	}
}

// check-config lists every problem of the file and the secrets the
// environment lacks, together.
func TestCheckConfigListsMissingSecretsWithProblems(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	yaml := "engine:\n  confirm_after: abc\n  stale_after: soon\nlog: {level: loud}\n" +
		"pagerduty:\n  routing_keys: {default: HR_CHECK_CONFIG_TEST_PD}\n  routes: [{match: {severity: Loud}, key: default}]\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := checkConfig([]string{"--config", path}, &stdout, &stderr)
	if err == nil {
		t.Fatalf("check-config accepted it:\n%s", stdout.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"5 problem(s):",
		`engine.confirm_after (line 2): want a whole number, got "abc"`,
		`engine.stale_after (line 3): want a duration such as 30s or 5m, got "soon"`,
		`log.level (line 4): "loud" is not one of`,
		`pagerduty.routes[0].match.severity (line 7): "Loud" is not one of`,
		"pagerduty.routing_keys.default: HR_CHECK_CONFIG_TEST_PD is not set",
	} {
		if strings.Count(out, want) != 1 {
			t.Errorf("output has %q %d times, want once:\n%s", want, strings.Count(out, want), out)
		}
	}

	// Flags override the file before it is checked.
	if err := os.WriteFile(path, []byte("listen: nowhere\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	if err := checkConfig([]string{"--config", path, "--listen", "127.0.0.1:9999"}, &stdout, &stderr); err != nil {
		t.Fatalf("--listen did not replace the file's listen: %v\n%s", err, stdout.String())
	}
}

// A certificate that does not load stops the start before the server says
// it listens, let alone that it is ready.
func TestServeFailsBeforeListeningOnABadCertificate(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = dir
	cfg.TLS = config.TLS{CertFile: garbage, KeyFile: garbage}
	core, logs := observer.New(zap.InfoLevel)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := runServer(ctx, cfg, "embedded defaults", zap.New(core))
	if err == nil || !strings.Contains(err.Error(), "tls.cert_file") {
		t.Fatalf("runServer with a garbage certificate: %v", err)
	}
	for _, msg := range []string{"listening", "ready"} {
		if logs.FilterMessage(msg).Len() != 0 {
			t.Errorf("logged %q before failing", msg)
		}
	}
}

// A second server on a data directory another process holds fails with
// what to do, and never becomes ready: two servers on one store would
// each page alone.
func TestServeRefusesAHeldDataDir(t *testing.T) {
	dir := t.TempDir()
	held, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = dir
	core, logs := observer.New(zap.InfoLevel)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = runServer(ctx, cfg, "embedded defaults", zap.New(core))
	if !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), "another healthrouter serve (or report --data-dir) uses "+dir+"; stop it, or give this server its own --data-dir") {
		t.Fatalf("runServer on a held data dir: %v", err)
	}
	// It fails before it answers anything: a /healthz 200 from a server
	// that will never serve would mislead a load balancer.
	if logs.FilterMessage("ready").Len() != 0 || logs.FilterMessage("listening").Len() != 0 {
		t.Error("listened before finding the data directory held")
	}
}

// The start-up log says where the config came from, where state lives and
// what the server pages through, with durations readable as durations,
// and its loopback warning tells the truth about who may call: with only
// an admin token configured, ingest and reads need that token.
func TestServeStartupLog(t *testing.T) {
	const admin = "startup-log-admin-0123456789"
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Auth.AdminToken = admin
	var logs lockedBuffer
	log, err := newLogger(config.Log{Level: "info", Format: "json"}, &logs)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runServer(ctx, cfg, "/etc/healthrouter/healthrouter.yaml", log) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("runServer: %v", err)
			}
		}
	}
	defer stop()

	lines := func() []map[string]any {
		var out []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			if l == "" {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("log line %q: %v", l, err)
			}
			out = append(out, m)
		}
		return out
	}
	find := func(msg string) map[string]any {
		for _, l := range lines() {
			if l["msg"] == msg {
				return l
			}
		}
		return nil
	}
	deadline := time.Now().Add(20 * time.Second)
	for find("ready") == nil {
		if time.Now().After(deadline) {
			t.Fatalf("not ready within 20s:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	listening := find("listening")
	for field, want := range map[string]any{
		"config": "/etc/healthrouter/healthrouter.yaml", "data_dir": cfg.DataDir,
		"grafana": "off", "pagerduty": "off", "ingest_tokens": 0.0, "admin_token": true, "tls": false,
	} {
		if listening[field] != want {
			t.Errorf("listening line: %s = %#v, want %#v\n%v", field, listening[field], want, listening)
		}
	}

	var warning string
	for _, l := range lines() {
		if msg, _ := l["msg"].(string); strings.HasPrefix(msg, "no ingest token configured") {
			warning = msg
		}
	}
	if !strings.Contains(warning, "ingest and reads need the admin token") || strings.Contains(warning, "unauthenticated") {
		t.Errorf("loopback warning %q, want it to say the admin token is needed", warning)
	}
	// What the warning says is what the server does.
	base := "http://" + listening["addr"].(string)
	for _, tc := range []struct {
		method, path, token string
		want                int
	}{
		{http.MethodGet, "/v1/alerts", "", http.StatusUnauthorized},
		{http.MethodGet, "/v1/alerts", admin, http.StatusOK},
		{http.MethodPost, ingest.EventsPath, "", http.StatusUnauthorized},
	} {
		req, err := http.NewRequest(tc.method, base+tc.path, strings.NewReader(`{"check":"c","host":"h","region":"r","status":"ok"}`))
		if err != nil {
			t.Fatal(err)
		}
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s with token %v: %d, want %d", tc.method, tc.path, tc.token != "", resp.StatusCode, tc.want)
		}
	}

	stop()
	shutdown := find("shutting down: finishing in-flight requests")
	if want := cfg.ShutdownTimeout.D().String(); shutdown == nil || shutdown["timeout"] != want {
		t.Errorf("shutdown line %v: want timeout %q, a duration string", shutdown, want)
	}
	if strings.Contains(logs.String(), admin) {
		t.Errorf("the log shows the admin token:\n%s", logs.String())
	}
}

func TestLoggerWritesDurationsAsStrings(t *testing.T) {
	for _, format := range []string{"json", "console"} {
		var buf bytes.Buffer
		log, err := newLogger(config.Log{Level: "info", Format: format}, &buf)
		if err != nil {
			t.Fatal(err)
		}
		log.Info("paging", zap.Duration("fallback_after", 3*time.Minute), zap.Duration("timeout", 20*time.Second))
		want := map[string][]string{
			"json":    {`"fallback_after":"3m0s"`, `"timeout":"20s"`},
			"console": {`"fallback_after": "3m0s"`, `"timeout": "20s"`},
		}[format]
		for _, w := range want {
			if !strings.Contains(buf.String(), w) {
				t.Errorf("%s: %q lacks %s", format, buf.String(), w)
			}
		}
	}
}

func TestStartupModes(t *testing.T) {
	grafana := &config.Grafana{Routing: config.RoutingPolicy}
	keys := &config.PagerDuty{RoutingKeys: map[string]string{"default": "HR_PD"}}
	for _, tc := range []struct {
		name                string
		grafana             *config.Grafana
		pagerduty           *config.PagerDuty
		wantGrafana, wantPD string
	}{
		{"neither", nil, nil, "off", "off"},
		{"grafana only", grafana, nil, config.RoutingPolicy, "off"},
		{"pagerduty without keys", nil, &config.PagerDuty{}, "off", "off"},
		{"pagerduty only", nil, keys, "off", "direct"},
		{"both", &config.Grafana{Routing: config.RoutingNotificationSettings}, keys, config.RoutingNotificationSettings, "fallback"},
	} {
		cfg := &config.Config{Grafana: tc.grafana, PagerDuty: tc.pagerduty}
		if g, pd := grafanaMode(cfg), pagerDutyMode(cfg); g != tc.wantGrafana || pd != tc.wantPD {
			t.Errorf("%s: grafana %q, pagerduty %q; want %q, %q", tc.name, g, pd, tc.wantGrafana, tc.wantPD)
		}
	}
}

// The fallback pager waits as long as Grafana's rules would: the
// configured pending periods, or without Grafana (direct mode) the
// defaults, never zero, so a region outage forming host by host pages
// once rather than once per host.
func TestFallbackOptionsPending(t *testing.T) {
	keys := &config.PagerDuty{RoutingKeys: map[string]string{"default": "HR_PD"}}
	short := config.Pending{Host: config.Duration(10 * time.Second), Region: config.Duration(5 * time.Second)}
	for _, tc := range []struct {
		name        string
		grafana     *config.Grafana
		wantDirect  bool
		wantPending config.Pending
	}{
		{"direct mode", nil, true, config.DefaultPending()},
		{"fallback for grafana", &config.Grafana{Pending: short}, false, short},
	} {
		opts := fallbackOptions(&config.Config{Grafana: tc.grafana, PagerDuty: keys})
		if opts.Direct != tc.wantDirect || opts.Pending != tc.wantPending || opts.Pending.Host == 0 {
			t.Errorf("%s: direct %v, pending %+v; want %v, %+v", tc.name, opts.Direct, opts.Pending, tc.wantDirect, tc.wantPending)
		}
	}
}
