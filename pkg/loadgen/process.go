package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is Linux's USER_HZ, the unit of /proc/PID/stat times: fixed at
// 100 by the kernel ABI whatever CONFIG_HZ is.
const clockTicks = 100

// ProcStat is a process's CPU time and memory at one moment.
type ProcStat struct {
	CPU     time.Duration // user + system
	RSS     int64         // resident bytes now
	PeakRSS int64         // resident high-water mark (VmHWM)
	// AnonRSS is the resident memory the process itself holds (RssAnon):
	// RSS less file pages, such as a memory-mapped store's, that the
	// kernel drops under pressure and reads back.
	AnonRSS int64
}

// ReadProc reads a live process's figures from /proc.
func ReadProc(pid int) (ProcStat, error) {
	return readProc(os.DirFS("/proc"), pid)
}

func readProc(proc fs.FS, pid int) (ProcStat, error) {
	dir := strconv.Itoa(pid)
	stat, err := fs.ReadFile(proc, dir+"/stat")
	if err != nil {
		return ProcStat{}, fmt.Errorf("read process %d: %w", pid, err)
	}
	cpu, err := parseStatCPU(stat)
	if err != nil {
		return ProcStat{}, fmt.Errorf("process %d stat: %w", pid, err)
	}
	status, err := fs.ReadFile(proc, dir+"/status")
	if err != nil {
		return ProcStat{}, fmt.Errorf("read process %d: %w", pid, err)
	}
	ps := ProcStat{CPU: cpu}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			ps.RSS, err = parseKB(line)
		case strings.HasPrefix(line, "VmHWM:"):
			ps.PeakRSS, err = parseKB(line)
		case strings.HasPrefix(line, "RssAnon:"):
			ps.AnonRSS, err = parseKB(line)
		}
		if err != nil {
			return ProcStat{}, fmt.Errorf("process %d status: %w", pid, err)
		}
	}
	return ps, nil
}

// parseStatCPU returns utime + stime from /proc/PID/stat. The command name
// (field 2) may hold spaces and parentheses, so fields are counted from the
// last ')'.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no command field")
	}
	fields := strings.Fields(string(stat[i+1:]))
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(fields) < 13 {
		return 0, fmt.Errorf("%d fields after the command, want at least 13", len(fields))
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cpu time %q: %w", f, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

func parseKB(line string) (int64, error) {
	f := strings.Fields(line)
	if len(f) != 3 || f[2] != "kB" {
		return 0, fmt.Errorf("unexpected line %q", line)
	}
	n, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("unexpected line %q: %w", line, err)
	}
	return n << 10, nil
}

// Usage is what a process spent while it was watched.
type Usage struct {
	Wall    time.Duration `json:"wall_ns"`
	CPU     time.Duration `json:"cpu_ns"`
	Cores   float64       `json:"cores"` // CPU / Wall: 2.0 is both cores busy
	PeakRSS int64         `json:"peak_rss_bytes"`
	EndRSS  int64         `json:"end_rss_bytes"`
}

// Monitor watches a process during a run: the CPU it used and the highest
// RSS seen by sampling (VmHWM would include what happened before the run).
type Monitor struct {
	pid   int
	start time.Time
	first ProcStat
	stop  chan struct{}
	done  chan struct{}

	mu   sync.Mutex
	peak int64
	err  error
}

// Watch starts sampling pid every interval until Stop.
func Watch(pid int, interval time.Duration) (*Monitor, error) {
	first, err := ReadProc(pid)
	if err != nil {
		return nil, err
	}
	m := &Monitor{pid: pid, start: time.Now(), first: first, peak: first.RSS,
		stop: make(chan struct{}), done: make(chan struct{})}
	go m.sample(interval)
	return m, nil
}

func (m *Monitor) sample(interval time.Duration) {
	defer close(m.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			ps, err := ReadProc(m.pid)
			m.mu.Lock()
			if err != nil {
				m.err = err
			} else {
				m.peak = max(m.peak, ps.RSS)
			}
			m.mu.Unlock()
			if err != nil {
				return
			}
		}
	}
}

// Stop ends sampling and reports the usage since Watch.
func (m *Monitor) Stop() (Usage, error) {
	close(m.stop)
	<-m.done
	last, err := ReadProc(m.pid)
	if err != nil {
		return Usage{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return Usage{}, m.err
	}
	u := Usage{Wall: time.Since(m.start), CPU: last.CPU - m.first.CPU, PeakRSS: max(m.peak, last.RSS), EndRSS: last.RSS}
	u.Cores = u.CPU.Seconds() / u.Wall.Seconds()
	return u, nil
}

// Samples are the unlabelled samples of a Prometheus text exposition, by
// metric name; labelled ones are keyed by their full series text.
type Samples map[string]float64

// ParseSamples reads the text exposition format; comments are skipped.
func ParseSamples(r io.Reader) (Samples, error) {
	s := Samples{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		// The value follows the series, after the closing brace if any
		// (label values may hold spaces); a timestamp may follow it.
		rest := line
		if i := strings.LastIndexByte(line, '}'); i >= 0 {
			rest = line[i+1:]
		} else if i := strings.IndexByte(line, ' '); i >= 0 {
			rest = line[i:]
		}
		series := strings.TrimSpace(line[:len(line)-len(rest)])
		name, _, _ := strings.Cut(series, "{")
		f := strings.Fields(rest)
		if name == "" || len(f) == 0 {
			return nil, fmt.Errorf("malformed sample line %q", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("sample %s: %w", series, err)
		}
		s[series] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	return s, nil
}

// Scrape fetches and parses a /metrics page.
func Scrape(ctx context.Context, client *http.Client, url string) (Samples, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	s, err := ParseSamples(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	return s, nil
}
