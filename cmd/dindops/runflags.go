package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/charmbracelet/log"
	"github.com/mattn/go-isatty"
	"github.com/muesli/termenv"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/dindops/dindops/internal/interrupt"
	"github.com/dindops/dindops/internal/runner"
	"github.com/dindops/dindops/internal/strictyaml"
	"github.com/dindops/dindops/inventory"
	"github.com/dindops/dindops/playbooks"
	"github.com/dindops/dindops/tasks"
)

// runOptions are the flags shared by plan and apply.
type runOptions struct {
	inventory string
	extraVars []string
	limit     string
	limitSet  bool // --limit was given, even empty
	forks     int
	tags      []string
	skipTags  []string
	output    string
	noColor   bool
	verbose   int
	grace     time.Duration
	ssh       sshOptions
}

func (o *runOptions) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&o.inventory, "inventory", "i", "", "inventory file (YAML) naming the hosts (required)")
	f.StringArrayVarP(&o.extraVars, "extra-vars", "e", nil, "set a variable: name=value, or @file.yml; overrides play and inventory vars (repeatable)")
	f.StringVarP(&o.limit, "limit", "l", "", "only run on hosts matching this host pattern")
	f.IntVarP(&o.forks, "forks", "f", 20, "how many hosts to work on at once (within a batch, when a play has a serial)")
	f.DurationVar(&o.grace, "interrupt-grace", interrupt.DefaultGrace, "after an interrupt (SIGINT, SIGTERM), how long the steps in progress may take to finish before they are cancelled and undo what they can; a second interrupt stops at once")
	f.StringArrayVarP(&o.tags, "tags", "t", nil, "only run tasks tagged with one of these (comma-separated, repeatable; tasks tagged always run too)")
	f.StringArrayVar(&o.skipTags, "skip-tags", nil, "do not run tasks tagged with any of these (comma-separated, repeatable)")
	f.StringVarP(&o.output, "output", "o", "text", "output format: text, or json (JSON lines: one event per line as the run goes, the whole result last)")
	f.BoolVar(&o.noColor, "no-color", false, "no colours in the output")
	f.CountVarP(&o.verbose, "verbose", "v", "log more to stderr (-v: connections and what is applied, -vv: every command)")
	o.ssh.register(cmd)
	_ = cmd.MarkFlagRequired("inventory")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.MarkFlagFilename("inventory", "yml", "yaml")
}

// changed records which flags were given, where "given empty" differs from
// "not given".
func (o *runOptions) changed(cmd *cobra.Command) {
	o.limitSet = cmd.Flags().Changed("limit")
	o.ssh.connectTimeoutSet = cmd.Flags().Changed("connect-timeout")
}

// usageErr wraps an input problem as exit code 2.
func usageErr(err error) error { return &exitError{code: exitUsage, err: err} }

// prepared is a run ready to start: everything checked, nothing connected.
type prepared struct {
	playbook string
	plays    []runner.Play
	hosts    int
	// warnings are said before the run starts (variables no play reads).
	warnings []string
}

// prepare loads and checks the inventory, the playbook and every task for
// every host, before any connection is made.
func (o *runOptions) prepare(args []string) (*prepared, error) {
	if o.limitSet && strings.TrimSpace(o.limit) == "" {
		return nil, usageErr(fmt.Errorf("--limit is empty; give a host pattern, or leave --limit out to run on every host"))
	}
	if o.ssh.connectTimeout <= 0 && o.ssh.connectTimeoutSet {
		return nil, usageErr(fmt.Errorf("--connect-timeout must be more than 0"))
	}
	if o.output != "text" && o.output != "json" {
		return nil, usageErr(fmt.Errorf("--output must be text or json, got %q", o.output))
	}
	if o.forks < 1 {
		return nil, usageErr(fmt.Errorf("--forks must be at least 1"))
	}
	inv, err := inventory.Load(o.inventory)
	if err != nil {
		return nil, usageErr(err)
	}
	var pb *playbooks.Playbook
	if len(args) == 1 {
		pb, err = playbooks.Load(args[0])
	} else {
		pb, err = playbooks.Shipped()
	}
	if err != nil {
		return nil, usageErr(err)
	}
	tags := playbooks.TagSelection{Only: playbooks.SplitTags(o.tags), Skip: playbooks.SplitTags(o.skipTags)}
	if err := pb.CheckTags(tags); err != nil {
		return nil, usageErr(err)
	}
	extra, err := parseExtraVars(o.extraVars)
	if err != nil {
		return nil, usageErr(err)
	}
	var limit map[string]bool
	if o.limitSet {
		hosts, err := inv.Select(o.limit)
		if err != nil {
			return nil, usageErr(fmt.Errorf("--limit: %w", err))
		}
		limit = map[string]bool{}
		for _, h := range hosts {
			limit[h.Name] = true
		}
	}
	ctl := tasks.Controller{
		LookupEnv: os.LookupEnv,
		ReadFile:  os.ReadFile,
		// One client for the run: a GitLab that does not answer a check
		// costs one timeout per run (tasks.NewGitLabHTTPClient).
		HTTPClient: tasks.NewGitLabHTTPClient(30 * time.Second),
	}
	p := &prepared{playbook: pb.File}
	var errs compileErrors
	seen := map[string]bool{}
	for _, play := range pb.Plays {
		hosts, err := inv.Select(play.Hosts)
		if err != nil {
			return nil, usageErr(fmt.Errorf("%s:%d:%d: play %q: hosts: %w", pb.File, play.Line, play.Column, play.Name, err))
		}
		rp := runner.Play{Play: play}
		for _, h := range hosts {
			if limit != nil && !limit[h.Name] {
				continue
			}
			hp, err := playbooks.Compile(play, h, playbooks.CompileOptions{ExtraVars: extra, Controller: ctl, Tags: tags})
			if err != nil {
				errs.add(h.Name, err)
				continue
			}
			rp.Hosts = append(rp.Hosts, hp)
			if !seen[h.Name] {
				seen[h.Name] = true
				p.hosts++
			}
		}
		if _, _, err := playbooks.RolloutOf(play, rp.Hosts); err != nil {
			return nil, usageErr(fmt.Errorf("%s:%d:%d: %w", pb.File, play.Line, play.Column, err))
		}
		p.plays = append(p.plays, rp)
	}
	if len(errs.order) > 0 {
		return nil, usageErr(errs.err(len(seen) + errs.hostCount()))
	}
	if p.hosts == 0 {
		return nil, usageErr(fmt.Errorf("no host of %s matches the playbook's plays%s", inv.File, limitNote(o.limit)))
	}
	p.warnings = unreadVars(pb, inv, seen, extra)
	return p, nil
}

// unreadVars warns of the variables that the inventory (for the hosts in
// run) or -e sets and that no template of the playbook reads: most often a
// misspelled name, which would otherwise leave the default in place
// silently. Ansible's own (ansible_*) are not warned of: an inventory may
// serve both tools.
func unreadVars(pb *playbooks.Playbook, inv *inventory.Inventory, run map[string]bool, extra map[string]any) []string {
	read, all := pb.ReadVars()
	if all {
		return nil
	}
	known := make([]string, 0, len(read))
	for k := range read {
		known = append(known, k)
	}
	for _, play := range pb.Plays {
		for k := range play.Vars {
			known = append(known, k)
		}
	}
	unread := func(name string) bool {
		return !read[name] && name != "inventory_hostname" && name != "group_names" && !strings.HasPrefix(name, "ansible_")
	}
	hint := func(name string) string {
		if s := strictyaml.Suggest(name, known); s != "" {
			return fmt.Sprintf("; did you mean %q?", s)
		}
		return ""
	}
	counts := map[string]int{}
	var names []string
	for _, h := range inv.Hosts {
		if !run[h.Name] {
			continue
		}
		for k := range h.Vars {
			if _, given := extra[k]; given || !unread(k) {
				continue
			}
			if counts[k] == 0 {
				names = append(names, k)
			}
			counts[k]++
		}
	}
	sort.Strings(names)
	var out []string
	for _, k := range names {
		out = append(out, fmt.Sprintf("%s sets variable %q (for %d of the hosts in this run), but no play of %s reads it%s", inv.File, k, counts[k], pb.File, hint(k)))
	}
	var given []string
	for k := range extra {
		if unread(k) {
			given = append(given, k)
		}
	}
	sort.Strings(given)
	for _, k := range given {
		out = append(out, fmt.Sprintf("-e %s: no play of %s reads this variable%s", k, pb.File, hint(k)))
	}
	return out
}

func limitNote(limit string) string {
	if limit == "" {
		return ""
	}
	return fmt.Sprintf(" and --limit %q", limit)
}

// compileErrors groups identical problems found on several hosts, so a typo
// in the playbook is reported once, not once per host.
type compileErrors struct {
	order []string
	hosts map[string][]string
}

func (c *compileErrors) add(host string, err error) {
	if c.hosts == nil {
		c.hosts = map[string][]string{}
	}
	for _, m := range flatten(err) {
		if _, ok := c.hosts[m]; !ok {
			c.order = append(c.order, m)
		}
		if hs := c.hosts[m]; len(hs) == 0 || hs[len(hs)-1] != host {
			c.hosts[m] = append(hs, host)
		}
	}
}

// flatten lists the messages of err and of every error it joins.
func flatten(err error) []string {
	if many, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range many.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return strings.Split(err.Error(), "\n")
}

func (c *compileErrors) hostCount() int {
	all := map[string]bool{}
	for _, hs := range c.hosts {
		for _, h := range hs {
			all[h] = true
		}
	}
	return len(all)
}

func (c *compileErrors) err(total int) error {
	var b strings.Builder
	for i, m := range c.order {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(m)
		if hs := c.hosts[m]; len(hs) < total {
			fmt.Fprintf(&b, " (on %s)", strings.Join(hs, ", "))
		}
	}
	b.WriteString("\nNothing was changed: no host was contacted.")
	return errors.New(b.String())
}

// parseExtraVars reads -e values: name=value (the value parsed as YAML, so
// -e concurrent=8 is a number) or @file.yml (a mapping).
func parseExtraVars(list []string) (map[string]any, error) {
	out := map[string]any{}
	for _, e := range list {
		if file, ok := strings.CutPrefix(e, "@"); ok {
			data, err := os.ReadFile(file)
			if err != nil {
				return nil, fmt.Errorf("-e %s: %w", e, err)
			}
			var m map[string]any
			if err := yaml.Unmarshal(data, &m); err != nil {
				return nil, fmt.Errorf("-e %s: %v", e, err)
			}
			for k, v := range m {
				out[k] = v
			}
			continue
		}
		k, v, ok := strings.Cut(e, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("-e %q: want name=value or @file.yml", e)
		}
		var val any
		if err := yaml.Unmarshal([]byte(v), &val); err != nil || val == nil {
			val = v
		}
		out[k] = val
	}
	return out, nil
}

// newLogger returns the stderr logger for a verbosity. stderr is handed to
// the log library behind a plain io.Writer, so it never sends the terminal
// colour queries (ESC]10;? ...) that stall for seconds on terminals that do
// not answer; colours are set explicitly instead.
func newLogger(stderr io.Writer, verbose int, color bool) *log.Logger {
	l := log.NewWithOptions(plainWriter{stderr}, log.Options{ReportTimestamp: true, TimeFormat: "15:04:05"})
	if color && isTerminal(stderr) {
		l.SetColorProfile(termenv.ANSI256)
	} else {
		l.SetColorProfile(termenv.Ascii)
	}
	switch {
	case verbose >= 2:
		l.SetLevel(log.DebugLevel)
	case verbose == 1:
		l.SetLevel(log.InfoLevel)
	default:
		l.SetLevel(log.WarnLevel)
	}
	return l
}

// plainWriter hides what kind of writer it wraps.
type plainWriter struct{ w io.Writer }

func (p plainWriter) Write(b []byte) (int, error) { return p.w.Write(b) }

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

// execute runs a prepared run and prints its results.
func (o *runOptions) execute(ctx context.Context, p *prepared, mode runner.Mode, stdout, stderr io.Writer) (*runner.Result, error) {
	color := !o.noColor && os.Getenv("NO_COLOR") == ""
	out := newOutput(o.output, mode, color, stdout, stderr)
	logger := newLogger(out.logs, o.verbose, color && isTerminal(stderr))
	for _, w := range p.warnings {
		logger.Warn(w)
	}
	connector, err := o.ssh.connector(logger)
	if err != nil {
		out.abort()
		return nil, usageErr(err)
	}
	out.header(p.playbook, p.hosts)
	ropts := runner.Options{Mode: mode, Forks: o.forks, Connector: connector, Logger: logger, OnEvent: out.event}
	if st := interrupt.FromContext(ctx); st != nil {
		st.SetGrace(o.grace)
		ropts.Stop, ropts.Force = st.Stopping(), st.Force()
	}
	res, err := runner.Run(ctx, p.playbook, p.plays, ropts)
	if err != nil {
		out.abort()
		return nil, err
	}
	if o.verbose > 0 {
		connector.logStats(logger)
	}
	if err := out.finish(res); err != nil {
		return nil, err
	}
	return res, nil
}

// exitCode is the exit status of a finished run (see docs/rollout.md).
func exitCode(res *runner.Result) error {
	switch {
	case res.Stopped != nil && res.Stopped.Interrupted:
		return &exitError{code: exitInterrupt}
	case res.Stopped != nil:
		return &exitError{code: exitStopped}
	case res.HostFailed():
		return &exitError{code: exitHostFailed}
	}
	return nil
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
