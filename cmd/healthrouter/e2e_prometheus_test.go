package main

// The real Prometheus of the end-to-end test: started on a temporary config
// and TSDB, scraping the healthrouter instances under test, and read
// through its HTTP API.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"
)

// scrapeInterval is how often Prometheus scrapes each instance: about one
// scrape per round, and the step of every range query.
const scrapeInterval = 250 * time.Millisecond

// scrapeTimeout is as long as Prometheus allows: on a busy machine a scrape
// of the race-enabled binary can take more than half the interval.
const scrapeTimeout = scrapeInterval

const prometheusTemplate = "../../testdata/e2e/prometheus.yml.tmpl"

// requirePrometheus returns the prometheus binary, or skips the test when
// there is none, unless HEALTHROUTER_E2E=required (make test) makes that a
// failure.
func requirePrometheus(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: replays every scenario through the binary and Prometheus")
	}
	path, err := exec.LookPath("prometheus")
	if err == nil {
		return path
	}
	if os.Getenv("HEALTHROUTER_E2E") == "required" {
		t.Fatalf("HEALTHROUTER_E2E=required but prometheus is not in PATH (%v): `make test-deps` installs Debian's package", err)
	}
	t.Skip("prometheus is not in PATH: install it (`make test-deps`, Debian's prometheus package) to run the end-to-end test; HEALTHROUTER_E2E=required turns this skip into a failure")
	return ""
}

// loopbackAddr returns a loopback address with a port nothing listens on,
// picked below Linux's default ephemeral range (32768-60999). An instance
// under test keeps its port across restarts while Prometheus keeps
// connecting to it; the kernel never hands a port from outside that range to
// an outgoing connection, so none can take it while the instance is down.
func loopbackAddr(t *testing.T) string {
	t.Helper()
	for range 200 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(20000+rand.IntN(12000)))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		return addr
	}
	t.Fatal("no free loopback port between 20000 and 32000")
	return ""
}

// promServer is a Prometheus run by the test.
type promServer struct {
	url     string
	targets []string
	cmd     *exec.Cmd
	logs    *lockedBuffer
	done    chan error
	client  *http.Client
}

// startPrometheus runs Prometheus scraping targets (host:port) every
// scrapeInterval and waits until it is ready. It stops with the test.
func startPrometheus(t *testing.T, bin string, targets []string) *promServer {
	t.Helper()
	dir := t.TempDir()
	tmpl, err := template.ParseFiles(prometheusTemplate)
	if err != nil {
		t.Fatalf("prometheus config template: %v", err)
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	f, err := os.Create(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	err = tmpl.Execute(f, map[string]any{
		"ScrapeInterval": promConfigDuration(scrapeInterval),
		"ScrapeTimeout":  promConfigDuration(scrapeTimeout),
		"Targets":        targets,
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("writing %s: %v", cfgPath, err)
	}
	// A port taken between picking and binding makes Prometheus exit at
	// once; another port then does.
	var lastErr error
	for range 3 {
		p, err := launchPrometheus(bin, cfgPath, filepath.Join(dir, "tsdb"), loopbackAddr(t))
		if err == nil {
			p.targets = targets
			t.Cleanup(func() { p.stop(t) })
			return p
		}
		lastErr = err
	}
	t.Fatalf("starting prometheus: %v", lastErr)
	return nil
}

// promConfigDuration renders a duration for Prometheus' configuration.
func promConfigDuration(d time.Duration) string {
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

func launchPrometheus(bin, cfgPath, tsdb, addr string) (*promServer, error) {
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+tsdb,
		"--storage.tsdb.retention.time=1h",
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	p := &promServer{
		url:    "http://" + addr,
		cmd:    cmd,
		logs:   &lockedBuffer{},
		done:   make(chan error, 1),
		client: &http.Client{Timeout: 10 * time.Second},
	}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", bin, err)
	}
	go func() { p.done <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-p.done:
			return nil, fmt.Errorf("prometheus exited before it was ready: %v\n%s", err, p.logs)
		default:
		}
		resp, err := p.client.Get(p.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-p.done
			return nil, fmt.Errorf("prometheus not ready within 30s\n%s", p.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *promServer) stop(t *testing.T) {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Errorf("prometheus did not stop 20s after SIGTERM; killing it\n%s", p.logs)
		p.cmd.Process.Kill()
		<-p.done
	}
}

// api GETs a Prometheus HTTP API path and decodes its data field into out.
func (p *promServer) api(path string, params url.Values, out any) error {
	resp, err := p.client.Get(p.url + path + "?" + params.Encode())
	if err != nil {
		return fmt.Errorf("prometheus %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("prometheus %s: %w", path, err)
	}
	var envelope struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &envelope); err != nil {
		return fmt.Errorf("prometheus %s: %d %s: %w", path, resp.StatusCode, body, err)
	}
	if envelope.Status != "success" {
		return fmt.Errorf("prometheus %s?%s: %s", path, params.Encode(), envelope.Error)
	}
	if err := json.Unmarshal(envelope.Data, out); err != nil {
		return fmt.Errorf("prometheus %s: data: %w", path, err)
	}
	return nil
}

// promSeries is one series of a range query: its labels and its samples.
type promSeries struct {
	Labels  map[string]string
	Samples []promSample
}

type promSample struct {
	At    time.Time
	Value float64
}

// queryRange evaluates expr at every step from from to to.
func (p *promServer) queryRange(t *testing.T, expr string, from, to time.Time, step time.Duration) []promSeries {
	t.Helper()
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Values [][2]any          `json:"values"`
		} `json:"result"`
	}
	params := url.Values{
		"query": {expr},
		"start": {promTime(from)},
		"end":   {promTime(to)},
		"step":  {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	}
	if err := p.api("/api/v1/query_range", params, &data); err != nil {
		t.Fatal(err)
	}
	if data.ResultType != "matrix" {
		t.Fatalf("query_range %s: result type %q, want matrix", expr, data.ResultType)
	}
	out := make([]promSeries, 0, len(data.Result))
	for _, r := range data.Result {
		s := promSeries{Labels: r.Metric}
		for _, v := range r.Values {
			sample, err := parseSample(v)
			if err != nil {
				t.Fatalf("query_range %s: %v", expr, err)
			}
			s.Samples = append(s.Samples, sample)
		}
		out = append(out, s)
	}
	return out
}

// query evaluates expr at one instant.
func (p *promServer) query(t *testing.T, expr string, at time.Time) []promSeries {
	t.Helper()
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := p.api("/api/v1/query", url.Values{"query": {expr}, "time": {promTime(at)}}, &data); err != nil {
		t.Fatal(err)
	}
	if data.ResultType != "vector" {
		t.Fatalf("query %s: result type %q, want vector", expr, data.ResultType)
	}
	out := make([]promSeries, 0, len(data.Result))
	for _, r := range data.Result {
		sample, err := parseSample(r.Value)
		if err != nil {
			t.Fatalf("query %s: %v", expr, err)
		}
		out = append(out, promSeries{Labels: r.Metric, Samples: []promSample{sample}})
	}
	return out
}

// parseSample reads Prometheus' [unix seconds, "value"] pair.
func parseSample(v [2]any) (promSample, error) {
	ts, ok := v[0].(float64)
	str, ok2 := v[1].(string)
	if !ok || !ok2 {
		return promSample{}, fmt.Errorf("malformed sample %v", v)
	}
	val, err := strconv.ParseFloat(str, 64)
	if err != nil {
		return promSample{}, fmt.Errorf("sample value %q: %w", str, err)
	}
	return promSample{At: time.UnixMilli(int64(ts*1000 + 0.5)), Value: val}, nil
}

func promTime(at time.Time) string {
	return strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)
}

// scrapedAfter waits until Prometheus has scraped every target successfully
// in a scrape that started after after, and returns when the latest of those
// scrapes started: from then on, what Prometheus holds for the targets
// reflects everything they did before after.
func (p *promServer) scrapedAfter(t *testing.T, after time.Time) time.Time {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		latest, err := p.lastScrapes(after)
		if err == nil {
			return latest
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus did not scrape every target within 30s: %v\n%s", err, p.logs)
		}
		time.Sleep(scrapeInterval / 5)
	}
}

// lastScrapes returns the latest last-scrape time over the targets, or an
// error naming a target not yet scraped successfully after after.
func (p *promServer) lastScrapes(after time.Time) (time.Time, error) {
	var data struct {
		ActiveTargets []struct {
			Labels     map[string]string `json:"labels"`
			Health     string            `json:"health"`
			LastError  string            `json:"lastError"`
			LastScrape time.Time         `json:"lastScrape"`
		} `json:"activeTargets"`
	}
	if err := p.api("/api/v1/targets", url.Values{"state": {"active"}}, &data); err != nil {
		return time.Time{}, err
	}
	var latest time.Time
	var pending []string
	for _, target := range p.targets {
		found := false
		for _, at := range data.ActiveTargets {
			if at.Labels["instance"] != target {
				continue
			}
			found = true
			if at.Health != "up" || !at.LastScrape.After(after) {
				pending = append(pending, fmt.Sprintf("%s (health %s at %s, error %q)",
					target, at.Health, at.LastScrape.Format(time.RFC3339Nano), at.LastError))
			} else if at.LastScrape.After(latest) {
				latest = at.LastScrape
			}
		}
		if !found {
			pending = append(pending, target+" (not discovered yet)")
		}
	}
	if len(pending) > 0 {
		return time.Time{}, errors.New("waiting for " + strings.Join(pending, ", "))
	}
	return latest, nil
}
