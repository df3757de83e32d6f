package report

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dindops/dindops/bench/internal/results"
)

// The generated part of docs/benchmarks.md lies between these markers; the
// text around them is written by hand and kept.
const (
	BeginMarker = "<!-- BEGIN make bench: generated, do not edit by hand -->"
	EndMarker   = "<!-- END make bench -->"
)

// DocIntro is the hand-written frame of a new docs/benchmarks.md.
const DocIntro = `# Benchmarks: dindops against Ansible

` + "`make bench`" + ` measures dindops and Ansible on the same local fleet of Debian hosts
(containers with a real OpenSSH sshd, and a real dockerd for the main job; see
fixtures/fleet/README.md), alternating the tools run by run, and writes the part of
this page between the markers below. Everything outside the markers is written by
hand and kept when the benchmark runs again.

`

// DocOutro follows the generated part in a new docs/benchmarks.md.
const DocOutro = `
## What bounds dindops

(Written by hand from profiles: where dindops misses a target, what bounds it.)
`

// Doc is everything the generated part shows.
type Doc struct {
	Results *results.Results
	Rows    []Row
	Targets []Target
	// PNG is the plot's path relative to the document ("" for none).
	PNG string
	// Preliminary explains why the numbers are not final ("" when they are).
	Preliminary string
}

// WriteDoc replaces the generated part of the Markdown file at path (made,
// with DocIntro and DocOutro around it, when missing).
func WriteDoc(path string, d Doc) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	before, after := DocIntro, DocOutro
	if len(old) > 0 {
		s := string(old)
		i, j := strings.Index(s, BeginMarker), strings.Index(s, EndMarker)
		if i < 0 || j < i {
			return fmt.Errorf("%s: no %q … %q markers to replace: add them where the generated part goes", path, BeginMarker, EndMarker)
		}
		before, after = s[:i], s[j+len(EndMarker):]
	}
	var b bytes.Buffer
	b.WriteString(before)
	b.WriteString(BeginMarker + "\n")
	d.write(&b)
	b.WriteString(EndMarker)
	b.WriteString(after)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

func (d Doc) write(b *bytes.Buffer) {
	r := d.Results
	m := r.Machine
	fmt.Fprintf(b, "\n## Results of %s\n\n", r.Started.UTC().Format("2006-01-02 15:04 MST"))
	if d.Preliminary != "" {
		fmt.Fprintf(b, "> **Preliminary numbers.** %s\n\n", d.Preliminary)
	}
	if r.Note != "" {
		fmt.Fprintf(b, "> %s\n\n", r.Note)
	}

	b.WriteString("### Targets (issues 3 and 11)\n\n| target | measured | verdict |\n|---|---|---|\n")
	for _, t := range d.Targets {
		fmt.Fprintf(b, "| %s | %s | %s |\n", t.Name, orDash(t.Measured), t.Verdict())
	}

	b.WriteString("\n### Table\n\n")
	b.WriteString("Wall time is the median of the runs, with the fastest and slowest in brackets. " +
		"CPU is the median of user+system seconds of the tool's whole process tree (the kernel's " +
		"accounting of every process it started, ssh and Ansible's forks and ControlPersist masters " +
		"included). Peak RSS is the largest single process of that tree (for dindops and the floor, " +
		"the controller itself); tree RSS is the largest sum of resident sets of all its processes, " +
		"sampled every 100 ms (shared pages count once per process). cmds+sftp+api is what dindops needed " +
		"per host (from `dindops -v`'s round-trips line): remote commands (one SSH session each), SFTP " +
		"requests, and Docker Engine API requests (HTTP requests over the host's SSH connection, each " +
		"Docker client's version negotiation `GET /_ping` included); \"(D docker)\" says how many of the " +
		"commands were the docker program itself (`docker system dial-stdio` sessions included). The floor " +
		"issues the same commands, SFTP requests and API requests; floor-physical one command per host. " +
		"dindops/tool is dindops's median wall time over the tool's: below 1, dindops is faster.\n\n")
	Markdown(b, d.Rows)
	if d.PNG != "" {
		fmt.Fprintf(b, "\n![wall time against hosts, engine playbook](%s)\n", d.PNG)
	}

	b.WriteString("\n### Machine\n\n")
	fmt.Fprintf(b, "- %d CPUs (%s), %d MiB memory, kernel %s, %s\n", m.CPUs, orDash(m.CPUModel), m.MemoryMiB, m.Kernel, m.OS)
	fmt.Fprintf(b, "- load average (1, 5, 15 min) at the start: %s; at the end: %s\n", m.LoadStart, m.LoadEnd)
	fmt.Fprintf(b, "- ran from %s to %s (%s)\n", r.Started.UTC().Format("15:04:05"), r.Finished.UTC().Format("15:04:05 MST"),
		r.Finished.Sub(r.Started).Round(1e9))
	keys := make([]string, 0, len(m.Versions))
	for k := range m.Versions {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(b, "- %s: `%s`\n", k, m.Versions[k])
	}

	b.WriteString("\n### Exact commands\n\n```sh\n")
	fmt.Fprintf(b, "%s\n", r.Invocation)
	b.WriteString("```\n\nEach run, with N the number of hosts (inventories, ansible.cfg and targets are written under bench/.work/):\n\n```sh\n")
	tools := make([]string, 0, len(r.Commands))
	for t := range r.Commands {
		tools = append(tools, t)
	}
	slices.Sort(tools)
	for _, t := range tools {
		fmt.Fprintf(b, "# %s\n%s\n", t, strings.Join(r.Commands[t], "\n"))
	}
	b.WriteString("```\n")
	cfgs := make([]string, 0, len(r.AnsibleConfigs))
	for c := range r.AnsibleConfigs {
		cfgs = append(cfgs, c)
	}
	slices.Sort(cfgs)
	for _, c := range cfgs {
		fmt.Fprintf(b, "\n`%s.cfg`:\n\n```ini\n%s```\n", c, r.AnsibleConfigs[c])
	}
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}
