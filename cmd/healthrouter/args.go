package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("healthrouter "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args into fs. A bad flag is a usage error (exit 2)
// whose message and usage the flag package has already printed.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return &exitError{code: 2}
	}
	return err
}

// parseArgs parses the flags of a command that takes at most maxArgs
// positional arguments (-1: any number) and returns those. Flags count
// wherever they stand: the flag package stops at the first positional
// argument, so "forget web-1 --region eu" would otherwise drop the region,
// and a stray word before the flags would silently drop them all. After
// "--" every word is positional. Words past maxArgs are a usage error that
// names them, so a mistyped command line never runs as a different one.
func parseArgs(fs *flag.FlagSet, args []string, maxArgs int) ([]string, error) {
	if err := refuseRepeatedFlags(fs, args); err != nil {
		return nil, err
	}
	var positional []string
	for len(args) > 0 {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	if maxArgs >= 0 && len(positional) > maxArgs {
		return nil, unexpectedArgs(fs, positional[maxArgs:])
	}
	return positional, nil
}

// repeatable marks a flag.Value that collects every occurrence.
type repeatable interface{ repeatable() }

// refuseRepeatedFlags is the usage error for a flag given twice, other than
// one that collects its occurrences: the flag package keeps the last, so
// "--server a --server b" would talk to b alone, silently.
func refuseRepeatedFlags(fs *flag.FlagSet, args []string) error {
	seen := map[string]bool{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if len(a) < 2 || a[0] != '-' {
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimPrefix(a[1:], "-"), "=")
		f := fs.Lookup(name)
		if f == nil {
			continue // the flag package reports it
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !hasValue && !(ok && b.IsBoolFlag()) {
			i++ // its value is the next word
		}
		if _, ok := f.Value.(repeatable); ok {
			continue
		}
		if seen[name] {
			msg := fmt.Sprintf("--%s is given twice; give it once", name)
			if name == "server" {
				msg += " (a command talks to one server: for an HA pair, run it once per instance)"
			}
			return &exitError{code: 2, msg: msg}
		}
		seen[name] = true
	}
	return nil
}

// parseNoArgs parses the flags of a command that takes no positional
// argument.
func parseNoArgs(fs *flag.FlagSet, args []string) error {
	_, err := parseArgs(fs, args, 0)
	return err
}

// unexpectedArgs is the usage error for words a command does not take. A
// word that looks like a file, given to a command that reads a config,
// was most likely meant as one.
func unexpectedArgs(fs *flag.FlagSet, extra []string) error {
	quoted := make([]string, len(extra))
	pathLike := false
	for i, w := range extra {
		quoted[i] = fmt.Sprintf("%q", w)
		pathLike = pathLike || looksLikePath(w)
	}
	noun := "argument"
	if len(extra) > 1 {
		noun = "arguments"
	}
	msg := fmt.Sprintf("unexpected %s %s", noun, strings.Join(quoted, ", "))
	if pathLike && fs.Lookup("config") != nil {
		msg += ": to read a config file, use --config FILE"
	}
	return &exitError{code: 2, msg: msg}
}

// looksLikePath reports whether a command-line word names a file: it has a
// directory part or a config file's extension, or exists.
func looksLikePath(w string) bool {
	if strings.ContainsRune(w, '/') || strings.ContainsRune(w, filepath.Separator) {
		return true
	}
	switch strings.ToLower(filepath.Ext(w)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	fi, err := os.Stat(w)
	return err == nil && fi.Mode().IsRegular()
}

// group is a command made of subcommands, such as "maintenance add": it
// picks the subcommand and answers -h with the list of them.
type group struct {
	name string
	subs []subcommand
}

// subcommand is one verb of a group.
type subcommand struct {
	// names: the first is the one shown, the others are accepted aliases.
	names []string
	// synopsis is the arguments shown after the name in the group's usage.
	synopsis string
	summary  string
	run      func(args []string, stdout, stderr io.Writer) error
}

func (g group) run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return &exitError{code: 2, msg: "want a subcommand: " + g.choices()}
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		g.usage(stderr)
		return flag.ErrHelp
	}
	for _, s := range g.subs {
		for _, n := range s.names {
			if n == args[0] {
				return s.run(args[1:], stdout, stderr)
			}
		}
	}
	return &exitError{code: 2, msg: fmt.Sprintf("unknown subcommand %q: want %s", args[0], g.choices())}
}

// choices lists the subcommands' names: "add, list or rm".
func (g group) choices() string {
	names := make([]string, len(g.subs))
	for i, s := range g.subs {
		names[i] = s.names[0]
	}
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

func (g group) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: healthrouter %s <subcommand> [flags]\n\nsubcommands:\n", g.name)
	for _, s := range g.subs {
		fmt.Fprintf(w, "  %s\n      %s\n", strings.TrimSpace(s.names[0]+" "+s.synopsis), s.summary)
	}
	fmt.Fprintf(w, "\nRun 'healthrouter %s <subcommand> -h' for a subcommand's flags.\n", g.name)
}

// usageLine sets fs's usage to a synopsis line, an optional description
// and the flags.
func usageLine(fs *flag.FlagSet, synopsis, about string) {
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: healthrouter "+synopsis)
		if about != "" {
			fmt.Fprintln(fs.Output(), "\n"+about)
		}
		fmt.Fprintln(fs.Output(), "\nflags:")
		fs.PrintDefaults()
	}
}

// oneArg returns the single positional argument of a command that takes
// exactly one; want is the usage error's message, followed by the words
// given past the first.
func oneArg(fs *flag.FlagSet, positional []string, want string) (string, error) {
	switch {
	case len(positional) == 1 && positional[0] != "":
		return positional[0], nil
	case len(positional) > 1:
		return "", &exitError{code: 2, msg: want + "; " + unexpectedArgs(fs, positional[1:]).Error()}
	default:
		return "", &exitError{code: 2, msg: want}
	}
}
