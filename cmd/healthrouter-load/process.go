package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/healthrouter/healthrouter/pkg/loadgen"
)

// process is a receiver the harness started and owns: its stderr goes to a
// log file (shown when it dies), and it is stopped by its own pid.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	started time.Time
	exited  chan struct{} // closed when the process is gone
	waitErr error
}

func startProcess(name, logPath string, cmd *exec.Cmd, onLine func(string)) (*process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		logFile.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cmd.Stdout = logFile
	// Its own process group: a signal to the harness's terminal does not
	// reach it before the harness can stop it cleanly.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &process{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	var copied sync.WaitGroup
	copied.Add(1)
	go func() {
		defer copied.Done()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logFile, line)
			if onLine != nil {
				onLine(line)
			}
		}
		_, _ = io.Copy(logFile, stderr)
	}()
	go func() {
		copied.Wait()
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	return p, nil
}

// PID is the process id.
func (p *process) PID() int { return p.cmd.Process.Pid }

// alive fails with the log's tail once the process has exited.
func (p *process) alive() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited (%v); last log lines:\n%s", p.name, p.waitErr, tail(p.logPath, 15))
	default:
		return nil
	}
}

// stop sends SIGTERM and waits for a clean exit, killing after timeout.
func (p *process) stop(timeout time.Duration) (time.Duration, error) {
	select {
	case <-p.exited:
		return 0, p.alive()
	default:
	}
	begin := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, fmt.Errorf("stop %s: %w", p.name, err)
	}
	select {
	case <-p.exited:
		took := time.Since(begin)
		if p.waitErr != nil {
			return took, fmt.Errorf("%s stopped uncleanly (%v); last log lines:\n%s", p.name, p.waitErr, tail(p.logPath, 15))
		}
		return took, nil
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return time.Since(begin), fmt.Errorf("%s did not stop within %v: killed", p.name, timeout)
	}
}

// kill ends the process at once; for cleanup after an error.
func (p *process) kill() {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// healthrouter is a `healthrouter serve` the harness runs on a loopback
// port of the kernel's choosing.
type healthrouter struct {
	*process
	url         string
	ingestToken string
	adminToken  string
	client      *http.Client
	loadedIn    chan time.Duration // the "state loaded" line's took
}

func newToken() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// startReadyHealthrouter starts bin on dataDir and waits until it is
// ready; on failure the process is gone.
func startReadyHealthrouter(ctx context.Context, bin, dataDir, logPath string) (*healthrouter, error) {
	h, err := startHealthrouter(ctx, bin, dataDir, logPath)
	if err != nil {
		return nil, err
	}
	if _, err := h.waitReady(ctx, readyTimeout); err != nil {
		h.kill()
		return nil, err
	}
	return h, nil
}

// startHealthrouter starts bin on dataDir and returns once it listens; it
// is not ready until waitReady says so.
func startHealthrouter(ctx context.Context, bin, dataDir, logPath string) (*healthrouter, error) {
	h := &healthrouter{
		ingestToken: newToken(),
		adminToken:  newToken(),
		client:      &http.Client{Timeout: 2 * time.Minute},
		loadedIn:    make(chan time.Duration, 1),
	}
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir)
	cmd.Env = append(os.Environ(),
		"HEALTHROUTER_INGEST_TOKENS="+h.ingestToken,
		"HEALTHROUTER_ADMIN_TOKEN="+h.adminToken,
	)
	addrs := make(chan string, 1)
	p, err := startProcess("healthrouter", logPath, cmd, func(line string) {
		var l struct {
			Msg  string      `json:"msg"`
			Addr string      `json:"addr"`
			Took logDuration `json:"took"`
		}
		if json.Unmarshal([]byte(line), &l) != nil {
			return
		}
		switch l.Msg {
		case "listening":
			select {
			case addrs <- l.Addr:
			default:
			}
		case "state loaded":
			select {
			case h.loadedIn <- time.Duration(l.Took):
			default:
			}
		}
	})
	if err != nil {
		return nil, err
	}
	h.process = p
	select {
	case addr := <-addrs:
		h.url = "http://" + addr
		return h, nil
	case <-p.exited:
		return nil, p.alive()
	case <-ctx.Done():
		p.kill()
		return nil, ctx.Err()
	case <-time.After(30 * time.Second):
		p.kill()
		return nil, fmt.Errorf("healthrouter did not log its listening address within 30s; log:\n%s", tail(logPath, 15))
	}
}

// waitReady polls /readyz and returns the time from process start to the
// first 200.
func (h *healthrouter) waitReady(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for {
		if err := h.alive(); err != nil {
			return 0, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url+"/readyz", nil)
		if err != nil {
			return 0, err
		}
		resp, err := h.client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(h.started), nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("healthrouter not ready after %v", timeout)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (h *healthrouter) target() loadgen.Target {
	return loadgen.Target{URL: h.url, Token: h.ingestToken}
}

// admin GETs an admin endpoint and hands the body to read.
func (h *healthrouter) admin(ctx context.Context, path string, read func(io.Reader) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+h.adminToken)
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	if err := read(resp.Body); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// anonRSSSample is the sample liveHeap adds from /proc: the server's
// anonymous resident memory (loadgen.ProcStat.AnonRSS).
const anonRSSSample = "proc_rss_anon_bytes"

// liveHeap forces a collection in the server (the heap profile endpoint's
// gc=1) and then reads its metrics, so heap figures are live data only,
// and adds its anonymous resident memory from /proc.
func (h *healthrouter) liveHeap(ctx context.Context) (loadgen.Samples, error) {
	discard := func(r io.Reader) error { _, err := io.Copy(io.Discard, r); return err }
	if err := h.admin(ctx, "/debug/pprof/heap?gc=1", discard); err != nil {
		return nil, fmt.Errorf("force a collection: %w", err)
	}
	samples, err := loadgen.Scrape(ctx, h.client, h.url+"/metrics")
	if err != nil {
		return nil, err
	}
	ps, err := loadgen.ReadProc(h.PID())
	if err != nil {
		return nil, err
	}
	samples[anonRSSSample] = float64(ps.AnonRSS)
	return samples, nil
}

// profile saves a CPU profile of the next d to path.
func (h *healthrouter) profile(ctx context.Context, d time.Duration, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = h.admin(ctx, "/debug/pprof/profile?seconds="+strconv.Itoa(int(d.Seconds())), func(r io.Reader) error {
		_, err := io.Copy(f, r)
		return err
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// alertmanager is Debian's prometheus-alertmanager on a free loopback port,
// alone (no cluster), routing everything to a receiver that sends nothing.
type alertmanager struct {
	*process
	url string
}

// alertmanagerConfig groups alerts as healthrouter does, by host, and
// notifies nobody: the comparison is about receiving alerts.
const alertmanagerConfig = `route:
  receiver: blackhole
  group_by: [region, host]
receivers:
  - name: blackhole
`

func startAlertmanager(ctx context.Context, bin, dir string) (*alertmanager, error) {
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte(alertmanagerConfig), 0o644); err != nil {
		return nil, err
	}
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin,
		"--config.file="+cfg,
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--cluster.listen-address=",
		"--log.level=warn",
	)
	p, err := startProcess("alertmanager", filepath.Join(dir, "alertmanager.log"), cmd, nil)
	if err != nil {
		return nil, err
	}
	am := &alertmanager{process: p, url: "http://" + addr}
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := p.alive(); err != nil {
			return nil, err
		}
		resp, err := client.Get(am.url + "/-/ready")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return am, nil
			}
		}
		if time.Now().After(deadline) {
			p.kill()
			return nil, errors.New("alertmanager not ready after 30s; log:\n" + tail(p.logPath, 15))
		}
		select {
		case <-ctx.Done():
			p.kill()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// freeLoopbackAddr asks the kernel for a free port. Another process could
// take it before Alertmanager binds; startAlertmanager then fails loudly.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// logDuration reads a duration field of healthrouter's JSON log: a string
// such as "0.97s", or seconds as a number from builds that logged them so.
type logDuration time.Duration

func (d *logDuration) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		v, err := time.ParseDuration(s)
		*d = logDuration(v)
		return err
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration: want a string or seconds, got %s", b)
	}
	*d = logDuration(secs * float64(time.Second))
	return nil
}
