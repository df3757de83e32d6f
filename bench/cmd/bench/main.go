// Command bench is `make bench`: dindops against Ansible (at its defaults, at
// its best settings, and at its best with Mitogen) and against the floor
// program (with dindops's counts, and the physical floor), on local fleets of
// containers with real sshd (and dockerd for the main job), alternating the
// tools run by run. It prints a table of medians, checks issue 3's targets,
// and writes docs/benchmarks.md and its plot.
//
//	cd bench && go run ./cmd/bench -repo ..            # the whole benchmark (long)
//	cd bench && go run ./cmd/bench -repo .. -sizes 1,5 -reps 1 -docker-hosts 0   # a quick look
//	cd bench && go run ./cmd/bench -repo .. -render .work/results.json           # tables and docs again
//
// It needs root (the fleets run on this machine's docker engine) and installs
// Ansible (and ansible-mitogen) with apt-get when missing. See
// docs/benchmarks.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dindops/dindops/bench/internal/machine"
	"github.com/dindops/dindops/bench/internal/measure"
	"github.com/dindops/dindops/bench/internal/report"
	"github.com/dindops/dindops/bench/internal/results"
	"github.com/dindops/dindops/bench/internal/suite"
	"github.com/dindops/dindops/bench/internal/tools"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	repo, work, doc, png, render, note    string
	dindops                               string
	sizes, latencySizes, toolList, phases string
	reps, dockerHosts                     int
	latency, runTimeout, settle           time.Duration
	engine, dockerLatency, keepFleets     bool
	noDoc, appendRuns                     bool
	busyLoad                              float64
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.repo, "repo", "..", "the dindops checkout (holds bin/dindops, fixtures/fleet, docs)")
	fs.StringVar(&o.work, "work", "", "scratch directory (default REPO/bench/.work)")
	fs.StringVar(&o.dindops, "dindops", "", "the dindops binary to measure (default REPO/bin/dindops, which make bench builds)")
	fs.BoolVar(&o.engine, "engine", true, "run the engine benchmark (false: only the main job)")
	fs.StringVar(&o.sizes, "sizes", "", "engine benchmark fleet sizes (default 1,10,50, and 100 when the machine has at least 8 GiB of memory)")
	fs.IntVar(&o.reps, "reps", 3, "runs of each tool in each phase")
	fs.DurationVar(&o.latency, "latency", 25*time.Millisecond, "delay added in each direction by the proxies (0: no latency variant)")
	fs.StringVar(&o.latencySizes, "latency-sizes", "10,50", "engine fleet sizes also run through the delay proxies")
	fs.IntVar(&o.dockerHosts, "docker-hosts", 10, "hosts of the main job benchmark (shipped playbook, with dockerd; 0: skip)")
	fs.BoolVar(&o.dockerLatency, "docker-latency", false, "also run the main job through the delay proxies")
	fs.StringVar(&o.toolList, "tools", "dindops,ansible-default,ansible-best,floor,floor-physical,ansible-mitogen", "tools to run")
	fs.StringVar(&o.phases, "phases", "plan,first,noop", "phases to run, in this order after each reset")
	fs.DurationVar(&o.settle, "settle", 10*time.Second, "untimed pause before every tool's no-op run (daemons its first run started settle)")
	fs.DurationVar(&o.runTimeout, "run-timeout", 30*time.Minute, "longest a single run may take")
	fs.BoolVar(&o.keepFleets, "keep-fleets", false, "leave the fleets running at the end")
	fs.StringVar(&o.doc, "doc", "", "Markdown file to write (default REPO/docs/benchmarks.md)")
	fs.StringVar(&o.png, "png", "", "plot to write (default next to -doc, .png)")
	fs.BoolVar(&o.noDoc, "no-doc", false, "print the table only; write no docs")
	fs.BoolVar(&o.appendRuns, "append", false, "add this invocation's runs to the saved results.json (a benchmark run in parts: one table from all of them)")
	fs.StringVar(&o.render, "render", "", "run nothing: print and write the docs from this results.json")
	fs.StringVar(&o.note, "note", "", "a line to print above the results in the docs")
	fs.Float64Var(&o.busyLoad, "busy-load", 1.5, "a 1-minute load average at the start above this marks the numbers preliminary")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if err := o.resolve(); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	if err := bench(ctx, o, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		if errors.Is(err, context.Canceled) {
			return 130
		}
		return 1
	}
	return 0
}

func (o *options) resolve() error {
	repo, err := filepath.Abs(o.repo)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(repo, "fixtures", "fleet", "up.sh")); err != nil {
		return fmt.Errorf("-repo %s is not the dindops checkout: %w", o.repo, err)
	}
	o.repo = repo
	if o.work == "" {
		o.work = filepath.Join(repo, "bench", ".work")
	}
	if o.dindops == "" {
		o.dindops = filepath.Join(repo, "bin", "dindops")
	} else if o.dindops, err = filepath.Abs(o.dindops); err != nil {
		return err
	}
	if o.doc == "" {
		o.doc = filepath.Join(repo, "docs", "benchmarks.md")
	}
	if o.png == "" {
		o.png = strings.TrimSuffix(o.doc, filepath.Ext(o.doc)) + ".png"
	}
	if o.reps < 1 {
		return fmt.Errorf("-reps must be at least 1")
	}
	return nil
}

func bench(ctx context.Context, o options, stdout, stderr io.Writer) error {
	if o.render != "" {
		res, err := results.Load(o.render)
		if err != nil {
			return err
		}
		return publish(o, res, stdout, stderr)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root: the fleets run on this machine's docker engine (fixtures/fleet)")
	}
	cfg, err := o.config()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.work, 0o700); err != nil {
		return err
	}
	if err := measure.BecomeSubreaper(); err != nil {
		return err
	}
	load0 := machine.Load()
	kit, meter, err := prepare(ctx, o, cfg.Tools, stderr)
	if err != nil {
		return err
	}
	res := &results.Results{
		Started:    time.Now(),
		Invocation: invocation(o),
		Machine:    machine.Describe(ctx, kit.Dindops),
		Note:       o.note,
		AnsibleConfigs: map[string]string{
			string(tools.AnsibleDefault): tools.AnsibleConfig(tools.AnsibleDefault, "N", ""),
			string(tools.AnsibleBest):    tools.AnsibleConfig(tools.AnsibleBest, "N", ""),
		},
	}
	if kit.MitogenStrategies != "" {
		res.AnsibleConfigs[string(tools.AnsibleMitogen)] = tools.AnsibleConfig(tools.AnsibleMitogen, "N", kit.MitogenStrategies)
	}
	res.Machine.LoadStart = load0
	if o.appendRuns {
		// The earlier parts' runs, machine and start stay; this part's
		// command line is added to theirs, and its Ansible configs (a
		// part may run a setting the earlier ones did not).
		prev, err := results.Load(filepath.Join(o.work, "results.json"))
		if err != nil {
			return fmt.Errorf("-append: %w", err)
		}
		prev.Invocation += "\n" + res.Invocation
		if o.note != "" {
			prev.Note = o.note
		}
		if prev.AnsibleConfigs == nil {
			prev.AnsibleConfigs = map[string]string{}
		}
		for k, v := range res.AnsibleConfigs {
			prev.AnsibleConfigs[k] = v
		}
		for k, v := range res.Machine.Versions {
			if _, ok := prev.Machine.Versions[k]; !ok && prev.Machine.Versions != nil {
				prev.Machine.Versions[k] = v
			}
		}
		res = prev
	}
	s := suite.New(cfg, kit, meter, res, stderr)
	runErr := s.Run(ctx)
	res.Finished = time.Now()
	res.Machine.LoadEnd = machine.Load()
	if err := res.Save(s.ResultsPath()); err != nil {
		return err
	}
	if runErr != nil {
		return fmt.Errorf("%w (the runs so far are in %s)", runErr, s.ResultsPath())
	}
	fmt.Fprintf(stderr, "results: %s\n", s.ResultsPath())
	return publish(o, res, stdout, stderr)
}

// publish prints the table and the targets and writes the docs.
func publish(o options, res *results.Results, stdout, stderr io.Writer) error {
	sums := results.Summarise(res.Runs)
	rows := report.Rows(sums)
	if err := report.Text(stdout, rows); err != nil {
		return err
	}
	targets := report.Targets(sums)
	fmt.Fprintln(stdout)
	for _, t := range targets {
		fmt.Fprintf(stdout, "%-12s %s: %s\n", strings.ToUpper(t.Verdict()), t.Name, t.Measured)
	}
	if o.noDoc {
		return nil
	}
	var toolNames []string
	for _, t := range tools.All {
		toolNames = append(toolNames, string(t))
	}
	d := report.Doc{Results: res, Rows: rows, Targets: targets}
	if l, err := strconv.ParseFloat(strings.Fields(res.Machine.LoadStart + " 0")[0], 64); err == nil && l > o.busyLoad {
		d.Preliminary = fmt.Sprintf("The machine was busy when the benchmark started (1-minute load average %.2f, above %.1f): "+
			"other work competed for the CPUs, so absolute times are too high and ratios less certain. Run `make bench` on an idle machine for final numbers.", l, o.busyLoad)
	}
	if f, err := os.Create(o.png); err == nil {
		perr := report.PlotPNG(f, sums, toolNames)
		cerr := f.Close()
		if err := errors.Join(perr, cerr); err != nil {
			fmt.Fprintln(stderr, "warning: no plot:", err)
			os.Remove(o.png)
		} else if rel, err := filepath.Rel(filepath.Dir(o.doc), o.png); err == nil {
			d.PNG = rel
		}
	} else {
		return err
	}
	if err := report.WriteDoc(o.doc, d); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %s and %s\n", o.doc, o.png)
	return nil
}

func (o options) config() (suite.Config, error) {
	sizes, err := ints(o.sizes)
	if err != nil {
		return suite.Config{}, fmt.Errorf("-sizes: %w", err)
	}
	if o.sizes == "" {
		sizes = []int{1, 10, 50}
		if machine.MemoryMiB() >= 8192 {
			sizes = append(sizes, 100)
		}
	}
	if !o.engine {
		sizes = nil
	}
	lat, err := ints(o.latencySizes)
	if err != nil {
		return suite.Config{}, fmt.Errorf("-latency-sizes: %w", err)
	}
	cfg := suite.Config{
		Repo: o.repo, Work: o.work, Sizes: sizes, Reps: o.reps,
		Latency: o.latency, LatencySizes: lat, DockerHosts: o.dockerHosts, DockerLatency: o.dockerLatency,
		EngineFleet: "bench", DockerFleet: "bench-docker", KeepFleets: o.keepFleets, RunTimeout: o.runTimeout,
		Settle: o.settle,
	}
	for _, t := range strings.Split(o.toolList, ",") {
		if !slices.Contains(tools.All, tools.Tool(t)) {
			return cfg, fmt.Errorf("-tools: unknown tool %q (known: %v)", t, tools.All)
		}
		cfg.Tools = append(cfg.Tools, tools.Tool(t))
	}
	// dindops first: the floor needs its round trips.
	if i := slices.Index(cfg.Tools, tools.Dindops); i > 0 {
		cfg.Tools = append([]tools.Tool{tools.Dindops}, slices.Delete(cfg.Tools, i, i+1)...)
	}
	for _, p := range strings.Split(o.phases, ",") {
		if !slices.Contains(tools.Phases, tools.Phase(p)) {
			return cfg, fmt.Errorf("-phases: unknown phase %q (known: %v)", p, tools.Phases)
		}
		cfg.Phases = append(cfg.Phases, tools.Phase(p))
	}
	return cfg, nil
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// invocation is the command line as a user types it.
func invocation(o options) string {
	args := []string{"make bench"}
	if extra := strings.Join(os.Args[1:], " "); extra != "" && extra != "-repo .." {
		args = append(args, fmt.Sprintf("BENCH_FLAGS=%q", strings.TrimSpace(strings.TrimPrefix(extra, "-repo .."))))
	}
	return strings.Join(args, " ") + "   # = cd bench && go run ./cmd/bench -repo .. $BENCH_FLAGS"
}

// prepare installs Ansible when missing (and ansible-mitogen when that tool
// runs, checked to load), and builds the floor and peakrss programs
// (bin/dindops is built by make's bench target).
func prepare(ctx context.Context, o options, run []tools.Tool, log io.Writer) (tools.Kit, measure.Runner, error) {
	kit := tools.Kit{
		Dindops: o.dindops,
		Floor:   filepath.Join(o.work, "floor"),
	}
	meter := measure.Runner{PeakRSS: filepath.Join(o.work, "peakrss")}
	if _, err := os.Stat(kit.Dindops); err != nil {
		return kit, meter, fmt.Errorf("%s is missing: run make build (make bench does)", kit.Dindops)
	}
	if err := ensureAnsible(ctx, log); err != nil {
		return kit, meter, err
	}
	p, err := exec.LookPath("ansible-playbook")
	if err != nil {
		return kit, meter, err
	}
	kit.AnsiblePlaybook = p
	if slices.Contains(run, tools.AnsibleMitogen) {
		if kit.MitogenStrategies, err = ensureMitogen(ctx, o.work, log); err != nil {
			return kit, meter, err
		}
	}
	for _, p := range []struct{ out, pkg string }{{kit.Floor, "./cmd/floor"}, {meter.PeakRSS, "./cmd/peakrss"}} {
		build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", p.out, p.pkg)
		build.Dir = filepath.Join(o.repo, "bench")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		build.Stdout, build.Stderr = log, log
		if err := build.Run(); err != nil {
			return kit, meter, fmt.Errorf("building %s: %w", p.pkg, err)
		}
	}
	return kit, meter, nil
}

// ensureAnsible installs Debian's ansible package (ansible-core and the
// community collections, community.docker among them) when
// ansible-playbook or community.docker is missing.
func ensureAnsible(ctx context.Context, log io.Writer) error {
	_, err := exec.LookPath("ansible-playbook")
	_, cerr := os.Stat("/usr/lib/python3/dist-packages/ansible_collections/community/docker")
	if err == nil && cerr == nil {
		return nil
	}
	fmt.Fprintln(log, "==> installing Debian's ansible package (apt-get)")
	return aptInstall(ctx, log, "ansible", "openssh-client")
}

// ensureMitogen installs Debian's ansible-mitogen when missing, checks that
// the Ansible is the one it works with (ansible-core 2.14), finds its
// strategy plugins, and proves that Mitogen loads: an ad-hoc ping of this
// machine (connection local) with the ansible-mitogen settings must
// succeed and start Mitogen's multiplexer. It returns the strategy
// directory.
func ensureMitogen(ctx context.Context, work string, log io.Writer) (string, error) {
	list, err := exec.CommandContext(ctx, "dpkg", "-L", "ansible-mitogen").Output()
	if err != nil {
		fmt.Fprintln(log, "==> installing Debian's ansible-mitogen package (apt-get)")
		if err := aptInstall(ctx, log, "ansible-mitogen"); err != nil {
			return "", err
		}
		if list, err = exec.CommandContext(ctx, "dpkg", "-L", "ansible-mitogen").Output(); err != nil {
			return "", fmt.Errorf("dpkg -L ansible-mitogen: %w", err)
		}
	}
	dir, err := tools.MitogenStrategyDir(string(list))
	if err != nil {
		return "", err
	}
	ver, err := exec.CommandContext(ctx, "ansible-playbook", "--version").Output()
	if err != nil {
		return "", fmt.Errorf("ansible-playbook --version: %w", err)
	}
	line, _, _ := strings.Cut(string(ver), "\n")
	if err := tools.CheckMitogenAnsible(line); err != nil {
		return "", err
	}
	pdir := filepath.Join(work, "mitogen-check")
	if err := os.RemoveAll(pdir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(pdir, 0o700); err != nil {
		return "", err
	}
	cfg, err := tools.WriteAnsibleConfig(pdir, tools.AnsibleMitogen, 1, dir)
	if err != nil {
		return "", err
	}
	args := append([]string{"all", "-i", "localhost,", "-c", "local"}, tools.MitogenVars...)
	cmd := exec.CommandContext(ctx, "ansible", append(args, "-m", "ansible.builtin.ping")...)
	cmd.Dir = pdir
	cmd.Env = append(os.Environ(), "ANSIBLE_CONFIG="+cfg, "MITOGEN_SAVE_PIDS=1", "ANSIBLE_NOCOLOR=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		return "", fmt.Errorf("ansible-mitogen does not load (ansible %s, in %s): %v: %s", strings.Join(cmd.Args[1:], " "), pdir, err, strings.TrimSpace(string(out)))
	}
	if err := tools.VerifyMitogen(pdir); err != nil {
		return "", err
	}
	fmt.Fprintf(log, "==> Mitogen loads (%s; %s)\n", dir, strings.TrimSpace(line))
	return dir, nil
}

// aptInstall installs Debian packages with apt-get (after an update).
func aptInstall(ctx context.Context, log io.Writer, pkgs ...string) error {
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "NEEDRESTART_MODE=l")
	for _, argv := range [][]string{
		{"apt-get", "update", "-qq"},
		append([]string{"apt-get", "install", "-y", "-qq", "--no-install-recommends"}, pkgs...),
	} {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env, cmd.Stdin = env, nil
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
		}
	}
	return nil
}
