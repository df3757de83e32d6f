// Package suite runs the benchmark matrix: fleets of each size, over
// loopback and through the delay proxies, every tool in every phase, the
// tools alternating run by run, and records every run.
package suite

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dindops/dindops/bench/internal/fleet"
	"github.com/dindops/dindops/bench/internal/inventory"
	"github.com/dindops/dindops/bench/internal/latency"
	"github.com/dindops/dindops/bench/internal/measure"
	"github.com/dindops/dindops/bench/internal/results"
	"github.com/dindops/dindops/bench/internal/tools"
)

// Config is what to run.
type Config struct {
	Repo string // the dindops checkout
	Work string // scratch directory (inventories, logs, results.json)
	// Sizes are the engine benchmark's fleet sizes.
	Sizes []int
	// Reps is how many times each tool runs each phase.
	Reps int
	// Settle is an untimed pause before every no-op run, the same for
	// every tool: daemons that the first run started (the main job's
	// dind) finish starting, so that a tool's no-op run is not measured
	// against its own first run's aftermath while the floor's is not.
	Settle time.Duration
	// Latency is the delay the proxies add in each direction;
	// LatencySizes the engine fleet sizes that are also run through them.
	Latency      time.Duration
	LatencySizes []int
	// DockerHosts is the main job's fleet size (0: not run);
	// DockerLatency also runs it through the proxies.
	DockerHosts   int
	DockerLatency bool
	Tools         []tools.Tool
	Phases        []tools.Phase
	// EngineFleet and DockerFleet are the FLEET_NAMEs.
	EngineFleet, DockerFleet string
	// KeepFleets leaves the fleets running at the end.
	KeepFleets bool
	// RunTimeout bounds each run: a tool that hangs fails the benchmark
	// instead of stalling it.
	RunTimeout time.Duration
}

// Suite runs a Config.
type Suite struct {
	cfg   Config
	kit   tools.Kit
	meter measure.Runner
	log   io.Writer
	res   *results.Results
	// trips are dindops's round trips per host by group (tool "dindops"),
	// for the floor.
	trips map[results.Key]map[string]inventory.Trips
}

// New makes a suite that appends to res (saved to Work/results.json after
// every run) and reports progress to log.
func New(cfg Config, kit tools.Kit, meter measure.Runner, res *results.Results, log io.Writer) *Suite {
	return &Suite{cfg: cfg, kit: kit, meter: meter, log: log, res: res, trips: map[results.Key]map[string]inventory.Trips{}}
}

// ResultsPath is where the results are saved.
func (s *Suite) ResultsPath() string { return filepath.Join(s.cfg.Work, "results.json") }

// Run runs everything: the engine benchmark at every size, then the main
// job. Fleets are removed at the end unless KeepFleets.
func (s *Suite) Run(ctx context.Context) error {
	benchDir := filepath.Join(s.cfg.Repo, "bench")
	var specs []fleet.Spec
	defer func() {
		if s.cfg.KeepFleets {
			return
		}
		for _, sp := range specs {
			// A fresh context: the fleets go even after an interrupt.
			dctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			if err := fleet.Down(dctx, sp, s.log); err != nil {
				fmt.Fprintln(s.log, "warning:", err)
			}
			cancel()
		}
	}()

	sizes := slices.Clone(s.cfg.Sizes)
	slices.Sort(sizes)
	if len(sizes) > 0 {
		// Fresh hosts, so that nothing of an earlier run lingers; later
		// sizes add hosts to the same fleet.
		spec := fleet.Spec{Repo: s.cfg.Repo, Name: s.cfg.EngineFleet, Dockerd: false, Fresh: true}
		specs = append(specs, spec)
		sc := engineScenario(benchDir)
		for _, n := range sizes {
			spec.Size = n
			s.logf("==> engine benchmark, %d hosts: starting fleet %s", n, spec.Name)
			f, err := fleet.Up(ctx, spec, s.log)
			if err != nil {
				return err
			}
			spec.Fresh = false
			if err := s.views(ctx, sc, f, n, slices.Contains(s.cfg.LatencySizes, n)); err != nil {
				return err
			}
		}
	}
	if s.cfg.DockerHosts > 0 {
		spec := fleet.Spec{Repo: s.cfg.Repo, Name: s.cfg.DockerFleet, Size: s.cfg.DockerHosts, Dockerd: true, Fresh: true}
		specs = append(specs, spec)
		s.logf("==> main job, %d hosts: starting fleet %s (with dockerd)", spec.Size, spec.Name)
		f, err := fleet.Up(ctx, spec, s.log)
		if err != nil {
			return err
		}
		sc := dockerScenario(benchDir, f.RegistrationToken)
		if err := s.views(ctx, sc, f, spec.Size, s.cfg.DockerLatency); err != nil {
			return err
		}
	}
	return nil
}

func splitHostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	return h, port, err
}

// views runs the matrix over loopback and, when asked, through the delay
// proxies.
func (s *Suite) views(ctx context.Context, sc tools.Scenario, f *fleet.Fleet, n int, withLatency bool) error {
	direct := make([]inventory.Endpoint, len(f.Hosts))
	for i, h := range f.Hosts {
		direct[i] = inventory.Endpoint{Name: h.Name, Address: h.Address, Port: h.Port, HostKeys: h.HostKeys}
	}
	files, err := inventory.Write(filepath.Join(s.cfg.Work, fmt.Sprintf("%s-%d-loopback", sc.Name, n)), direct, "root", f.IdentityFile, f.Vars)
	if err != nil {
		return err
	}
	if err := s.matrix(ctx, sc, f, files, "loopback"); err != nil {
		return err
	}
	if !withLatency || s.cfg.Latency <= 0 {
		return nil
	}
	view := "+" + s.cfg.Latency.String()
	ups := make([]string, len(direct))
	for i, e := range direct {
		ups[i] = e.Addr()
	}
	px, err := latency.Start(ctx, ups, s.cfg.Latency)
	if err != nil {
		return err
	}
	defer px.Stop()
	proxied := make([]inventory.Endpoint, len(direct))
	for i, e := range direct {
		addr, _ := px.Addr(e.Addr())
		host, port, err := splitHostPort(addr)
		if err != nil {
			return err
		}
		proxied[i] = inventory.Endpoint{Name: e.Name, Address: host, Port: port, HostKeys: e.HostKeys}
	}
	files, err = inventory.Write(filepath.Join(s.cfg.Work, fmt.Sprintf("%s-%d-latency", sc.Name, n)), proxied, "root", f.IdentityFile, f.Vars)
	if err != nil {
		return err
	}
	s.logf("==> %s, %d hosts, through delay proxies (%s each way)", sc.Name, n, s.cfg.Latency)
	return s.matrix(ctx, sc, f, files, view)
}

// matrix runs every tool in every phase Reps times. The order of the tools
// rotates from one repetition to the next (dindops first in the first one,
// so that the floor knows its round trips), so that no tool always runs
// right after the same other one. Before a tool's plan (or first) run the
// hosts are reset, untimed, and before every no-op run the machine is left
// to settle for Config.Settle.
func (s *Suite) matrix(ctx context.Context, sc tools.Scenario, f *fleet.Fleet, files *inventory.Files, net string) error {
	n := len(files.Endpoints)
	if sc.Prepare != "" {
		if err := f.Exec(ctx, sc.Prepare); err != nil {
			return fmt.Errorf("preparing the hosts: %w", err)
		}
	}
	order := slices.Clone(s.cfg.Tools)
	for rep := 1; rep <= s.cfg.Reps; rep++ {
		for _, tool := range order {
			needReset := !tool.IsFloor()
			for _, phase := range s.cfg.Phases {
				if needReset && (phase == tools.Plan || phase == tools.First) {
					if err := f.Exec(ctx, sc.Reset); err != nil {
						return fmt.Errorf("reset before %s %s: %w", tool, phase, err)
					}
					needReset = false
				}
				if phase == tools.Noop && s.cfg.Settle > 0 {
					select {
					case <-time.After(s.cfg.Settle):
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				key := results.Key{Scenario: sc.Name, Net: net, Hosts: n, Phase: string(phase), Tool: string(tool)}
				if err := s.one(ctx, sc, files, key, rep); err != nil {
					return err
				}
			}
		}
		order = append(order[1:], order[0])
	}
	return nil
}

// one measures one run and records it.
func (s *Suite) one(ctx context.Context, sc tools.Scenario, files *inventory.Files, key results.Key, rep int) error {
	tool, phase := tools.Tool(key.Tool), tools.Phase(key.Phase)
	dir := filepath.Join(files.Dir, "runs", fmt.Sprintf("%s-%s-%d", key.Phase, key.Tool, rep))
	var trips map[string]inventory.Trips
	if tool == tools.Floor {
		dk := key
		dk.Tool = string(tools.Dindops)
		if trips = s.trips[dk]; trips == nil {
			s.logf("    %s %s: skipped (no dindops run to take the round trips from)", key.Phase, key.Tool)
			return nil
		}
	}
	if s.cfg.RunTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.RunTimeout)
		defer cancel()
	}
	run, err := s.kit.Command(ctx, tool, phase, sc, files, dir, trips)
	if err != nil {
		return err
	}
	defer run.Cleanup()
	s.noteCommand(files.Dir, dir, key, run.Cmd.Dir, run.Cmd.Args, run.Cmd.Env)
	var stdout, stderr bytes.Buffer
	run.Cmd.Stdout, run.Cmd.Stderr = &stdout, &stderr
	sample, err := s.meter.Run(ctx, run.Cmd)
	// The output stays next to the run's files, for a look afterwards.
	_ = os.WriteFile(filepath.Join(dir, "stdout"), stdout.Bytes(), 0o600)
	_ = os.WriteFile(filepath.Join(dir, "stderr"), stderr.Bytes(), 0o600)
	if err != nil {
		return fmt.Errorf("%s %s %d hosts %s %s: %w", key.Scenario, key.Net, key.Hosts, key.Phase, key.Tool, err)
	}
	out, err := tools.Check(tool, phase, key.Hosts, sample.ExitCode, stdout.Bytes(), stderr.Bytes())
	if err == nil && run.Verify != nil {
		err = run.Verify()
	}
	if err != nil {
		return fmt.Errorf("%s %s %d hosts, %s run of %s (rep %d; output in %s): %w", key.Scenario, key.Net, key.Hosts, key.Phase, key.Tool, rep, dir, err)
	}
	r := results.Run{Key: key, Rep: rep, Sample: sample, Changed: out.Changed}
	if tool == tools.Dindops {
		s.trips[key] = out.Trips
	}
	if tool == tools.FloorPhysical {
		trips = tools.PhysicalTrips(files.Endpoints)
	}
	for _, t := range pick(tool, out.Trips, trips) {
		r.Commands = max(r.Commands, t.Commands)
		r.SFTP = max(r.SFTP, t.SFTP)
		r.API = max(r.API, t.API)
		r.Docker = max(r.Docker, t.Docker)
	}
	s.res.Runs = append(s.res.Runs, r)
	s.logf("    %-6s %-15s rep %d: %6.2fs  cpu %6.2fs  rss %4.0f MiB  changed %d%s", key.Phase, key.Tool, rep,
		sample.Wall.Seconds(), sample.CPU().Seconds(), float64(sample.MaxRSS)/(1<<20), out.Changed, tripsNote(r))
	return s.res.Save(s.ResultsPath())
}

func pick(tool tools.Tool, own, given map[string]inventory.Trips) map[string]inventory.Trips {
	if tool.IsFloor() {
		return given
	}
	return own
}

func tripsNote(r results.Run) string {
	if r.Commands+r.SFTP+r.API == 0 {
		return ""
	}
	s := fmt.Sprintf("  trips %d+%d+%d/host", r.Commands, r.SFTP, r.API)
	if r.Docker > 0 {
		s += fmt.Sprintf(" (%d docker)", r.Docker)
	}
	return s
}

// noteCommand records a tool's command line for the report, in a general
// form: the inventory directory as bench/.work/SCENARIO-N-NET, the run's
// directory as runs/PHASE-TOOL-REP, N for the number of hosts, a fresh
// temporary ControlPath directory; a run in its own directory (cwd) starts
// with a cd there.
func (s *Suite) noteCommand(filesDir, runDir string, key results.Key, cwd string, args, env []string) {
	var pre []string
	if cwd != "" {
		pre = append(pre, "cd", cwd, "&&")
	}
	for _, e := range env {
		switch k, _, _ := strings.Cut(e, "="); k {
		case "ANSIBLE_CONFIG", "MITOGEN_SAVE_PIDS":
			pre = append(pre, e)
		case "ANSIBLE_SSH_CONTROL_PATH_DIR":
			pre = append(pre, k+"=$(mktemp -d)")
		case "GITLAB_RUNNER_TOKEN":
			pre = append(pre, k+"=…")
		}
	}
	line := strings.Join(append(pre, args...), " ")
	line = strings.ReplaceAll(line, runDir, filepath.Join(filesDir, "runs", "PHASE-"+key.Tool+"-REP"))
	line = strings.ReplaceAll(line, filesDir, filepath.Join(s.cfg.Work, key.Scenario+"-N-NET"))
	line = strings.ReplaceAll(line, s.cfg.Work, "bench/.work")
	line = strings.ReplaceAll(line, s.cfg.Repo+"/", "")
	line = strings.ReplaceAll(line, fmt.Sprintf("--forks %d", key.Hosts), "--forks N")
	if s.res.Commands == nil {
		s.res.Commands = map[string][]string{}
	}
	if !slices.Contains(s.res.Commands[key.Tool], line) {
		s.res.Commands[key.Tool] = append(s.res.Commands[key.Tool], line)
	}
}

func (s *Suite) logf(format string, a ...any) {
	fmt.Fprintf(s.log, format+"\n", a...)
}
