// Command healthrouter is an HTTP sink behind Vector that turns server
// health-check results into a small, correct page set, provisions the
// Grafana alert rules that page on it, and pages PagerDuty directly when
// Grafana cannot.
//
// Usage:
//
//	healthrouter serve [--config FILE] [--listen ADDR] [--data-dir DIR]
//	healthrouter check-config [--config FILE]
//	healthrouter plan|apply|export [--config FILE] ...
//	healthrouter replay FILE [--config FILE]
//	healthrouter report [--server URL | --data-dir DIR]
//	healthrouter maintenance add|list|rm [--server URL] ...
//	healthrouter hosts forget HOST [--region R] [--server URL]
//	healthrouter pagerduty test|verify [--config FILE]
//	healthrouter probe [--url URL]
//	healthrouter version
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
)

// command is one subcommand: it parses its own flags from args.
type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{}

func register(name, summary string, run func(args []string, stdout, stderr io.Writer) error) {
	commands[name] = command{summary: summary, run: run}
}

// exitError carries an exit code other than 1 (plan uses 2 for "changes
// pending"), with an optional message.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "healthrouter: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	err := cmd.run(args[1:], stdout, stderr)
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintln(stderr, "healthrouter "+args[0]+": "+ee.msg)
		}
		return ee.code
	default:
		fmt.Fprintln(stderr, "healthrouter "+args[0]+": "+err.Error())
		return 1
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: healthrouter <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-14s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'healthrouter <command> -h' for a command's flags.")
}

func init() {
	register("version", "print the version", func(args []string, stdout, stderr io.Writer) error {
		if err := parseNoArgs(newFlagSet("version", stderr), args); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "healthrouter", version())
		return nil
	})
}

// buildVersion is set at link time (-ldflags "-X main.buildVersion=v1.2.3")
// by builds without VCS information, such as the container image's.
var buildVersion string

// version is the version the build was given, else the module version
// stamped by the Go toolchain, with the VCS revision when built from a
// checkout.
func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " (" + s.Value[:12] + ")"
		}
	}
	return v
}
