package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/server"
)

func init() {
	register("maintenance", "add, list or remove maintenance windows on a running server", maintenance)
	register("hosts", "forget decommissioned hosts on a running server", hosts)
}

// apiClient talks to a running healthrouter's JSON API.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

func (c *apiClient) register(fs *flag.FlagSet) {
	fs.StringVar(&c.base, "server", "http://127.0.0.1:8080", "healthrouter `URL`")
}

// useToken picks the admin token for writes, else any token the
// environment offers for reads.
func (c *apiClient) useToken(admin bool) {
	c.http = &http.Client{Timeout: 30 * time.Second}
	if t := os.Getenv(config.EnvAdminToken); t != "" {
		c.token = t
		return
	}
	if !admin {
		if toks := strings.Split(os.Getenv(config.EnvIngestTokens), ","); toks[0] != "" {
			c.token = strings.TrimSpace(toks[0])
		}
	}
}

// do sends a request and decodes a 2xx JSON answer into out (if non-nil).
// Any other status becomes an error carrying the server's message.
func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.base, "/")+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %s (%d)", method, path, e.Error, resp.StatusCode)
		}
		return fmt.Errorf("%s %s: status %d", method, path, resp.StatusCode)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decoding answer: %w", method, path, err)
		}
	}
	return nil
}

func maintenance(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return &exitError{code: 2, msg: "want a subcommand: add, list or rm"}
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("maintenance "+sub, stderr)
	var c apiClient
	c.register(fs)
	ctx := context.Background()
	switch sub {
	case "add":
		var req server.WindowRequest
		fs.StringVar(&req.Region, "region", "", "region (required)")
		fs.StringVar(&req.Host, "host", "", "host (default: the whole region)")
		fs.StringVar(&req.Check, "check", "", "check name `glob` (default: every check)")
		fs.StringVar(&req.Reason, "reason", "", "why, for whoever is on call (required)")
		dur := fs.Duration("for", 0, "length of the window, e.g. 2h")
		until := fs.String("until", "", "end of the window, RFC3339 (instead of --for)")
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		switch {
		case *dur > 0 && *until != "":
			return &exitError{code: 2, msg: "give --for or --until, not both"}
		case *dur > 0:
			req.Until = time.Now().Add(*dur).UTC().Truncate(time.Second)
		case *until != "":
			t, err := time.Parse(time.RFC3339, *until)
			if err != nil {
				return &exitError{code: 2, msg: "--until: want RFC3339 such as 2026-11-25T18:00:00Z"}
			}
			req.Until = t
		default:
			return &exitError{code: 2, msg: "--for or --until is required"}
		}
		c.useToken(true)
		var w health.Window
		if err := c.do(ctx, http.MethodPost, "/v1/maintenance", req, &w); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "window %s: %s until %s (%s)\n", w.ID, scope(w), w.Until.Format(time.RFC3339), w.Reason)
		return nil
	case "list", "ls":
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		c.useToken(false)
		var out struct {
			Windows []health.Window `json:"windows"`
		}
		if err := c.do(ctx, http.MethodGet, "/v1/maintenance", nil, &out); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSCOPE\tUNTIL\tREASON")
		for _, w := range out.Windows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", w.ID, scope(w), w.Until.Format(time.RFC3339), w.Reason)
		}
		return tw.Flush()
	case "rm", "remove", "delete":
		ids, err := parseInterspersed(fs, args)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return &exitError{code: 2, msg: "rm: give the window id(s)"}
		}
		c.useToken(true)
		var errs []error
		for _, id := range ids {
			if id == "" {
				errs = append(errs, errors.New("rm: empty window id"))
				continue
			}
			if err := c.do(ctx, http.MethodDelete, "/v1/maintenance/"+url.PathEscape(id), nil, nil); err != nil {
				errs = append(errs, err)
				continue
			}
			fmt.Fprintf(stdout, "window %s ended\n", id)
		}
		return errors.Join(errs...)
	default:
		return &exitError{code: 2, msg: fmt.Sprintf("unknown subcommand %q: want add, list or rm", sub)}
	}
}

func scope(w health.Window) string {
	s := "region " + w.Region
	if w.Host != "" {
		s += " host " + w.Host
	}
	if w.Check != "" {
		s += " checks " + w.Check
	}
	return s
}

// hosts runs "hosts forget HOST [--region R]": the server drops the host,
// its checks, its alerts and its stored state. A host that reports again
// is tracked afresh.
func hosts(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return &exitError{code: 2, msg: "want a subcommand: forget"}
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("hosts "+sub, stderr)
	var c apiClient
	c.register(fs)
	switch sub {
	case "forget":
		region := fs.String("region", "", "the host's `region` (needed when the name is in several regions)")
		names, err := parseInterspersed(fs, args)
		if err != nil {
			return err
		}
		if len(names) != 1 || names[0] == "" {
			return &exitError{code: 2, msg: "forget: give one host name"}
		}
		path := "/v1/hosts/" + url.PathEscape(names[0])
		if *region != "" {
			path += "?" + url.Values{"region": {*region}}.Encode()
		}
		c.useToken(true)
		var out server.ForgetResponse
		if err := c.do(context.Background(), http.MethodDelete, path, nil, &out); err != nil {
			return err
		}
		noun := "checks"
		if len(out.Forgotten) == 1 {
			noun = "check"
		}
		fmt.Fprintf(stdout, "host %s (%s) forgotten: %d %s removed\n", out.Host, out.Region, len(out.Forgotten), noun)
		return nil
	default:
		return &exitError{code: 2, msg: fmt.Sprintf("unknown subcommand %q: want forget", sub)}
	}
}

// parseInterspersed parses flags given before or after the positional
// arguments ("forget web-1 --region eu" reads as an operator means it) and
// returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
