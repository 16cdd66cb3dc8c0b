package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/ingest"
	"github.com/healthrouter/healthrouter/pkg/server"
	"github.com/healthrouter/healthrouter/pkg/store"
	"github.com/healthrouter/healthrouter/pkg/tracker"
)

func init() {
	register("serve", "run the server (embedded defaults without --config)", serve)
	register("check-config", "validate a config file and report every problem", checkConfig)
}

// configFlags are the flags every config-reading command shares.
type configFlags struct {
	path, listen, dataDir string
	// server: the command serves (or checks the config for serving), so
	// files only the server reads must be readable too.
	server bool
}

func (c *configFlags) register(fs *flag.FlagSet, serverFlags bool) {
	c.server = serverFlags
	fs.StringVar(&c.path, "config", "", "YAML config `file` (default: embedded defaults)")
	if serverFlags {
		fs.StringVar(&c.listen, "listen", "", "listen `address` (default 127.0.0.1:8080)")
		fs.StringVar(&c.dataDir, "data-dir", "", "state `directory` (default ./data)")
	}
}

// source says where the config comes from, for people reading the output.
func (c *configFlags) source() string {
	if c.path == "" {
		return "embedded defaults"
	}
	return c.path
}

// load reads the config with the flag overrides applied before it is
// validated. With Problems it returns the Config too, for check-config.
// Tools (export, plan, replay...) ignore what only the server needs, so the
// production config works on a workstation without its TLS or token files.
func (c *configFlags) load() (*config.Config, error) {
	cfg, err := config.Load(c.path, os.Getenv, func(cfg *config.Config) {
		if c.listen != "" {
			cfg.Listen = c.listen
		}
		if c.dataDir != "" {
			cfg.DataDir = c.dataDir
		}
	})
	var ps config.Problems
	if !c.server && errors.As(err, &ps) {
		if ps = ps.ForTools(); len(ps) == 0 {
			return cfg, nil
		}
		return cfg, ps
	}
	return cfg, err
}

func checkConfig(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check-config", stderr)
	var cf configFlags
	cf.register(fs, true)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	cfg, err := cf.load()
	var ps config.Problems
	if err != nil && !errors.As(err, &ps) {
		return err
	}
	if cfg != nil {
		// Listed with every other problem: a file with mistakes in it
		// still says which secrets the environment lacks.
		ps = append(ps, cfg.MissingSecrets()...)
	}
	if len(ps) > 0 {
		fmt.Fprintf(stdout, "%d problem(s):\n", len(ps))
		for _, p := range ps {
			fmt.Fprintln(stdout, "  "+p.String())
		}
	} else {
		fmt.Fprintf(stdout, "ok: %s\n", cf.source())
	}
	if cfg != nil {
		for _, n := range configNotes(cfg) {
			fmt.Fprintln(stdout, "note: "+n)
		}
	}
	if len(ps) > 0 {
		return &exitError{code: 1}
	}
	return nil
}

// configNotes are what serve will do differently from what the file seems
// to say: valid, but worth knowing before a deploy.
func configNotes(cfg *config.Config) []string {
	var notes []string
	if len(cfg.Auth.IngestTokens) == 0 {
		if loopback, changed, err := forceLoopback(cfg.Listen); err == nil && changed {
			notes = append(notes, fmt.Sprintf("no ingest token is configured: serve listens on %s, not %s (set %s or auth.ingest_tokens_file)",
				loopback, cfg.Listen, config.EnvIngestTokens))
		}
	}
	return append(notes, startNotes(cfg)...)
}

// startNotes are the notes on what on-call will get and on secrets sent in
// the clear: check-config prints them and serve logs them at start.
func startNotes(cfg *config.Config) []string {
	var notes []string
	// Without an ingest token serve binds loopback whatever listen says.
	if host, _, err := net.SplitHostPort(cfg.Listen); err == nil && !cfg.TLS.Enabled() && !isLoopbackHost(host) &&
		len(cfg.Auth.IngestTokens) > 0 {
		notes = append(notes, fmt.Sprintf("serve listens on %s over plain HTTP: bearer tokens cross the network in the clear; "+
			"put a TLS-terminating proxy in front, or set tls.cert_file and tls.key_file", cfg.Listen))
	}
	cleartext := func(key, raw, secret string) {
		if u, err := url.Parse(raw); err == nil && u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
			notes = append(notes, fmt.Sprintf("%s is plain http to another host: %s would cross the network in the clear", key, secret))
		}
	}
	if g := cfg.Grafana; g != nil {
		cleartext("grafana.url", g.URL, "the Grafana token")
	}
	if pd := cfg.PagerDuty; pd != nil {
		cleartext("pagerduty.events_url", pd.EventsURL, "routing keys")
		cleartext("pagerduty.api_url", pd.APIURL, "the PagerDuty API token")
	}
	if cfg.ExternalURL == "" && (cfg.Grafana != nil || cfg.PagerDuty != nil) {
		notes = append(notes, fmt.Sprintf("external_url is not set: alert links point at %s; set it to the address on-call reaches "+
			"(the same on both instances of an HA pair)", cfg.LinkURL()))
	}
	if cfg.PagerDuty != nil {
		notes = append(notes, cfg.PagerDuty.Notes()...)
		if cfg.Grafana == nil && len(cfg.PagerDuty.RoutingKeys) > 0 {
			p := config.DefaultPending()
			notes = append(notes, fmt.Sprintf("pagerduty is configured without grafana: serve pages PagerDuty directly (direct mode), "+
				"each alert once it has fired for %s (host) or %s (region), as Grafana's rules would", p.Host.D(), p.Region.D()))
		}
	}
	if g := cfg.Grafana; g != nil && g.Pending.Host.D() < 30*time.Second {
		notes = append(notes, fmt.Sprintf("grafana.pending.host is %s: while a region's hosts fail one after another, their host alerts "+
			"fire for seconds before the region alert replaces them, and a pending period this short pages them (the default is 2m)", g.Pending.Host.D()))
	}
	return notes
}

// isLoopbackHost reports whether host (a name or an address, without
// port) is this machine: localhost or a loopback IP. An empty host (all
// interfaces) is not.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func newLogger(cfg config.Log, stderr io.Writer) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(cfg.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	// "20s", not 20: a bare number leaves the reader to guess the unit.
	encCfg.EncodeDuration = zapcore.StringDurationEncoder
	var enc zapcore.Encoder
	if cfg.Format == "console" {
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(stderr)), level)
	// Sampling keeps a flood of identical warnings (one bad sender) from
	// drowning the log.
	core = zapcore.NewSamplerWithOptions(core, time.Second, 20, 100)
	return zap.New(core, zap.ErrorOutput(zapcore.AddSync(stderr))), nil
}

func serve(args []string, _, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	var cf configFlags
	cf.register(fs, true)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	if ps := cfg.MissingSecrets(); len(ps) > 0 {
		return fmt.Errorf("secrets missing from the environment:\n%w", ps)
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// The first signal starts a graceful shutdown; a second one gets
		// the default action and ends the process at once.
		<-ctx.Done()
		stop()
	}()
	return runServer(ctx, cfg, cf.source(), log)
}

// runServer runs until ctx ends; source says where cfg came from. It opens
// the store (taking the data directory's lock), then listens before
// loading state so the health check answers during a long load while
// ingest answers 503.
func runServer(ctx context.Context, cfg *config.Config, source string, log *zap.Logger) error {
	for _, n := range startNotes(cfg) {
		log.Warn(n)
	}
	if cfg.ExternalURL == "" {
		// From the configured address, before any loopback fallback, as
		// plan and export compute it.
		cfg.ExternalURL = cfg.LinkURL()
	}
	if len(cfg.Auth.IngestTokens) == 0 {
		loopback, changed, err := forceLoopback(cfg.Listen)
		if err != nil {
			return err
		}
		if changed {
			log.Warn(noIngestToken(cfg.Auth)+"; set "+config.EnvIngestTokens+" or auth.ingest_tokens_file to accept remote senders",
				zap.String("requested", cfg.Listen), zap.String("listen", loopback))
		} else {
			log.Warn(noIngestToken(cfg.Auth))
		}
		cfg.Listen = loopback
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(buildInfo())

	dec, err := ingest.NewDecoder(cfg.Ingest)
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	comps := &components{}
	// One clock for the server's stamps and the tracker's decisions.
	now := time.Now
	srv, err := server.New(server.Options{
		Config: cfg, Decoder: dec, Logger: log, Registry: reg,
		Status: comps.status, Now: now,
	})
	if err != nil {
		return err
	}
	// The store is opened first: it takes the data directory's lock at
	// once, and a second server on the same directory must fail before it
	// answers anything.
	st, err := store.Open(cfg.DataDir, store.Options{
		Logger: log.Named("store"), JournalMax: cfg.Engine.JournalMax, RejectedMax: cfg.Ingest.DeadLetterMax,
	})
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			// Two servers on one data directory would each page alone.
			return fmt.Errorf("%w: another healthrouter serve (or report --data-dir) uses %s; stop it, or give this server its own --data-dir", err, cfg.DataDir)
		}
		return err
	}
	storeClosed := false
	defer func() {
		if !storeClosed {
			_ = st.Close() // an earlier error is already being returned
		}
	}()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("listening", zap.String("addr", ln.Addr().String()), zap.Bool("tls", cfg.TLS.Enabled()),
		zap.String("config", source), zap.String("data_dir", cfg.DataDir),
		zap.String("grafana", grafanaMode(cfg)), zap.String("pagerduty", pagerDutyMode(cfg)),
		zap.Int("ingest_tokens", len(cfg.Auth.IngestTokens)), zap.Bool("admin_token", cfg.Auth.AdminToken != ""),
		zap.String("version", version()))

	serveCtx, stopServing := context.WithCancel(context.Background())
	defer stopServing()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(serveCtx, ln) }()

	tr, err := tracker.Open(cfg, st, log.Named("tracker"), now)
	if err != nil {
		stopServing()
		<-serveErr
		return err
	}
	reg.MustRegister(tr.Metrics())

	bgCtx, stopBackground := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	bg.Add(1)
	go func() { defer bg.Done(); tr.Run(bgCtx) }()
	if err := comps.start(bgCtx, &bg, cfg, st, tr, reg, log); err != nil {
		stopBackground()
		bg.Wait()
		stopServing()
		<-serveErr
		return err
	}
	srv.SetTracker(tr)
	log.Info("ready")

	select {
	case <-ctx.Done():
		log.Info("signal received: shutting down gracefully; a second signal stops the process at once")
		stopServing()
		err = <-serveErr
	case err = <-serveErr:
	}
	// Requests are done; now stop the loops (final checkpoint) and flush
	// the store. A disk that refuses the last commits makes the stop
	// unclean (nothing acknowledged is lost: a 2xx waited for its commit).
	stopBackground()
	bg.Wait()
	storeClosed = true
	if cerr := st.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close store: %w", cerr))
	}
	if err != nil {
		return err
	}
	log.Info("stopped cleanly")
	return nil
}

// noIngestToken says who may call a server without ingest tokens, which
// listens on loopback only: anyone there when no token is configured at
// all, else the admin token's holder, for ingest and reads too (see
// pkg/server's access rules).
func noIngestToken(auth config.Auth) string {
	if auth.AdminToken == "" {
		return "no ingest token configured: loopback only, unauthenticated"
	}
	return "no ingest token configured: loopback only; ingest and reads need the admin token"
}

// grafanaMode is how alerts reach Grafana: off, or the rules' routing
// mode.
func grafanaMode(cfg *config.Config) string {
	if cfg.Grafana == nil {
		return "off"
	}
	return cfg.Grafana.Routing
}

// pagerDutyMode is how healthrouter pages PagerDuty itself: off, direct
// (no Grafana: every page) or fallback (while Grafana does not answer).
func pagerDutyMode(cfg *config.Config) string {
	switch {
	case cfg.PagerDuty == nil || len(cfg.PagerDuty.RoutingKeys) == 0:
		return "off"
	case cfg.Grafana == nil:
		return "direct"
	default:
		return "fallback"
	}
}

// forceLoopback keeps the port of addr but binds the loopback interface.
func forceLoopback(addr string) (string, bool, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", false, fmt.Errorf("listen %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() || host == "localhost" {
		return addr, false, nil
	}
	return net.JoinHostPort("127.0.0.1", port), true, nil
}

func buildInfo() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "healthrouter_build_info",
		Help:        "Build of the running binary; value is always 1.",
		ConstLabels: prometheus.Labels{"version": version()},
	})
	g.Set(1)
	return g
}
