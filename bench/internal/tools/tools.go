// Package tools knows how to run each benchmarked tool for one phase of one
// scenario, and how to tell from its output that the run did what it should
// (changes on a first run, none on a no-op run): a benchmark of runs that
// failed, or changed nothing, would measure nothing.
package tools

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/dindops/dindops/bench/internal/inventory"
)

// Tool is one benchmarked tool (or tool setting).
type Tool string

// The tools, in the order the tables list them.
const (
	Dindops        Tool = "dindops"
	AnsibleDefault Tool = "ansible-default" // forks 5, no pipelining, Ansible's own ssh_args
	AnsibleBest    Tool = "ansible-best"    // forks N, pipelining, ControlPersist, no compression
	Floor          Tool = "floor"           // bench/cmd/floor with dindops's counts
	// FloorPhysical is bench/cmd/floor with one command per host: one SSH
	// connection and `true`, all hosts at once, whatever dindops needed.
	FloorPhysical  Tool = "floor-physical"
	AnsibleMitogen Tool = "ansible-mitogen" // ansible-best's settings with Mitogen's mitogen_linear strategy
)

// All lists every tool in table order.
var All = []Tool{Dindops, AnsibleDefault, AnsibleBest, Floor, FloorPhysical, AnsibleMitogen}

// IsAnsible is true for the Ansible settings.
func (t Tool) IsAnsible() bool { return t == AnsibleDefault || t == AnsibleBest || t == AnsibleMitogen }

// IsFloor is true for the floor programs, which change nothing on the hosts.
func (t Tool) IsFloor() bool { return t == Floor || t == FloorPhysical }

// Phase is one kind of run.
type Phase string

// The phases, in the order they run on a freshly reset fleet.
const (
	Plan  Phase = "plan"  // dindops plan; ansible-playbook --check --diff (on the reset state)
	First Phase = "first" // apply on the reset state: everything changes
	Noop  Phase = "noop"  // apply again: nothing to change
)

// Phases lists every phase in run order.
var Phases = []Phase{Plan, First, Noop}

// Scenario is a pair of equivalent playbooks and how to reset the hosts to
// the state before their first run.
type Scenario struct {
	Name string `json:"name"`
	// Dindops is the dindops playbook; empty means the shipped one.
	Dindops string `json:"dindops_playbook"`
	Ansible string `json:"ansible_playbook"`
	// Prepare is a shell script run once in every host container
	// (untimed) before the first run on a fleet.
	Prepare string `json:"-"`
	// Reset is a shell script run in every host container (untimed)
	// before the plan and first runs.
	Reset string `json:"-"`
	// Env is extra environment for both tools (e.g. the runner token).
	Env []string `json:"-"`
}

// Kit is what the tools are run with.
type Kit struct {
	Dindops         string // bin/dindops
	Floor           string // the built floor program
	AnsiblePlaybook string // ansible-playbook
	// MitogenStrategies is the directory of Mitogen's strategy plugins
	// (ansible_mitogen/plugins/strategy of Debian's ansible-mitogen).
	MitogenStrategies string
}

// Run is one prepared run.
type Run struct {
	Cmd *exec.Cmd
	// Cleanup removes what the run needed (ControlPath directory).
	Cleanup func()
	// Verify, when set, checks after the run what its output cannot show
	// (that Mitogen ran); Check comes first.
	Verify func() error
}

// MitogenVars are the extra vars of the ansible-mitogen runs. Mitogen
// reads the interpreter from the ansible_python_interpreter variable only
// (not from ansible.cfg's interpreter_python, which the other settings
// use: without it Mitogen tries /usr/bin/python first, then discovers),
// and compresses its SSH connection unless mitogen_ssh_compression is
// false (ansible-best's ssh_args have no -C).
var MitogenVars = []string{"-e", "ansible_python_interpreter=/usr/bin/python3", "-e", "mitogen_ssh_compression=false"}

// MitogenMark is the file Mitogen's multiplexer writes into its working
// directory when MITOGEN_SAVE_PIDS is set: it exists only when the
// mitogen_linear strategy loaded and started the multiplexer that carries
// every connection.
const MitogenMark = ".ansible-mux.pid"

// PhysicalTrips is what floor-physical does on every host: one command.
func PhysicalTrips(eps []inventory.Endpoint) map[string]inventory.Trips {
	t := make(map[string]inventory.Trips, len(eps))
	for _, e := range eps {
		t[e.Name] = inventory.Trips{Commands: 1}
	}
	return t
}

// Command prepares tool's run of phase. dir holds the run's files; files
// are the inventories of the fleet view; trips (floor only) the round
// trips dindops needed per host in the same phase (floor-physical ignores
// them).
func (k *Kit) Command(ctx context.Context, tool Tool, phase Phase, sc Scenario, files *inventory.Files, dir string, trips map[string]inventory.Trips) (*Run, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	n := len(files.Endpoints)
	r := &Run{Cleanup: func() {}}
	switch tool {
	case Dindops:
		verb := "apply"
		if phase == Plan {
			verb = "plan"
		}
		args := []string{verb, "-i", files.Dindops, "-v", "-o", "json", "--forks", strconv.Itoa(n)}
		if sc.Dindops != "" {
			args = append(args, sc.Dindops)
		}
		r.Cmd = exec.CommandContext(ctx, k.Dindops, args...)
		r.Cmd.Env = append(os.Environ(), sc.Env...)
	case AnsibleDefault, AnsibleBest, AnsibleMitogen:
		if tool == AnsibleMitogen && k.MitogenStrategies == "" {
			return nil, fmt.Errorf("ansible-mitogen: no Mitogen strategy directory (Debian's ansible-mitogen)")
		}
		cfg, err := WriteAnsibleConfig(files.Dir, tool, n, k.MitogenStrategies)
		if err != nil {
			return nil, err
		}
		args := []string{"-i", files.Ansible}
		if tool == AnsibleMitogen {
			args = append(args, MitogenVars...)
		}
		if phase == Plan {
			args = append(args, "--check", "--diff")
		}
		args = append(args, sc.Ansible)
		// A fresh ControlPath directory per run: no run reuses another's
		// master connections (they are stopped after each run, see
		// package measure). Short, for the socket path limit.
		cp, err := os.MkdirTemp("", "bcp")
		if err != nil {
			return nil, err
		}
		r.Cleanup = func() { os.RemoveAll(cp) }
		r.Cmd = exec.CommandContext(ctx, k.AnsiblePlaybook, args...)
		r.Cmd.Env = append(os.Environ(), sc.Env...)
		r.Cmd.Env = append(r.Cmd.Env, "ANSIBLE_CONFIG="+cfg, "ANSIBLE_SSH_CONTROL_PATH_DIR="+cp,
			"ANSIBLE_NOCOLOR=1", "ANSIBLE_FORCE_COLOR=0")
		if tool == AnsibleMitogen {
			// The multiplexer's pid file in the run's directory is the
			// proof that Mitogen carried the run (Verify).
			mark := filepath.Join(dir, MitogenMark)
			if err := os.Remove(mark); err != nil && !os.IsNotExist(err) {
				return nil, err
			}
			r.Cmd.Dir = dir
			r.Cmd.Env = append(r.Cmd.Env, "MITOGEN_SAVE_PIDS=1")
			r.Verify = func() error { return VerifyMitogen(dir) }
		}
	case Floor, FloorPhysical:
		if tool == FloorPhysical {
			trips = PhysicalTrips(files.Endpoints)
		}
		targets := filepath.Join(dir, "floor-targets.json")
		if err := files.WriteFloor(targets, trips); err != nil {
			return nil, err
		}
		r.Cmd = exec.CommandContext(ctx, k.Floor, "-targets", targets)
	default:
		return nil, fmt.Errorf("unknown tool %q", tool)
	}
	return r, nil
}

// VerifyMitogen checks that Mitogen carried an ansible-mitogen run whose
// working directory was dir: its multiplexer wrote MitogenMark there. A
// run that Ansible ran with its own strategy and connection (the strategy
// not loaded, or overridden) has no such file.
func VerifyMitogen(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, MitogenMark)); err != nil {
		return fmt.Errorf("ansible-mitogen: Mitogen did not run (its multiplexer wrote no %s with MITOGEN_SAVE_PIDS=1): %w", MitogenMark, err)
	}
	return nil
}

// AnsibleConfig is the ansible.cfg of a setting; forks is the number of
// hosts (or "N" for the docs), strategies the directory of Mitogen's
// strategy plugins (ansible-mitogen only). All settings turn fact
// gathering off (the playbooks say gather_facts: false too) and keep host
// key checking on (against the fleet's known_hosts, from the inventory).
// ansible-mitogen is ansible-best with Mitogen's mitogen_linear strategy;
// Mitogen makes its own connection per host (ssh with these ssh_args, but
// without a ControlPath, so no ControlMaster) and has no use for
// pipelining, which it does in its own way; MitogenVars name the
// interpreter and turn its compression off.
func AnsibleConfig(tool Tool, forks, strategies string) string {
	common := "[defaults]\ngathering = explicit\nretry_files_enabled = False\n"
	if tool == AnsibleDefault {
		return "# Ansible at its defaults: forks 5, no pipelining, ssh_args\n" +
			"# \"-C -o ControlMaster=auto -o ControlPersist=60s\", interpreter discovery.\n" +
			common + "interpreter_python = auto_silent\n"
	}
	head := "# Ansible at its best here: one fork per host, pipelining (one ssh\n" +
		"# command per module instead of several), ControlPersist master\n" +
		"# connections, no compression (loopback), no interpreter discovery.\n"
	mitogen := ""
	if tool == AnsibleMitogen {
		head = "# Ansible at its best (ansible-best.cfg) with Mitogen: its mitogen_linear\n" +
			"# strategy runs every task over one Mitogen connection per host (a\n" +
			"# Python interpreter on the host, started once, fed modules and\n" +
			"# files over that connection). The extra vars\n" +
			"# " + strings.Join(MitogenVars, " ") + "\n" +
			"# give Mitogen the interpreter and no compression, as here.\n"
		mitogen = "strategy_plugins = " + strategies + "\nstrategy = mitogen_linear\n"
	}
	return head + common + "forks = " + forks + "\n" + "interpreter_python = /usr/bin/python3\n" + mitogen +
		"\n[ssh_connection]\npipelining = True\nssh_args = -o ControlMaster=auto -o ControlPersist=60s\n"
}

// WriteAnsibleConfig writes AnsibleConfig into dir and returns its path.
func WriteAnsibleConfig(dir string, tool Tool, n int, strategies string) (string, error) {
	p := filepath.Join(dir, string(tool)+".cfg")
	return p, os.WriteFile(p, []byte(AnsibleConfig(tool, strconv.Itoa(n), strategies)), 0o600)
}

// Outcome is what a run reported.
type Outcome struct {
	// Changed counts changed (or, in plan/check mode, to-change) task
	// results over all hosts.
	Changed int
	// Trips are dindops's round trips per host (from -v).
	Trips map[string]inventory.Trips
}

// Check reads a finished run's output and says whether the run did its
// job: exit 0, every host reached and nothing failed, changes where the
// phase expects them and none on a no-op run.
func Check(tool Tool, phase Phase, hosts, exitCode int, stdout, stderr []byte) (Outcome, error) {
	var o Outcome
	if exitCode != 0 {
		return o, fmt.Errorf("%s exited %d: %s", tool, exitCode, lastLines(stderr, stdout, 5))
	}
	switch {
	case tool == Dindops:
		res, err := dindopsResult(stdout)
		if err != nil {
			return o, err
		}
		if len(res.Recap) != hosts {
			return o, fmt.Errorf("dindops recap has %d hosts, want %d", len(res.Recap), hosts)
		}
		for _, h := range res.Recap {
			if h.Failed+h.Unreachable > 0 {
				return o, fmt.Errorf("dindops: %s failed or unreachable: %s", h.Host, lastLines(stderr, nil, 5))
			}
			o.Changed += h.Changed
		}
		trips, err := ParseTrips(stderr)
		if err != nil {
			return o, err
		}
		if len(trips) != hosts {
			return o, fmt.Errorf("dindops -v logged round trips for %d hosts, want %d", len(trips), hosts)
		}
		o.Trips = trips
	case tool.IsAnsible():
		recap := ansibleRecap.FindAllSubmatch(stdout, -1)
		if len(recap) != hosts {
			return o, fmt.Errorf("ansible-playbook PLAY RECAP has %d hosts, want %d: %s", len(recap), hosts, lastLines(stdout, nil, 5))
		}
		for _, m := range recap {
			changed, _ := strconv.Atoi(string(m[2]))
			unreachable, _ := strconv.Atoi(string(m[3]))
			failed, _ := strconv.Atoi(string(m[4]))
			if failed+unreachable > 0 {
				return o, fmt.Errorf("ansible: %s failed or unreachable", m[1])
			}
			o.Changed += changed
		}
	case tool.IsFloor():
		return o, nil
	}
	switch phase {
	case Plan, First:
		if o.Changed == 0 {
			return o, fmt.Errorf("%s %s run changed nothing: the hosts were not reset", tool, phase)
		}
	case Noop:
		if o.Changed != 0 {
			return o, fmt.Errorf("%s no-op run changed %d task results: not idempotent", tool, o.Changed)
		}
	}
	return o, nil
}

// dindopsRecap is the part of dindops's JSON result the checks need.
type dindopsRecap struct {
	Recap []struct {
		Host        string `json:"host"`
		Changed     int    `json:"changed"`
		Failed      int    `json:"failed"`
		Unreachable int    `json:"unreachable"`
	} `json:"recap"`
}

// dindopsResult reads the result of `dindops -o json`: one JSON document,
// or JSON lines (events) whose last line with a recap is the result.
func dindopsResult(stdout []byte) (dindopsRecap, error) {
	var res dindopsRecap
	if json.Unmarshal(stdout, &res) == nil && res.Recap != nil {
		return res, nil
	}
	lines := bytes.Split(bytes.TrimSpace(stdout), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		res = dindopsRecap{}
		if json.Unmarshal(lines[i], &res) == nil && res.Recap != nil {
			return res, nil
		}
	}
	return res, fmt.Errorf("dindops -o json printed no result with a recap: %s", lastLines(stdout, nil, 2))
}

var (
	ansibleRecap = regexp.MustCompile(`(?m)^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)`)
	// logfmt pairs of dindops -v's lines (charmbracelet/log): key=value,
	// the value quoted when it has spaces.
	logPair = regexp.MustCompile(`(?:^|\s)([a-z_]+)=("(?:[^"\\]|\\.)*"|\S*)`)
)

// logFields are the key=value pairs of a dindops -v line whose message
// (after the level) is msg, or nil for another line.
func logFields(line, msg string) map[string]string {
	line = " " + line
	i := strings.Index(line, " "+msg+" ")
	if i < 0 {
		return nil
	}
	f := map[string]string{}
	for _, m := range logPair.FindAllStringSubmatch(line[i+len(msg)+1:], -1) {
		v := m[2]
		if u, err := strconv.Unquote(v); err == nil && strings.HasPrefix(v, `"`) {
			v = u
		}
		f[m[1]] = v
	}
	return f
}

// ParseTrips reads dindops -v's per-host log lines
//
//	round trips host=NAME commands=N sftp=M api=K docker=D
//	docker api host=NAME via=streamlocal|dial-stdio
//
// host, commands and sftp are required; a dindops that does not count API
// requests or docker commands yet prints no api= or docker=, read as 0.
func ParseTrips(stderr []byte) (map[string]inventory.Trips, error) {
	trips := map[string]inventory.Trips{}
	via := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(stderr))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f := logFields(line, "docker api"); f != nil && f["host"] != "" {
			via[f["host"]] = f["via"]
			continue
		}
		f := logFields(line, "round trips")
		if f == nil {
			continue
		}
		var t inventory.Trips
		var bad []string
		for _, c := range []struct {
			key      string
			n        *int
			required bool
		}{{"commands", &t.Commands, true}, {"sftp", &t.SFTP, true}, {"api", &t.API, false}, {"docker", &t.Docker, false}} {
			v, ok := f[c.key]
			if !ok && !c.required {
				continue
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				bad = append(bad, fmt.Sprintf("%s=%q", c.key, v))
				continue
			}
			*c.n = n
		}
		if f["host"] == "" || len(bad) > 0 {
			return nil, fmt.Errorf("dindops -v: a \"round trips\" line without a host or with bad counts (%s): %s", strings.Join(bad, " "), line)
		}
		// The counts are per connection, cumulative: the last line wins.
		trips[f["host"]] = t
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(trips) == 0 {
		return nil, fmt.Errorf("dindops -v printed no \"round trips\" lines (commands=N sftp=M api=K docker=D)")
	}
	for h, v := range via {
		if t, ok := trips[h]; ok {
			t.Via = v
			trips[h] = t
		}
	}
	return trips, nil
}

// lastLines is the last n non-empty lines of the first non-empty output.
func lastLines(a, b []byte, n int) string {
	out := a
	if len(bytes.TrimSpace(out)) == 0 {
		out = b
	}
	lines := slices.DeleteFunc(strings.Split(string(out), "\n"), func(s string) bool { return strings.TrimSpace(s) == "" })
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// MitogenStrategyDir finds the directory of Mitogen's strategy plugins in
// the file list of Debian's ansible-mitogen package (`dpkg -L
// ansible-mitogen`): the package's own ansible_mitogen/plugins/strategy,
// which holds mitogen_linear.py.
func MitogenStrategyDir(dpkgList string) (string, error) {
	for _, l := range strings.Split(dpkgList, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasSuffix(l, "/ansible_mitogen/plugins/strategy/mitogen_linear.py") {
			return filepath.Dir(l), nil
		}
	}
	return "", fmt.Errorf("dpkg -L ansible-mitogen lists no ansible_mitogen/plugins/strategy/mitogen_linear.py")
}

// CheckMitogenAnsible checks that ansible-playbook --version's first line
// names the ansible-core Debian's ansible-mitogen 0.3.3 works with: 2.14
// (Debian 12's). Another Ansible would stop Mitogen's strategy from
// loading, or load it untested.
func CheckMitogenAnsible(versionLine string) error {
	m := regexp.MustCompile(`\[core (\d+)\.(\d+)[.\d]*`).FindStringSubmatch(versionLine)
	if m == nil {
		return fmt.Errorf("ansible-mitogen: cannot read ansible-core's version from %q", versionLine)
	}
	if m[1] != "2" || m[2] != "14" {
		return fmt.Errorf("ansible-mitogen: Debian's ansible-mitogen works with Debian's ansible-core 2.14; this ansible-playbook is %s", strings.Trim(m[0], "["))
	}
	return nil
}
