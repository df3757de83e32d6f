package tasks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// KernelModule makes a kernel module available now and at every boot.
//
//	tasks:
//	  - name: overlay kernel module is loaded and loads at boot
//	    kernel_module:
//	      name: overlay
//
// Available means /sys/module/NAME exists, or, for a filesystem module, that
// /proc/filesystems lists it (a module built into the kernel need not appear
// under /sys/module). Otherwise it is loaded with modprobe; a module modprobe
// cannot find fails the task at plan time with modprobe's own message.
//
// Persisted means exactly one active line naming the module in
// /etc/modules-load.d/NAME.conf (read by systemd-modules-load and by Debian's
// kmod init script; the directory is created when missing), or, with
// persist: modules, in /etc/modules. A commented line ("# overlay") does not
// count, trailing spaces do not matter, and duplicate active lines are
// removed (kubernetes/website#15463, where the module was loaded but never
// persisted).
type KernelModule struct {
	Name string `yaml:"name"`
	// Persist is where the module is listed for boot: "modules-load.d"
	// (default), "modules" (/etc/modules) or "none".
	Persist string `yaml:"persist"`
}

var moduleName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Validate implements Validator.
func (k *KernelModule) Validate() error {
	if !moduleName.MatchString(k.Name) {
		return FieldErrorf("name", "must be a module name such as overlay, got %q", k.Name)
	}
	switch k.Persist {
	case "", "modules-load.d", "modules", "none":
	default:
		return FieldErrorf("persist", "must be modules-load.d, modules or none, got %q", k.Persist)
	}
	return nil
}

type moduleLoad struct{}

type modulePersist struct {
	path    string
	content []byte
	mkdir   string
}

func (k *KernelModule) persistPath() string {
	switch k.Persist {
	case "modules":
		return "/etc/modules"
	case "none":
		return ""
	}
	return "/etc/modules-load.d/" + k.Name + ".conf"
}

// Plan implements Task. It reads in one probe batch whether
// /sys/module/NAME and /etc/modules-load.d exist and the persistence file;
// only when the module is not under /sys/module does a second batch read
// /proc/filesystems (a filesystem built into the kernel) and what modprobe
// --dry-run says. On a host where the module is loaded, the plan starts
// two processes there (stat and cat of the file).
func (k *KernelModule) Plan(ctx context.Context, h Host) ([]Change, error) {
	p := k.persistPath()
	probes := []Probe{
		RunProbe("test", "-d", "/sys/module/"+k.Name),
		RunProbe("test", "-d", "/etc/modules-load.d"),
	}
	if p != "" {
		probes = append(probes, ReadProbe(p))
	}
	res, err := RunProbes(ctx, h, probes...)
	if err != nil {
		return nil, err
	}
	var changes []Change
	if res[0].Output.ExitCode != 0 {
		more, err := RunProbes(ctx, h, ReadProbe("/proc/filesystems"), RunProbe("modprobe", "--dry-run", k.Name))
		if err != nil {
			return nil, err
		}
		c, err := k.planLoad(more[0], more[1])
		if err != nil {
			return nil, err
		}
		if c != nil {
			changes = append(changes, *c)
		}
	}
	if p == "" {
		return changes, nil
	}
	cur, exists := res[2].File, res[2].Exists
	var want []byte
	if k.Persist == "modules" {
		want = withOneModuleLine(cur.Content, k.Name)
	} else {
		want = []byte(k.Name + "\n")
		if exists && activeModuleLines(cur.Content, k.Name) == 1 && activeLineCount(cur.Content) == 1 {
			want = cur.Content // already exactly one active line; leave comments alone
		}
	}
	if exists && bytes.Equal(cur.Content, want) {
		return changes, nil
	}
	c := Change{Action: Update, Resource: "file", Target: p, Summary: "load " + k.Name + " at boot",
		Diff: UnifiedDiff(p, cur.Content, want), Payload: modulePersist{path: p, content: want}}
	if !exists {
		c.Action = Create
		if k.Persist != "modules" && res[1].Output.ExitCode != 0 {
			c.Payload = modulePersist{path: p, content: want, mkdir: "/etc/modules-load.d"}
			c.Summary += " (creates /etc/modules-load.d)"
		}
	}
	return append(changes, c), nil
}

// planLoad is the change that loads a module missing from /sys/module,
// from /proc/filesystems and modprobe --dry-run: none when the kernel has
// it built in as a filesystem, an error when modprobe cannot load it.
func (k *KernelModule) planLoad(filesystems, dryRun ProbeResult) (*Change, error) {
	for _, line := range strings.Split(string(filesystems.File.Content), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[len(f)-1] == k.Name {
			return nil, nil
		}
	}
	if out := dryRun.Output; out.ExitCode != 0 {
		msg := strings.TrimSpace(string(out.Stderr))
		if out.ExitCode == 127 {
			msg = "modprobe is not installed (install kmod)"
		}
		return nil, fmt.Errorf("kernel module %s is not loaded and cannot be loaded: %s", k.Name, msg)
	}
	return &Change{Action: Create, Resource: "kernel_module", Target: k.Name, Summary: "load with modprobe", Payload: moduleLoad{}}, nil
}

// Apply implements Task.
func (k *KernelModule) Apply(ctx context.Context, h Host, changes []Change) error {
	for _, c := range changes {
		switch p := c.Payload.(type) {
		case moduleLoad:
			if _, err := Exec(ctx, h, "modprobe", k.Name); err != nil {
				return err
			}
		case modulePersist:
			if p.mkdir != "" {
				if _, err := Exec(ctx, h, "mkdir", "-p", "-m", "0755", p.mkdir); err != nil {
					return err
				}
			}
			if err := h.WriteFile(ctx, p.path, p.content, WriteOptions{Mode: 0o644, Owner: "root", Group: "root"}); err != nil {
				return err
			}
		default:
			return errors.New("kernel_module: unknown change")
		}
	}
	return nil
}

// activeModule returns the module named on an /etc/modules line, or "".
func activeModule(line string) string {
	if i := strings.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	f := strings.Fields(line)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

func activeModuleLines(content []byte, name string) int {
	n := 0
	for _, l := range strings.Split(string(content), "\n") {
		if activeModule(l) == name {
			n++
		}
	}
	return n
}

func activeLineCount(content []byte) int {
	n := 0
	for _, l := range strings.Split(string(content), "\n") {
		if activeModule(l) != "" {
			n++
		}
	}
	return n
}

// withOneModuleLine returns content with exactly one active line for name:
// the first existing one is kept as written (parameters included), later
// duplicates are dropped, and a missing one is appended.
func withOneModuleLine(content []byte, name string) []byte {
	var out []string
	found := false
	text := string(content)
	var lines []string
	if text != "" {
		lines = strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	}
	for _, l := range lines {
		if activeModule(l) == name {
			if found {
				continue
			}
			found = true
		}
		out = append(out, l)
	}
	if !found {
		out = append(out, name)
	}
	if len(out) == 0 {
		return nil
	}
	return []byte(strings.Join(out, "\n") + "\n")
}
