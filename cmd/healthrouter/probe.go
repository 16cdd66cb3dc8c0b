package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

func init() {
	register("probe", "exit 0 when a healthrouter answers its health check (for container health checks)", probe)
}

func probe(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("probe", stderr)
	url := fs.String("url", "http://127.0.0.1:8080/healthz", "health check `URL`")
	timeout := fs.Duration("timeout", 2*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("probe %s: %w", *url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("probe %s: status %d", *url, resp.StatusCode)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}
