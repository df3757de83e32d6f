package tasks_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

// dockerInfoHost answers `docker info` with the given driver and counts, and
// `dockerd --help` with or without --validate.
func dockerInfoHost(driver string, images, containers int, validate bool) *tasktest.Host {
	h := tasktest.New()
	h.MkdirAll("/etc/docker")
	h.Handle("docker", func(_ *tasktest.Host, args []string, _ []byte) tasks.Output {
		if len(args) > 1 && args[1] == "info" {
			return tasks.Output{Stdout: []byte(`"` + driver + `" ` + strconv.Itoa(images) + " " + strconv.Itoa(containers) + "\n")}
		}
		return tasks.Output{ExitCode: 1, Stderr: []byte("unexpected docker call")}
	})
	h.Handle("dockerd", func(h *tasktest.Host, args []string, _ []byte) tasks.Output {
		if args[1] == "--help" {
			if validate {
				return tasks.Output{Stdout: []byte("      --validate    Validate daemon configuration and exit\n")}
			}
			return tasks.Output{Stdout: []byte("Usage: dockerd [OPTIONS]\n")}
		}
		if args[1] == "--validate" {
			f, _ := h.File(args[3])
			if err := tasks.CheckJSON(f.Content); err != nil {
				return tasks.Output{ExitCode: 1, Stderr: []byte(err.Error())}
			}
			return tasks.Output{Stdout: []byte("configuration OK\n")}
		}
		return tasks.Output{ExitCode: 2}
	})
	return h
}

func overlay2() *tasks.DockerDaemonConfig {
	return &tasks.DockerDaemonConfig{Settings: map[string]any{"storage-driver": "overlay2"}}
}

func TestDaemonConfigCreates(t *testing.T) {
	h := dockerInfoHost("overlay2", 0, 0, true)
	changes := tasktest.Converge(t, overlay2(), h)
	if changes[0].Action != tasks.Create {
		t.Errorf("action = %v", changes[0].Action)
	}
	f, _ := h.File("/etc/docker/daemon.json")
	if string(f.Content) != "{\n  \"storage-driver\": \"overlay2\"\n}\n" {
		t.Fatalf("daemon.json = %q", f.Content)
	}
	if !h.Ran("dockerd", "--validate") {
		t.Error("dockerd --validate was available but not used")
	}
}

// C03 (moby/moby#44905): the merge keeps other keys, their JSON types and
// their order; the diff shows only the added key; "ipv6": "true" warns.
func TestDaemonConfigMergeKeepsOtherKeys(t *testing.T) {
	h := dockerInfoHost("overlay2", 3, 1, false)
	old := "{\n    \"log-driver\": \"json-file\",\n    \"ipv6\": \"true\",\n    \"log-opts\": {\"max-size\": \"10m\", \"max-file\": \"3\"},\n    \"mtu\": 1450,\n    \"registry-mirrors\": [\"http://10.0.0.2:5000\"]\n}\n"
	h.SetFile("/etc/docker/daemon.json", old, 0o644, "root", "root")
	changes := tasktest.Converge(t, overlay2(), h)
	c := changes[0]
	var plus, minus []string
	for _, l := range strings.Split(c.Diff, "\n") {
		switch {
		case strings.HasPrefix(l, "+++"), strings.HasPrefix(l, "---"):
		case strings.HasPrefix(l, "+"):
			plus = append(plus, l)
		case strings.HasPrefix(l, "-"):
			minus = append(minus, l)
		}
	}
	// The old last line gains a comma; the new key follows.
	if len(minus) != 1 || len(plus) != 2 || !strings.Contains(plus[1], `"storage-driver": "overlay2"`) {
		t.Fatalf("diff changes more than the added key:\n%s", c.Diff)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], `"ipv6" is the string "true"`) {
		t.Errorf("warnings = %q", c.Warnings)
	}
	f, _ := h.File("/etc/docker/daemon.json")
	for _, keep := range []string{`"ipv6": "true"`, `"mtu": 1450`, `"max-size": "10m"`, `"http://10.0.0.2:5000"`} {
		if !strings.Contains(string(f.Content), keep) {
			t.Errorf("merged file lost %s:\n%s", keep, f.Content)
		}
	}
	if strings.Index(string(f.Content), "log-driver") > strings.Index(string(f.Content), "mtu") {
		t.Errorf("key order changed:\n%s", f.Content)
	}
}

// C03: an existing file that is not one JSON object is never overwritten.
func TestDaemonConfigRefusesUnparsableFile(t *testing.T) {
	for name, content := range map[string]string{
		"concatenated":  `{"log-driver":"json-file"}{"ipv6":true}`,
		"trailing":      "{\"a\": 1,}\n",
		"duplicate key": `{"debug": true, "debug": false}`,
		"array":         `["storage-driver"]`,
	} {
		t.Run(name, func(t *testing.T) {
			h := dockerInfoHost("overlay2", 0, 0, false)
			h.SetFile("/etc/docker/daemon.json", content, 0o644, "root", "root")
			_, err := overlay2().Plan(context.Background(), h)
			if err == nil || !strings.Contains(err.Error(), "will not overwrite") {
				t.Fatalf("plan err = %v", err)
			}
		})
	}
}

func TestDaemonConfigNoChangeWhenEqual(t *testing.T) {
	h := dockerInfoHost("overlay2", 0, 0, false)
	h.SetFile("/etc/docker/daemon.json", `{"storage-driver":"overlay2","debug":true}`, 0o644, "root", "root")
	h.Freeze()
	changes, err := overlay2().Plan(context.Background(), h)
	if err != nil || len(changes) != 0 {
		t.Fatalf("plan = %+v, %v", changes, err)
	}
}

// C06 (moby/moby#34112): changing the storage driver hides images and
// containers; it needs allow_storage_driver_change.
func TestDaemonConfigStorageDriverChangeNeedsConsent(t *testing.T) {
	h := dockerInfoHost("overlay", 12, 3, false)
	h.SetFile("/etc/docker/daemon.json", `{"storage-driver": "overlay"}`, 0o644, "root", "root")
	_, err := overlay2().Plan(context.Background(), h)
	if err == nil || !strings.Contains(err.Error(), "hides its 12 image(s) and 3 container(s)") || !strings.Contains(err.Error(), "allow_storage_driver_change") {
		t.Fatalf("plan err = %v", err)
	}
	if len(h.Writes) != 0 {
		t.Fatal("a file was written")
	}
	d := overlay2()
	d.AllowStorageDriverChange = true
	changes := tasktest.Converge(t, d, h)
	if len(changes[0].Warnings) != 1 || !strings.Contains(changes[0].Warnings[0], "12 image(s)") {
		t.Errorf("warnings = %q", changes[0].Warnings)
	}
}

func TestDaemonConfigValidate(t *testing.T) {
	if err := (&tasks.DockerDaemonConfig{}).Validate(); err == nil {
		t.Error("empty settings accepted")
	}
	d := &tasks.DockerDaemonConfig{Settings: map[string]any{"log-opts": map[string]any{"max-size": "10m"}, "mtu": 1450}}
	if err := d.Validate(); err != nil {
		t.Error(err)
	}
	h := dockerInfoHost("overlay2", 0, 0, false)
	tasktest.Converge(t, d, h)
	f, _ := h.File("/etc/docker/daemon.json")
	if !strings.Contains(string(f.Content), "\"log-opts\": {\n    \"max-size\": \"10m\"\n  }") {
		t.Errorf("nested value not indented:\n%s", f.Content)
	}
}
