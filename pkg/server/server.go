// Package server is healthrouter's HTTP edge: the ingest endpoint Vector's
// http sink posts to, the health and readiness probes, /metrics and the
// JSON API.
//
// Server decides what each request is answered, matched to Vector's retry
// logic (DESIGN §1): 2xx once the batch is durable, 400 only for a body
// nothing can be decoded from, 413 before an oversized body is read, 415
// for an unknown encoding, 429/503 when overloaded or not ready so Vector
// retries, and never a redirect, which Vector would treat as a drop.
package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/net/netutil"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/ingest"
	"github.com/healthrouter/healthrouter/pkg/tracker"
)

// Options wires a Server.
type Options struct {
	Config   *config.Config
	Decoder  *ingest.Decoder
	Logger   *zap.Logger
	Registry *prometheus.Registry
	// Status adds components' details to /readyz (Grafana reconcile,
	// PagerDuty outbox); nil when there is nothing to add.
	Status func() map[string]any
	// Now is the clock ingest stamps batches with and reports count up
	// to: the tracker's, so both agree. Nil means time.Now.
	Now func() time.Time
}

// Server serves healthrouter's HTTP API.
type Server struct {
	cfg        *config.Config
	log        *zap.Logger
	decoder    *ingest.Decoder
	status     func() map[string]any
	now        func() time.Time
	tracker    atomic.Pointer[tracker.Tracker] // nil until state is loaded
	loaded     chan struct{}                   // closed by the first SetTracker
	loadedOnce sync.Once

	ingest, admin tokenSet
	inflight      chan struct{} // bounds concurrent ingest requests (429 past it)
	bodyBudget    *byteBudget   // bounds the body bytes they hold (429 past it)
	decodeSlots   chan struct{} // bounds concurrent decodes: memory and CPU
	reportSlots   chan struct{} // bounds concurrent noise reports, each a scan of the journal
	decodeWait    time.Duration // how long a read body waits for a slot (503 past it)
	windowWait    time.Duration // how long a maintenance change waits for its commit
	tlsConfig     *tls.Config   // nil: plain HTTP
	started       time.Time
	// testHookCommitWait, set by tests, runs before an ingest request
	// waits for its commit, standing in for a slow disk.
	testHookCommitWait func()

	handler http.Handler
	metrics *metricsHandler
	latency *prometheus.HistogramVec
	// refused counts ingest requests refused for what they are (413, 415),
	// which Vector drops without retry; refusedLog logs them, sampled.
	refused    *prometheus.CounterVec
	refusedLog *zap.Logger
	openConns  prometheus.Gauge // healthrouter_http_open_connections
}

// New builds the server; it answers 503 on ingest until SetTracker.
func New(opts Options) (*Server, error) {
	if opts.Config == nil || opts.Decoder == nil || opts.Logger == nil || opts.Registry == nil {
		return nil, errors.New("server: config, decoder, logger and registry are required")
	}
	cfg := opts.Config
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	s := &Server{
		cfg:         cfg,
		log:         opts.Logger,
		decoder:     opts.Decoder,
		status:      opts.Status,
		now:         now,
		ingest:      newTokenSet(cfg.Auth.IngestTokens...),
		admin:       newTokenSet(cfg.Auth.AdminToken),
		inflight:    make(chan struct{}, cfg.Ingest.MaxInFlight),
		bodyBudget:  &byteBudget{limit: int64(cfg.Ingest.MaxInflightBytes)},
		decodeSlots: make(chan struct{}, 2*runtime.GOMAXPROCS(0)),
		reportSlots: make(chan struct{}, maxConcurrentReports),
		decodeWait:  5 * time.Second,
		windowWait:  windowCommitWait,
		started:     now(),
		loaded:      make(chan struct{}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "healthrouter_http_request_duration_seconds",
			Help:    "HTTP request latency by route and status code.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "code"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healthrouter_ingest_refused_requests_total",
			Help: "Ingest requests refused for what they are, which Vector drops without retry, by reason: too_large (ingest.max_body_bytes), decoded_too_large (ingest.max_decoded_bytes), too_many_events (ingest.max_events) or unsupported_encoding (Content-Encoding). Each is logged at warn, sampled.",
		}, []string{"reason"}),
		refusedLog: newRefusedLog(opts.Logger),
		openConns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "healthrouter_http_open_connections",
			Help: "Open client connections; at max_connections, new ones wait to be accepted.",
		}),
	}
	for _, reason := range refusedReasons {
		s.refused.WithLabelValues(reason) // every reason exported from the start, at 0
	}
	if cfg.TLS.Enabled() {
		// Loaded here, not in Serve, so a bad pair fails the start before
		// anything is announced as listening or ready.
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file and tls.key_file: %w", err)
		}
		s.tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	for _, c := range []prometheus.Collector{s.latency, s.refused, s.openConns} {
		if err := opts.Registry.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}

	r := chi.NewRouter()
	r.Use(routeOnEscapedPath)
	r.Use(middleware.GetHead) // HEAD is answered wherever GET is
	r.Use(s.observe)
	r.Use(recoverer(s.log))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+echoedPath(r))
	})
	router := r
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		// RFC 9110: a 405 lists the methods the resource takes.
		path := routingPath(r)
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
			if router.Match(chi.NewRouteContext(), m, path) {
				allow = append(allow, m)
				if m == http.MethodGet {
					allow = append(allow, http.MethodHead) // middleware.GetHead
				}
			}
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, http.StatusMethodNotAllowed, echoedMethod(r)+" is not allowed on "+echoedPath(r))
	})

	r.Get(ingest.HealthPath, s.healthz)
	r.Head(ingest.HealthPath, s.healthz)
	r.Get("/readyz", s.loopbackNamed(s.readyz))
	s.metrics = newMetricsHandler(opts.Registry, s.log)
	r.Get("/metrics", s.loopbackNamed(s.serveMetrics))

	read := s.authorize(accessRead)
	admin := s.authorize(accessAdmin)
	r.With(s.authorize(accessIngest)).Post(ingest.EventsPath, s.postEvents)
	r.Route("/v1", func(r chi.Router) {
		r.With(read).Get("/alerts", s.getAlerts)
		r.With(read).Get("/regions", s.getRegions)
		r.With(read).Get("/hosts", s.getHosts)
		r.With(read).Get("/hosts/{host}", s.getHost)
		r.With(admin).Delete("/hosts/{host}", s.deleteHost)
		r.With(read).Get("/explain", s.getExplain)
		r.With(read).Get("/transitions", s.getTransitions)
		r.With(read).Get("/rejected", s.getRejected)
		r.With(read).Get("/report", s.getReport)
		r.With(read).Get("/maintenance", s.getMaintenance)
		r.With(admin).Post("/maintenance", s.postMaintenance)
		r.With(admin).Delete("/maintenance/{id}", s.deleteMaintenance)
	})
	// Profiles of a running server, for finding what the hot path spends;
	// admin only: they reveal internals and cost CPU.
	r.With(admin).Route("/debug/pprof", mountProfiles)
	s.handler = r
	return s, nil
}

// routeOnEscapedPath makes chi route every request on its escaped path,
// less a trailing slash (served, never redirected: Vector drops a batch
// on a 3xx). chi itself routes on RawPath when the client's spelling
// differs from the default escaping and on Path otherwise, so a parameter
// would arrive escaped or not depending on the client: a host "a/b" sent
// as a%2Fb came through still escaped, and a "/" decoded before routing
// would split the segment. Routed on the escaped path, every parameter is
// escaped and pathParam unescapes it.
func routeOnEscapedPath(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chi.RouteContext(r.Context()).RoutePath = routingPath(r)
		next.ServeHTTP(w, r)
	})
}

// routingPath is the path chi routes r on: escaped, without one trailing
// slash.
func routingPath(r *http.Request) string {
	path := r.URL.EscapedPath()
	if len(path) > 1 && path[len(path)-1] == '/' {
		path = path[:len(path)-1]
	}
	return path
}

// maxEchoedPath caps how much of a request path an error answer repeats:
// enough to recognise it, not an amplifier for whatever a client sent.
const maxEchoedPath = 256

// echoedPath is the request path for an error message, capped.
// It is the escaped form, as routing sees it: "/%68ealthz" is not
// "/healthz" here, and an answer naming the latter would mislead.
func echoedPath(r *http.Request) string {
	p := r.URL.EscapedPath()
	if p == "" {
		p = r.RequestURI // CONNECT host:port
	}
	return capText(p, maxEchoedPath)
}

// echoedMethod is the request method for an error message, capped: net/http
// accepts any token as a method.
func echoedMethod(r *http.Request) string { return capText(r.Method, 32) }

// capText cuts s to at most n bytes on a UTF-8 boundary, marking the cut.
func capText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// mountProfiles serves net/http/pprof's handlers. They are mounted one by
// one rather than through chi's Profiler, which redirects /debug/pprof to
// /debug/pprof/: routeOnEscapedPath drops the trailing slash, so that
// redirect would point at itself.
func mountProfiles(r chi.Router) {
	// The index, and every named profile (heap, goroutine, allocs, ...):
	// Index serves /debug/pprof/<name> itself.
	r.Get("/", pprof.Index)
	r.Get("/*", pprof.Index)
	r.Get("/cmdline", pprof.Cmdline)
	r.Get("/profile", pprof.Profile)
	r.Get("/symbol", pprof.Symbol)
	r.Post("/symbol", pprof.Symbol)
	r.Get("/trace", pprof.Trace)
}

// SetTracker makes the server ready: state is loaded.
func (s *Server) SetTracker(t *tracker.Tracker) {
	s.tracker.Store(t)
	s.loadedOnce.Do(func() { close(s.loaded) })
}

// metricsLoadWait is the longest a scrape waits for state to load:
// Prometheus' default scrape timeout.
const metricsLoadWait = 10 * time.Second

// serveMetrics answers /metrics once state is loaded. Before, the
// exposition would hold no alert series: to Prometheus every alert would
// have ended at the restart, for Grafana to resolve and page again. A
// scrape that comes while state loads waits for it, within its own timeout
// (Prometheus sends it in X-Prometheus-Scrape-Timeout-Seconds), so a
// restart leaves no gap. A load longer than that gets 503: the scrape
// fails (up 0), which ends the series as for a server that is down, but
// says so instead of claiming an empty alert set.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if s.tracker.Load() == nil && !s.awaitLoaded(r) {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "not ready: state is loading")
		return
	}
	s.metrics.ServeHTTP(w, r)
}

// awaitLoaded waits for state to load, for as long as the scraper waits
// less the time to gather and send, and reports whether it did.
func (s *Server) awaitLoaded(r *http.Request) bool {
	wait := metricsLoadWait
	if v, err := strconv.ParseFloat(r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"), 64); err == nil && v > 0 {
		wait = min(wait, time.Duration(0.8*v*float64(time.Second)))
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-s.loaded:
		return true
	case <-t.C:
	case <-r.Context().Done():
	}
	return false
}

// Handler is the root handler, without Serve's timeouts and graceful
// shutdown; only tests use it (httptest servers).
func (s *Server) Handler() http.Handler { return s.handler }

// Serve answers on ln until ctx ends, then shuts down gracefully: the
// listener closes, in-flight requests get ShutdownTimeout to finish, and
// the connections still open then are closed and logged. A shutdown that
// had to cut connections still returns nil: nothing acknowledged is lost.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	in := s.cfg.Ingest
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       in.RequestTimeout.D(),
		WriteTimeout:      in.RequestTimeout.D() + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          httpErrorLog(s.log.Named("http")),
	}
	conns := newConnTracker(s.openConns, s.cfg.MaxConnections, s.log, s.now)
	srv.ConnState = conns.track
	ln = netutil.LimitListener(ln, s.cfg.MaxConnections)
	if s.tlsConfig != nil {
		srv.TLSConfig = s.tlsConfig.Clone()
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout.D())
	defer cancel()
	s.log.Info("shutting down: finishing in-flight requests", zap.Duration("timeout", s.cfg.ShutdownTimeout.D()))
	if err := srv.Shutdown(shutdownCtx); err != nil {
		if !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("graceful shutdown: %w", err)
		}
		// Past the timeout the connections still open are cut now, not
		// at exit: a request cut before its 2xx is retried by the sender
		// and dedup makes the retry harmless, so the shutdown is complete.
		total, active := conns.open()
		if err := srv.Close(); err != nil {
			s.log.Warn("closing connections after shutdown_timeout", zap.Error(err))
		}
		s.log.Warn("shutdown_timeout passed: cut the connections still open; their senders retry",
			zap.Duration("timeout", s.cfg.ShutdownTimeout.D()),
			zap.Int("connections", total), zap.Int("requests_in_flight", active))
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// connTracker knows each connection's state, so a shutdown that has to cut
// connections can say how many, and how many were mid-request.
type connTracker struct {
	mu    sync.Mutex
	state map[net.Conn]connInfo
	idles uint64 // counts transitions to idle, to order idle connections
	// gauge mirrors len(state); at limit, say so in the log, at most once
	// a minute: connections past it wait unseen in the listen backlog.
	gauge  prometheus.Gauge
	limit  int
	log    *zap.Logger
	now    func() time.Time
	warned time.Time
}

type connInfo struct {
	state http.ConnState
	idle  uint64 // when it last went idle, in c.idles' order
}

func newConnTracker(gauge prometheus.Gauge, limit int, log *zap.Logger, now func() time.Time) *connTracker {
	return &connTracker{state: make(map[net.Conn]connInfo), gauge: gauge, limit: limit, log: log, now: now}
}

// track is the http.Server's ConnState hook. When a new connection takes
// the last slot it closes the connection idle the longest, making room for
// the next: an idle keep-alive connection holds a slot until IdleTimeout,
// and a client that opened many and sent nothing more would otherwise lock
// every sender out for minutes. One per new connection, so a fleet near
// the cap is not disconnected at once; its client reconnects when it next
// sends.
func (c *connTracker) track(conn net.Conn, st http.ConnState) {
	var oldest net.Conn
	c.mu.Lock()
	switch st {
	case http.StateClosed, http.StateHijacked:
		delete(c.state, conn)
	case http.StateIdle:
		c.idles++
		c.state[conn] = connInfo{state: st, idle: c.idles}
	default:
		c.state[conn] = connInfo{state: st}
	}
	n := len(c.state)
	c.gauge.Set(float64(n))
	if st == http.StateNew && n >= c.limit {
		var first uint64
		for other, info := range c.state {
			if info.state == http.StateIdle && (oldest == nil || info.idle < first) {
				oldest, first = other, info.idle
			}
		}
		if oldest != nil {
			delete(c.state, oldest) // closing: not a candidate again
		}
		if now := c.now(); now.Sub(c.warned) >= time.Minute {
			c.warned = now
			c.log.Warn("max_connections reached: closing the longest-idle keep-alive connection for each new one; new connections wait to be accepted until others close",
				zap.Int("max_connections", c.limit), zap.Bool("idle_closed", oldest != nil))
		}
	}
	c.mu.Unlock()
	if oldest != nil {
		// Off the accept loop this hook runs on: closing a TLS connection
		// writes its close_notify, which may wait.
		go oldest.Close()
	}
}

// open counts the open connections and those with a request in progress.
func (c *connTracker) open() (total, active int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, info := range c.state {
		if info.state == http.StateActive {
			active++
		}
	}
	return len(c.state), active
}

// observe records latency per route pattern (bounded cardinality).
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		route := chi.RouteContext(r.Context()).RoutePattern()
		if route == "" {
			route = "unmatched"
		}
		code := ww.Status()
		if code == 0 {
			code = http.StatusOK
		}
		s.latency.WithLabelValues(route, strconv.Itoa(code)).Observe(time.Since(start).Seconds())
	})
}

func recoverer(log *zap.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					log.Error("handler panic", zap.Any("panic", v), zap.String("path", r.URL.Path), zap.Stack("stack"))
					writeError(w, http.StatusInternalServerError, "internal error")
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte("ok\n"))
	}
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	body := map[string]any{"uptime_seconds": int(s.now().Sub(s.started).Seconds())}
	if s.status != nil {
		for k, v := range s.status() {
			body[k] = v
		}
	}
	t := s.tracker.Load()
	if t == nil {
		body["ready"] = false
		body["reason"] = "loading state"
		writeJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	st := t.Stats()
	body["ready"] = true
	body["tracked_checks"] = st.TrackedChecks
	// Failing commits leave the server ready: ingest answers 503 on its
	// own and the store retries. The probe says why, for the operator.
	store := map[string]any{"failing": false}
	if h := t.StoreHealth(); !h.FailingSince.IsZero() {
		store["failing"] = true
		store["failing_since"] = h.FailingSince.UTC().Format(time.RFC3339)
		if h.LastError != nil {
			store["last_error"] = h.LastError.Error()
		}
	}
	body["store"] = store
	writeJSON(w, http.StatusOK, body)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff") // answers echo client text
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// httpErrorsPerSecond bounds the connection-level errors logged per kind.
const httpErrorsPerSecond = 5

// httpErrorLog is the http.Server's error log. Its lines are errors any
// peer can cause at will, a garbage TLS handshake being one line each, so
// each kind is logged at most httpErrorsPerSecond times a second; the peer
// is a field, not part of the message the sampler keys on.
func httpErrorLog(log *zap.Logger) *stdlog.Logger {
	sampled := log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewSamplerWithOptions(c, time.Second, httpErrorsPerSecond, 0)
	}))
	return stdlog.New(httpErrorWriter{sampled}, "", 0)
}

type httpErrorWriter struct{ log *zap.Logger }

func (w httpErrorWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	const handshake = "http: TLS handshake error from "
	if rest, ok := strings.CutPrefix(msg, handshake); ok {
		// "ADDR: ERROR": an address holds colons, never ": ".
		if addr, err, ok := strings.Cut(rest, ": "); ok {
			w.log.Info(strings.TrimSuffix(handshake, " from "), zap.String("remote", addr), zap.String("error", err))
			return len(p), nil
		}
	}
	w.log.Info(msg)
	return len(p), nil
}
