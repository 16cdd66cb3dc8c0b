package main

// Acceptance tests: they build the real binary and drive it over loopback
// HTTP the way Vector and an operator would.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	// The tests set what they need; a developer's own settings (a CA
	// file, tokens) must not change what they see. HEALTHROUTER_E2E is the
	// suite's own switch.
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "HEALTHROUTER_") && name != "HEALTHROUTER_E2E" {
			os.Unsetenv(name)
		}
	}
	dir, err := os.MkdirTemp("", "healthrouter-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "healthrouter")
	// The binary is built as the tests are: with the race detector under
	// -race (it needs cgo), without it otherwise.
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building healthrouter:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const testToken = "acceptance-token-0123456789"

// proc is a running healthrouter.
type proc struct {
	cmd  *exec.Cmd
	url  string
	logs *lockedBuffer
	done chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start runs `healthrouter serve` on a free loopback port and waits until
// it is ready.
func start(t *testing.T, dataDir string, args ...string) *proc {
	t.Helper()
	serve := []string{"serve", "--data-dir", dataDir}
	if !slices.ContainsFunc(args, func(a string) bool { return a == "--listen" || strings.HasPrefix(a, "--listen=") }) {
		serve = append(serve, "--listen", "127.0.0.1:0")
	}
	cmd := exec.Command(binary, append(serve, args...)...)
	cmd.Env = append(os.Environ(), "HEALTHROUTER_INGEST_TOKENS="+testToken)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, logs: &lockedBuffer{}, done: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(p.logs, line)
			var entry struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "listening" {
				addr <- entry.Addr
			}
		}
	}()
	go func() { p.done <- cmd.Wait() }()
	select {
	case a := <-addr:
		p.url = "http://" + a
	case err := <-p.done:
		t.Fatalf("healthrouter exited before listening: %v\n%s", err, p.logs)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("healthrouter did not listen within 30s\n%s", p.logs)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within 30s\n%s", p.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("unclean exit after SIGTERM: %v\n%s", err, p.logs)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit 30s after SIGTERM\n%s", p.logs)
	}
}

// post sends a body as Vector would and returns the status code (-1 on a
// transport error, such as the process being gone).
func (p *proc) post(body []byte) int {
	req, _ := http.NewRequest(http.MethodPost, p.url+"/v1/events", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func (p *proc) get(t *testing.T, path string, out any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, p.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, data)
	}
}

func TestServeOnDefaultsAndShutDownCleanly(t *testing.T) {
	p := start(t, t.TempDir())
	if code := p.post([]byte(`{"check":"disk","host":"web-1","region":"eu","status":"ok"}`)); code != 200 {
		t.Fatalf("single object: %d", code)
	}
	p.stop(t)
	if !strings.Contains(p.logs.String(), "stopped cleanly") {
		t.Fatalf("no clean-stop log line:\n%s", p.logs)
	}
}

// A graceful shutdown waits for in-flight requests, up to
// shutdown_timeout; a second signal ends the process at once, as an
// operator pressing ^C twice expects.
func TestSecondSignalStopsAtOnce(t *testing.T) {
	p := start(t, t.TempDir())
	// An upload that never finishes holds the graceful shutdown for its
	// 20 s default.
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 1000\r\n\r\n[", testToken)
	// Its headers are read well within this; the check below that the
	// first signal did not end the process fails if they were not.
	time.Sleep(200 * time.Millisecond)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the graceful shutdown to start", func() bool { return strings.Contains(p.logs.String(), "a second signal stops the process at once") })
	select {
	case err := <-p.done:
		t.Fatalf("exited before the stalled upload or a second signal ended it: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	// Sent again until the process ends: the first may come before the
	// default action is back, but not every one for 10 s.
	deadline := time.After(10 * time.Second)
	for {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Fatal(err)
		}
		select {
		case err := <-p.done:
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("exit after the second signal: %v, want ended by the signal", err)
			}
			return
		case <-deadline:
			t.Fatalf("still running 10 s after a second SIGTERM\n%s", p.logs)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func TestCheckConfigReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	os.WriteFile(path, []byte("listen: nowhere\nengine:\n  confirm_afterr: 2\n  flap: {high: 2}\n"), 0o600)
	out, err := exec.Command(binary, "check-config", "--config", path).CombinedOutput()
	if err == nil {
		t.Fatalf("check-config accepted a bad file:\n%s", out)
	}
	for _, want := range []string{"3 problem(s)", "listen (line 1): want host:port", "engine.confirm_afterr (line 3): unknown key", "engine.flap.high"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, err = exec.Command(binary, "check-config", "--config", "../../testdata/config/example.yaml").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "HEALTHROUTER_PD_DEFAULT is not set") {
		t.Fatalf("example without secrets: %v\n%s", err, out)
	}
	out, err = exec.Command(binary, "check-config").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok: embedded defaults") {
		t.Fatalf("defaults: %v\n%s", err, out)
	}
}
