package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/report"
	"github.com/healthrouter/healthrouter/pkg/store"
)

func init() {
	register("report", "noise report: the checks that flap, recover by themselves and page the most", reportCmd)
}

func reportCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("report", stderr)
	var c apiClient
	c.register(fs)
	dataDir := fs.String("data-dir", "", "read the store of a stopped server in `DIR` instead of asking --server")
	var cf configFlags
	cf.register(fs, false)
	format := fs.String("format", "text", "output `format`: text or json")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *format != "text" && *format != "json" {
		return &exitError{code: 2, msg: fmt.Sprintf("--format %q: want text or json", *format)}
	}
	serverSet := false
	fs.Visit(func(f *flag.Flag) { serverSet = serverSet || f.Name == "server" })
	if serverSet && *dataDir != "" {
		return &exitError{code: 2, msg: "give --server or --data-dir, not both"}
	}
	if cf.path != "" && *dataDir == "" {
		return &exitError{code: 2, msg: "--config goes with --data-dir: a server reports with its own configuration"}
	}

	var rep *report.Report
	if *dataDir != "" {
		// Pages are alerts that stayed firing for the rules' pending
		// period: the configuration's, or Grafana's defaults.
		cfg, err := cf.load()
		if err != nil {
			return err
		}
		if rep, err = reportFromStore(*dataDir, report.PendingOf(cfg)); err != nil {
			return err
		}
	} else {
		c.useToken(false)
		rep = &report.Report{}
		if err := c.do(context.Background(), http.MethodGet, "/v1/report", nil, rep); err != nil {
			return err
		}
	}
	if *format == "json" {
		return rep.WriteJSON(stdout)
	}
	return rep.WriteText(stdout)
}

// reportFromStore builds the report from the journal of a stopped server,
// as of when that server last wrote its store: a running server reports as
// of time.Now(), so an alert still firing at the newest entry counts as a
// page once it has been firing for its pending period by then, and a
// stopped server's store saw that moment at its final write (its last
// checkpoint). The file's modification time is that write, the newest
// entry's time when it is later; opening read-only does not change it. A
// running server holds the store's lock: ask it instead.
func reportFromStore(dir string, pending report.Pending) (*report.Report, error) {
	fi, err := os.Stat(filepath.Join(dir, store.FileName))
	if err != nil {
		return nil, fmt.Errorf("no healthrouter store in %s: %w", dir, err)
	}
	st, err := store.Open(dir, store.Options{OpenTimeout: time.Second, ReadOnly: true})
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("%w: a server is running on %s; ask it with --server", err, dir)
	}
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return report.Build(func(fn func(*health.Transition) bool) error { return st.ScanTransitions(0, fn) },
		report.Options{Pending: &pending, Now: fi.ModTime()})
}
