package tasks_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

// moduleHost is a host whose kernel has the named modules available and the
// loaded ones listed in /sys/module.
func moduleHost(available []string, loaded ...string) *tasktest.Host {
	h := tasktest.New()
	h.SetFile("/proc/filesystems", "nodev\tsysfs\nnodev\tproc\n\text4\n", 0o444, "root", "root")
	for _, m := range loaded {
		h.MkdirAll("/sys/module/" + m)
	}
	h.Handle("modprobe", func(h *tasktest.Host, args []string, _ []byte) tasks.Output {
		name := args[len(args)-1]
		ok := false
		for _, a := range available {
			ok = ok || a == name
		}
		if !ok {
			return tasks.Output{ExitCode: 1, Stderr: []byte("modprobe: FATAL: Module " + name + " not found in directory /lib/modules/6.1.0\n")}
		}
		if args[1] == "--dry-run" {
			return tasks.Output{}
		}
		if h.Frozen() {
			return tasks.Output{ExitCode: 99}
		}
		h.MkdirAll("/sys/module/" + name)
		return tasks.Output{}
	})
	return h
}

func TestKernelModuleLoadsAndPersists(t *testing.T) {
	h := moduleHost([]string{"overlay"})
	changes := tasktest.Converge(t, &tasks.KernelModule{Name: "overlay"}, h)
	if len(changes) != 2 || changes[0].Summary != "load with modprobe" {
		t.Fatalf("changes = %+v", changes)
	}
	if !strings.Contains(changes[1].Summary, "creates /etc/modules-load.d") {
		t.Errorf("the plan does not say the directory is created: %q", changes[1].Summary)
	}
	f, ok := h.File("/etc/modules-load.d/overlay.conf")
	if !ok || string(f.Content) != "overlay\n" || f.Mode != 0o644 {
		t.Fatalf("drop-in = %+v, %v", f, ok)
	}
}

func TestKernelModuleBuiltinFilesystemCountsAsLoaded(t *testing.T) {
	h := moduleHost(nil)
	h.SetFile("/proc/filesystems", "nodev\tsysfs\nnodev\toverlay\n", 0o444, "root", "root")
	h.SetFile("/etc/modules-load.d/overlay.conf", "overlay\n", 0o644, "root", "root")
	h.Freeze()
	changes, err := (&tasks.KernelModule{Name: "overlay"}).Plan(context.Background(), h)
	if err != nil || len(changes) != 0 {
		t.Fatalf("plan = %+v, %v; want nothing to do", changes, err)
	}
	for _, c := range h.Commands {
		if c[0] == "modprobe" && c[1] != "--dry-run" {
			t.Errorf("%v ran although the module is available (only a dry run may)", c)
		}
	}
}

func TestKernelModuleMissingIsAClearError(t *testing.T) {
	h := moduleHost(nil)
	_, err := (&tasks.KernelModule{Name: "overlay"}).Plan(context.Background(), h)
	if err == nil || !strings.Contains(err.Error(), "kernel module overlay is not loaded and cannot be loaded: modprobe: FATAL: Module overlay not found") {
		t.Fatalf("err = %v", err)
	}
}

// C05 (kubernetes/website#15463): loaded but not persisted; /etc/modules
// with a trailing space, a commented line, duplicates.
func TestKernelModuleEtcModules(t *testing.T) {
	header := "# /etc/modules: kernel modules to load at boot time.\n"
	cases := []struct {
		name, in, want string
	}{
		{"trailing space counts", header + "overlay \n", ""},
		{"comment does not count", header + "# overlay\n", header + "# overlay\noverlay\n"},
		{"inline comment after name counts", header + "overlay # for docker\n", ""},
		{"duplicates removed", header + "overlay\nloop\noverlay\n", header + "overlay\nloop\n"},
		{"empty file", "", "overlay\n"},
		{"no final newline", header + "loop", header + "loop\noverlay\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := moduleHost(nil, "overlay")
			h.SetFile("/etc/modules", c.in, 0o644, "root", "root")
			k := &tasks.KernelModule{Name: "overlay", Persist: "modules"}
			if c.want == "" {
				h.Freeze()
				changes, err := k.Plan(context.Background(), h)
				if err != nil || len(changes) != 0 {
					t.Fatalf("plan = %+v, %v; want no change", changes, err)
				}
				return
			}
			tasktest.Converge(t, k, h)
			f, _ := h.File("/etc/modules")
			if string(f.Content) != c.want {
				t.Fatalf("/etc/modules =\n%q\nwant\n%q", f.Content, c.want)
			}
		})
	}
}

func TestKernelModuleDropInNormalised(t *testing.T) {
	h := moduleHost(nil, "overlay")
	h.SetFile("/etc/modules-load.d/overlay.conf", "# managed elsewhere\noverlay \n", 0o644, "root", "root")
	h.Freeze()
	changes, err := (&tasks.KernelModule{Name: "overlay"}).Plan(context.Background(), h)
	if err != nil || len(changes) != 0 {
		t.Fatalf("one active line with a comment: plan = %+v, %v", changes, err)
	}
	h.Thaw()
	h.SetFile("/etc/modules-load.d/overlay.conf", "overlay\noverlay\n", 0o644, "root", "root")
	changes = tasktest.Converge(t, &tasks.KernelModule{Name: "overlay"}, h)
	if changes[0].Action != tasks.Update {
		t.Errorf("change = %+v", changes[0])
	}
}

func TestKernelModuleValidate(t *testing.T) {
	for _, k := range []*tasks.KernelModule{{Name: ""}, {Name: "over lay"}, {Name: "overlay", Persist: "rc.local"}} {
		if err := k.Validate(); err == nil {
			t.Errorf("%+v: no error", k)
		}
	}
}

// A loaded module's plan is one probe batch that neither asks modprobe nor
// reads /proc/filesystems: only a module missing from /sys/module needs
// them, in a second batch.
func TestKernelModuleLoadedIsOneBatch(t *testing.T) {
	h := moduleHost([]string{"overlay"}, "overlay")
	h.SetFile("/etc/modules-load.d/overlay.conf", "overlay\n", 0o644, "root", "root")
	h.RoundTrips()
	if changes := plan(t, &tasks.KernelModule{Name: "overlay"}, h); len(changes) != 0 {
		t.Fatalf("changes = %+v", changes)
	}
	if h.Ran("modprobe") {
		t.Errorf("ran modprobe for a loaded module: %v", h.Commands)
	}
	if n := h.RoundTrips(); n != 1 {
		t.Errorf("%d round trips, want 1", n)
	}
}
