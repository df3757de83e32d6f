package tasks_test

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

// fakeDockerd is the docker daemon of a daemonHost: its Engine API (the
// storage driver it runs with and what it keeps), whether its dockerd can
// --validate, and its command line, found as the real one is: the pid in
// /var/run/docker.pid, then /proc/PID/cmdline.
type fakeDockerd struct {
	engine   *tasktest.Docker
	validate bool
}

// daemonHost is a host whose docker runs with driver and holds images
// images and containers containers, started as Debian's init script starts
// it (dockerd -p /var/run/docker.pid $DOCKER_OPTS), with opts as
// DOCKER_OPTS. `dockerd --help` shows --validate only when validate,
// `dockerd --version` is Debian's 20.10.
func daemonHost(driver string, images, containers int, validate bool, opts ...string) (*tasktest.Host, *fakeDockerd) {
	h := tasktest.New()
	d := &fakeDockerd{engine: tasktest.InstallDocker(h), validate: validate}
	d.engine.Newer = validate // Docker 23 and later: --validate, and Info says so
	d.engine.Driver = driver
	for i := range images {
		d.engine.AddImage("app:"+strconv.Itoa(i), tasktest.DockerImage{Cmd: []string{"app", strconv.Itoa(i)}})
	}
	for i := range containers {
		if err := d.engine.RunContainer(client.ContainerCreateOptions{Name: "c" + strconv.Itoa(i), Config: &container.Config{Image: "app:0"}}); err != nil {
			panic(err)
		}
	}
	h.MkdirAll("/etc/docker")
	h.SetFile("/var/run/docker.pid", "4242", 0o644, "root", "root")
	argv := append([]string{"/usr/sbin/dockerd", "-p", "/var/run/docker.pid"}, opts...)
	h.SetFile("/proc/4242/cmdline", strings.Join(argv, "\x00")+"\x00", 0o444, "root", "root")
	h.Handle("dockerd", func(h *tasktest.Host, args []string, _ []byte) tasks.Output {
		switch args[1] {
		case "--help":
			if d.validate {
				return tasks.Output{Stdout: append(dockerd2010Help(), "      --validate    Validate daemon configuration and exit\n"...)}
			}
			return tasks.Output{Stdout: dockerd2010Help()}
		case "--version":
			return tasks.Output{Stdout: []byte("Docker version 20.10.24+dfsg1, build 5d6db84\n")}
		case "--validate":
			f, _ := h.File(args[3])
			if err := tasks.CheckJSON(f.Content); err != nil {
				return tasks.Output{ExitCode: 1, Stderr: []byte(err.Error())}
			}
			return tasks.Output{Stdout: []byte("configuration OK\n")}
		}
		return tasks.Output{ExitCode: 2}
	})
	return h, d
}

// dockerd2010Help is what Debian's dockerd 20.10.24 prints for --help.
func dockerd2010Help() []byte {
	b, err := os.ReadFile("testdata/dockerd-20.10-help.txt")
	if err != nil {
		panic(err)
	}
	return b
}

// restart is what the restart handler does to the fake: docker comes back
// with the driver the file names.
func (d *fakeDockerd) restart(t *testing.T, h *tasktest.Host) {
	t.Helper()
	f, _ := h.File("/etc/docker/daemon.json")
	var cfg struct {
		Driver string `json:"storage-driver"`
	}
	if err := json.Unmarshal(f.Content, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Driver != "" && cfg.Driver != d.engine.Driver {
		d.engine.SwitchStorageDriver(cfg.Driver)
	}
}

// dockerInfoHost is daemonHost for tests that need no more.
func dockerInfoHost(driver string, images, containers int, validate bool) *tasktest.Host {
	h, _ := daemonHost(driver, images, containers, validate)
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
	if len(c.Warnings) != 2 || !strings.Contains(c.Warnings[0], `"ipv6" is the string "true"`) ||
		!strings.Contains(c.Warnings[1], "cannot validate") {
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
	h, dockerd := daemonHost("overlay", 12, 3, true)
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
	changes := plan(t, d, h)
	if len(changes) != 1 || len(changes[0].Warnings) != 1 || !strings.Contains(changes[0].Warnings[0], "12 image(s)") {
		t.Fatalf("changes = %+v", changes)
	}
	apply(t, d, h, changes)
	dockerd.restart(t, h) // the handler
	if again := plan(t, d, h); len(again) != 0 {
		t.Fatalf("plan after apply and restart: %+v", again)
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

// dockerd refuses to start when a setting is both a flag and a key of
// daemon.json: a plan that would lead there fails, naming the key, the flag
// and what to do, and writes nothing.
func TestDaemonConfigFlagConflictFailsPlan(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     []string // DOCKER_OPTS
		file     string
		settings map[string]any
		want     []string
	}{
		{"long flag", []string{"--storage-driver=overlay2"}, "", map[string]any{"storage-driver": "overlay2"},
			[]string{"storage-driver (flag --storage-driver=overlay2)", "leave storage-driver out of settings"}},
		{"short flag with its value apart", []string{"-s", "overlay2"}, "", map[string]any{"storage-driver": "overlay2"},
			[]string{"storage-driver (flag -s overlay2)"}},
		{"systemd's -H fd:// and hosts", []string{"-H", "fd://", "--containerd=/run/containerd/containerd.sock"}, "",
			map[string]any{"hosts": []any{"unix:///var/run/docker.sock"}}, []string{"hosts (flag -H fd://)"}},
		{"plural key, singular flag, key already in the file", []string{"--registry-mirror", "http://m:5000"},
			`{"registry-mirrors": ["http://m:5000"]}`, map[string]any{"storage-driver": "overlay2"},
			[]string{"registry-mirrors (flag --registry-mirror http://m:5000)", "remove registry-mirrors from /etc/docker/daemon.json"}},
		{"nested key", []string{"--http-proxy=http://proxy:3128"}, "",
			map[string]any{"proxies": map[string]any{"http-proxy": "http://proxy:3128"}},
			[]string{"proxies.http-proxy (flag --http-proxy=http://proxy:3128)"}},
		{"bool shorthand", []string{"-D"}, "", map[string]any{"debug": true}, []string{"debug (flag -D)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := daemonHost("overlay2", 0, 0, false, tc.opts...)
			if tc.file != "" {
				h.SetFile("/etc/docker/daemon.json", tc.file, 0o644, "root", "root")
			}
			d := &tasks.DockerDaemonConfig{Settings: tc.settings}
			h.Freeze()
			changes, err := d.Plan(context.Background(), h)
			h.Thaw()
			if err == nil {
				t.Fatalf("plan = %+v, want an error", changes)
			}
			for _, w := range append(tc.want, "specified both as a flag and in the configuration file", "DOCKER_OPTS") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// What is not a conflict: keys the flags do not set, runtimes (merged by
// dockerd), a pidfile left by a dockerd that is gone, no dockerd at all, and
// a conflict when the task changes nothing (the check runs only for a
// change).
func TestDaemonConfigNoFlagConflict(t *testing.T) {
	ctx := context.Background()
	// Debian's init script always passes -p: no conflict with storage-driver.
	h, _ := daemonHost("overlay2", 0, 0, false, "--add-runtime", "crun=/usr/bin/crun", "--log-level=info")
	d := &tasks.DockerDaemonConfig{Settings: map[string]any{"storage-driver": "overlay2",
		"runtimes": map[string]any{"crun": map[string]any{"path": "/usr/bin/crun"}}, "log-opts": map[string]any{"max-size": "10m"}}}
	tasktest.Converge(t, d, h)

	h, _ = daemonHost("overlay2", 0, 0, false, "--storage-driver=overlay2")
	h.SetFile("/var/run/docker.pid", "999", 0o644, "root", "root") // no /proc/999: dockerd is gone
	tasktest.Converge(t, overlay2(), h)

	h, _ = daemonHost("overlay2", 0, 0, false, "--storage-driver=overlay2")
	h.SetFile("/proc/4242/cmdline", "/usr/sbin/sshd\x00-D\x00", 0o444, "root", "root") // the pid is another program's now
	tasktest.Converge(t, overlay2(), h)

	h, _ = daemonHost("overlay2", 0, 0, false, "--storage-driver=overlay2")
	h.RemoveFile("/var/run/docker.pid")
	tasktest.Converge(t, overlay2(), h)

	// Already in the file and docker runs it: nothing changes, nothing is
	// checked (dockerd runs, so it cannot be refusing this file).
	h, _ = daemonHost("overlay2", 0, 0, false, "--storage-driver=overlay2")
	h.SetFile("/etc/docker/daemon.json", `{"storage-driver": "overlay2"}`, 0o644, "root", "root")
	if changes, err := overlay2().Plan(ctx, h); err != nil || len(changes) != 0 {
		t.Fatalf("plan = %+v, %v", changes, err)
	}
}

// The file already names overlay2 but docker still runs another driver: an
// earlier apply wrote the file and its restart never ran. The plan reports a
// change, so that the handler restarts docker; apply writes nothing.
func TestDaemonConfigDockerRunsAnotherDriver(t *testing.T) {
	ctx := context.Background()
	h, dockerd := daemonHost("vfs", 0, 0, false)
	h.SetFile("/etc/docker/daemon.json", "{\n  \"storage-driver\": \"overlay2\"\n}\n", 0o644, "root", "root")
	changes := plan(t, overlay2(), h)
	if len(changes) != 1 {
		t.Fatalf("want one change, got %+v", changes)
	}
	c := changes[0]
	if c.Action != tasks.Update || c.Target != "/etc/docker/daemon.json" || c.Summary != "docker runs vfs; restart to use overlay2" || c.Diff != "" {
		t.Errorf("change = %+v", c)
	}
	if want := []tasks.Field{{Name: "storage-driver", Old: "vfs (running)", New: "overlay2"}}; !reflect.DeepEqual(c.Fields, want) {
		t.Errorf("fields = %+v, want %+v", c.Fields, want)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("nothing is written, so nothing to validate or warn about: %q", c.Warnings)
	}
	apply(t, overlay2(), h, changes)
	if len(h.Writes) != 0 || h.Ran("mkdir") || h.Ran("dockerd") {
		t.Errorf("apply of a restart-only change touched the host: writes %q, commands %q", h.Writes, h.Commands)
	}
	dockerd.restart(t, h)
	if again := plan(t, overlay2(), h); len(again) != 0 {
		t.Fatalf("plan after the restart: %+v", again)
	}

	// The file changed between plan and apply: the restart would not do
	// what the plan said.
	h, _ = daemonHost("vfs", 0, 0, false)
	h.SetFile("/etc/docker/daemon.json", `{"storage-driver": "overlay2"}`, 0o644, "root", "root")
	changes = plan(t, overlay2(), h)
	h.SetFile("/etc/docker/daemon.json", `{"storage-driver": "overlay2", "debug": true}`, 0o644, "root", "root")
	if err := overlay2().Apply(ctx, h, changes); err == nil || !strings.Contains(err.Error(), "changed since the plan") {
		t.Fatalf("apply err = %v", err)
	}

	// The consent rule holds for this case too: the restart hides images.
	h, _ = daemonHost("vfs", 7, 2, false)
	h.SetFile("/etc/docker/daemon.json", `{"storage-driver": "overlay2"}`, 0o644, "root", "root")
	if _, err := overlay2().Plan(ctx, h); err == nil || !strings.Contains(err.Error(), "hides its 7 image(s) and 2 container(s)") {
		t.Fatalf("plan err = %v", err)
	}
	d := overlay2()
	d.AllowStorageDriverChange = true
	if changes := plan(t, d, h); len(changes) != 1 || len(changes[0].Warnings) != 1 || !strings.Contains(changes[0].Summary, "restart to use overlay2") {
		t.Fatalf("changes = %+v", changes)
	}

	// Another key changes too: one write, and the summary says both.
	h, _ = daemonHost("vfs", 0, 0, false)
	h.SetFile("/etc/docker/daemon.json", `{"storage-driver": "overlay2"}`, 0o644, "root", "root")
	d = &tasks.DockerDaemonConfig{Settings: map[string]any{"storage-driver": "overlay2", "debug": true}}
	changes = plan(t, d, h)
	if len(changes) != 1 || changes[0].Summary != "set debug; docker runs vfs; restart to use overlay2" || changes[0].Diff == "" {
		t.Fatalf("changes = %+v", changes)
	}
}

// Docker before 23 has no dockerd --validate: the plan says that only the
// JSON syntax was checked, and only when there is something to write.
func TestDaemonConfigWarnsWhenDockerdCannotValidate(t *testing.T) {
	h := dockerInfoHost("overlay2", 0, 0, false)
	changes := plan(t, overlay2(), h)
	want := "dockerd 20.10.24+dfsg1 cannot validate daemon.json (dockerd --validate came with Docker 23); its keys were checked against the options dockerd --help lists, its values only for their JSON syntax"
	if len(changes) != 1 || len(changes[0].Warnings) != 1 || changes[0].Warnings[0] != want {
		t.Fatalf("warnings = %q, want %q", changes[0].Warnings, want)
	}
	if h.Ran("dockerd", "--version") {
		t.Errorf("the plan asked dockerd its version although the running daemon told it: %v", h.Commands)
	}
	apply(t, overlay2(), h, changes)
	if h.Ran("dockerd", "--validate") {
		t.Error("ran dockerd --validate, which this dockerd does not have")
	}
	h = dockerInfoHost("overlay2", 0, 0, true)
	if changes := plan(t, overlay2(), h); len(changes) != 1 || len(changes[0].Warnings) != 0 {
		t.Fatalf("a dockerd that validates: %+v", changes)
	}
	if h.Ran("dockerd") {
		t.Errorf("the plan started dockerd although the running daemon (24.0.9) told its version: %v", h.Commands)
	}
	// No daemon answers: the installed dockerd's --help decides.
	h, d := daemonHost("overlay2", 0, 0, true)
	d.engine.SetDown(true)
	changes = plan(t, overlay2(), h)
	if len(changes) != 1 || len(changes[0].Warnings) != 0 || !h.Ran("dockerd", "--help") {
		t.Fatalf("stopped docker whose dockerd validates: %+v", changes)
	}
	apply(t, overlay2(), h, changes)
	if !h.Ran("dockerd", "--validate") {
		t.Error("the file was not validated")
	}
}

// unreadableProc is a host where /proc cannot be read (mounted hidepid=2,
// no become).
type unreadableProc struct{ *tasktest.Host }

func (u unreadableProc) ReadFile(ctx context.Context, p string) (tasks.RemoteFile, error) {
	if strings.HasPrefix(p, "/proc/") {
		return tasks.RemoteFile{}, &fs.PathError{Op: "read", Path: p, Err: fs.ErrPermission}
	}
	return u.Host.ReadFile(ctx, p)
}

func TestDaemonConfigUnreadableCommandLineWarns(t *testing.T) {
	h, _ := daemonHost("overlay2", 0, 0, true, "--storage-driver=overlay2")
	changes, err := overlay2().Plan(context.Background(), unreadableProc{h})
	if err != nil || len(changes) != 1 || len(changes[0].Warnings) != 1 ||
		!strings.Contains(changes[0].Warnings[0], "could not read the running dockerd's command line") {
		t.Fatalf("plan = %+v, %v", changes, err)
	}
}

// A docker that does not answer (stopped), or a host without it, runs no
// driver: the file alone decides, nothing is hidden, no error.
func TestDaemonConfigWithoutARunningDocker(t *testing.T) {
	file := "{\n  \"storage-driver\": \"overlay2\"\n}\n"
	stopped, dockerd := daemonHost("vfs", 3, 1, false)
	dockerd.engine.SetDown(true)
	none := tasktest.New()
	for name, h := range map[string]*tasktest.Host{"stopped": stopped, "no docker": none} {
		h.MkdirAll("/etc/docker")
		h.SetFile("/etc/docker/daemon.json", file, 0o644, "root", "root")
		if got := plan(t, overlay2(), h); len(got) != 0 {
			t.Errorf("%s: plan %+v, want no change (nothing runs another driver)", name, got)
		}
	}
	// Without the file, it is written, without the consent a running
	// docker's images would need.
	stopped, dockerd = daemonHost("vfs", 3, 1, false)
	dockerd.engine.SetDown(true)
	got := plan(t, overlay2(), stopped)
	if len(got) != 1 || got[0].Action != tasks.Create {
		t.Fatalf("stopped docker, no file: %+v", got)
	}
	// No daemon tells its version: the installed dockerd does.
	if !stopped.Ran("dockerd", "--version") || len(got[0].Warnings) != 1 || !strings.Contains(got[0].Warnings[0], "dockerd 20.10.24+dfsg1 cannot validate") {
		t.Errorf("stopped docker: warnings %q", got[0].Warnings)
	}
}

// remove deletes keys: the plan shows the diff, a key the file does not
// have is no change, and the other keys keep their text and order.
func TestDaemonConfigRemoveKeys(t *testing.T) {
	h := dockerInfoHost("overlay2", 0, 0, false)
	h.SetFile("/etc/docker/daemon.json", "{\n  \"debug\": true,\n  \"storage-driver\": \"overlay2\",\n  \"storage-drvier\": \"overlay2\",\n  \"mtu\": 1450\n}\n", 0o644, "root", "root")
	d := &tasks.DockerDaemonConfig{Settings: map[string]any{"storage-driver": "overlay2"}, Remove: []string{"storage-drvier", "debug", "not-there"}}
	changes := tasktest.Converge(t, d, h)
	if len(changes) != 1 || changes[0].Summary != "remove debug, storage-drvier" {
		t.Fatalf("changes = %+v", changes)
	}
	for _, want := range []string{"-  \"debug\": true,", "-  \"storage-drvier\": \"overlay2\","} {
		if !strings.Contains(changes[0].Diff, want) {
			t.Errorf("diff lacks %q:\n%s", want, changes[0].Diff)
		}
	}
	f, _ := h.File("/etc/docker/daemon.json")
	if want := "{\n  \"storage-driver\": \"overlay2\",\n  \"mtu\": 1450\n}\n"; string(f.Content) != want {
		t.Errorf("daemon.json = %q, want %q", f.Content, want)
	}

	// Only keys the file does not have: no change, nothing written.
	h = dockerInfoHost("overlay2", 0, 0, false)
	h.SetFile("/etc/docker/daemon.json", `{"mtu": 1450}`, 0o644, "root", "root")
	if got := plan(t, &tasks.DockerDaemonConfig{Remove: []string{"debug"}}, h); len(got) != 0 {
		t.Errorf("removing a missing key: %+v", got)
	}
	// No file at all: nothing to remove.
	h = dockerInfoHost("overlay2", 0, 0, false)
	if got := plan(t, &tasks.DockerDaemonConfig{Remove: []string{"debug"}}, h); len(got) != 0 {
		t.Errorf("removing from no file: %+v", got)
	}
	// Set one key and remove another in one write.
	h = dockerInfoHost("overlay2", 0, 0, false)
	h.SetFile("/etc/docker/daemon.json", `{"debug": true}`, 0o644, "root", "root")
	d = &tasks.DockerDaemonConfig{Settings: map[string]any{"mtu": 1400}, Remove: []string{"debug"}}
	if got := tasktest.Converge(t, d, h); len(got) != 1 || got[0].Summary != "set mtu; remove debug" {
		t.Errorf("set and remove: %+v", got)
	}
}

func TestDaemonConfigValidateRemove(t *testing.T) {
	for _, tc := range []struct {
		d    tasks.DockerDaemonConfig
		want string
	}{
		{tasks.DockerDaemonConfig{Remove: []string{"debug"}}, ""},
		{tasks.DockerDaemonConfig{Remove: []string{""}}, "remove: an empty key"},
		{tasks.DockerDaemonConfig{Remove: []string{"debug", "debug"}}, `remove: "debug" is listed twice`},
		{tasks.DockerDaemonConfig{Settings: map[string]any{"debug": true}, Remove: []string{"debug"}}, `remove: "debug" is also in settings`},
	} {
		err := tc.d.Validate()
		if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: Validate() = %v, want %q", tc.d, err, tc.want)
		}
	}
}

// debianUnit is Debian's docker.service as `systemctl cat` shows it, with
// the drop-ins given (each "path\ncontent").
func debianUnit(dropIns ...string) string {
	out := "# /lib/systemd/system/docker.service\n[Unit]\nDescription=Docker Application Container Engine\n\n[Service]\nType=notify\nEnvironmentFile=-/etc/default/docker\nExecStart=/usr/sbin/dockerd -H fd:// $DOCKER_OPTS\nExecReload=/bin/kill -s HUP $MAINPID\n\n[Install]\nWantedBy=multi-user.target\n"
	for _, d := range dropIns {
		p, content, _ := strings.Cut(d, "\n")
		out += "\n# " + p + "\n" + content
	}
	return out
}

// systemdHost makes h a host whose init system is systemd, with unit as
// `systemctl cat docker.service`.
func systemdHost(h *tasktest.Host, unit string) {
	h.MkdirAll("/run/systemd/system")
	h.Handle("systemctl", func(_ *tasktest.Host, args []string, _ []byte) tasks.Output {
		if len(args) == 3 && args[1] == "cat" && args[2] == "docker.service" {
			return tasks.Output{Stdout: []byte(unit)}
		}
		return tasks.Output{ExitCode: 1}
	})
}

// dockerd's next start takes flags from elsewhere than its running command
// line: the plan fails, before anything is written, naming the file (and
// variable) the flag is in, the flag, and what to do.
func TestDaemonConfigFlagConflictWhereTheNextStartTakesFlags(t *testing.T) {
	for _, tc := range []struct {
		name     string
		setup    func(h *tasktest.Host)
		settings map[string]any
		want     []string
	}{
		{"DOCKER_OPTS of Debian's init script", func(h *tasktest.Host) {
			h.SetFile("/etc/default/docker", "# Docker Upstart and SysVinit configuration file\n#DOCKER_OPTS=\"--dns 8.8.8.8\"\nDOCKER_OPTS=\"--dns 8.8.8.8 --storage-driver=overlay2\"\n", 0o644, "root", "root")
		}, map[string]any{"storage-driver": "overlay2"},
			[]string{"storage-driver (flag --storage-driver=overlay2) from DOCKER_OPTS in /etc/default/docker", "remove the flag from DOCKER_OPTS in /etc/default/docker", "leave storage-driver out of settings"}},
		{"OPTIONS of /etc/sysconfig/docker", func(h *tasktest.Host) {
			h.SetFile("/etc/sysconfig/docker", "OPTIONS='--selinux-enabled --log-driver=journald'\n", 0o644, "root", "root")
		}, map[string]any{"log-driver": "json-file"},
			[]string{"log-driver (flag --log-driver=journald) from OPTIONS in /etc/sysconfig/docker"}},
		{"systemd drop-in", func(h *tasktest.Host) {
			systemdHost(h, debianUnit("/etc/systemd/system/docker.service.d/override.conf\n[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd \\\n  --log-level=warn -H unix:///var/run/docker.sock\n"))
		}, map[string]any{"log-level": "info", "hosts": []any{"unix:///var/run/docker.sock"}},
			[]string{"log-level (flag --log-level=warn) from ExecStart of docker.service in /etc/systemd/system/docker.service.d/override.conf",
				"hosts (flag -H unix:///var/run/docker.sock) from ExecStart of docker.service in /etc/systemd/system/docker.service.d/override.conf"}},
		{"systemd unit's own -H fd://", func(h *tasktest.Host) { systemdHost(h, debianUnit()) },
			map[string]any{"hosts": []any{"unix:///var/run/docker.sock"}},
			[]string{"hosts (flag -H fd://) from ExecStart of docker.service in /lib/systemd/system/docker.service"}},
		{"DOCKER_OPTS through the unit's EnvironmentFile", func(h *tasktest.Host) {
			systemdHost(h, debianUnit())
			h.SetFile("/etc/default/docker", "DOCKER_OPTS='-s overlay2'\n", 0o644, "root", "root")
		}, map[string]any{"storage-driver": "overlay2"},
			[]string{"storage-driver (flag -s overlay2) from DOCKER_OPTS in /etc/default/docker (EnvironmentFile of docker.service)"}},
		{"an EnvironmentFile of its own and Environment=", func(h *tasktest.Host) {
			systemdHost(h, debianUnit("/etc/systemd/system/docker.service.d/env.conf\n[Service]\nEnvironmentFile=/etc/docker/dockerd.env\nEnvironment=\"EXTRA=--debug --mtu 1400\"\nExecStart=\nExecStart=/usr/sbin/dockerd $OPTS ${EXTRA}\n"))
			h.SetFile("/etc/docker/dockerd.env", "OPTS=--registry-mirror=http://m:5000\n", 0o644, "root", "root")
		}, map[string]any{"registry-mirrors": []any{"http://m:5000"}, "mtu": 1400},
			[]string{"registry-mirrors (flag --registry-mirror=http://m:5000) from OPTS in /etc/docker/dockerd.env (EnvironmentFile of docker.service)",
				"mtu (flag --mtu 1400) from Environment=EXTRA in /etc/systemd/system/docker.service.d/env.conf"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := daemonHost("overlay2", 0, 0, false)
			h.RemoveFile("/var/run/docker.pid") // no dockerd runs: only the next start counts
			tc.setup(h)
			h.Freeze()
			changes, err := (&tasks.DockerDaemonConfig{Settings: tc.settings}).Plan(context.Background(), h)
			h.Thaw()
			if err == nil {
				t.Fatalf("plan = %+v, want an error", changes)
			}
			for _, w := range append(tc.want, "specified both as a flag and in the configuration file", "nothing was written") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// What the next start does not get is no conflict: a commented or empty
// DOCKER_OPTS, an ExecStart that a drop-in replaced, a unit whose ExecStart
// is not dockerd, a systemd host's /etc/default/docker that its unit does
// not read, and a non-systemd host's unit files.
func TestDaemonConfigNoConflictWhereTheNextStartTakesNoFlag(t *testing.T) {
	for name, setup := range map[string]func(h *tasktest.Host){
		"commented DOCKER_OPTS": func(h *tasktest.Host) {
			h.SetFile("/etc/default/docker", "#DOCKER_OPTS=\"--storage-driver=overlay2\"\nDOCKER_OPTS=\n", 0o644, "root", "root")
		},
		"ExecStart replaced by a drop-in": func(h *tasktest.Host) {
			systemdHost(h, strings.Replace(debianUnit("/etc/systemd/system/docker.service.d/override.conf\n[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd --containerd=/run/containerd/containerd.sock\n"), "$DOCKER_OPTS", "-s overlay2", 1))
		},
		"unit without EnvironmentFile": func(h *tasktest.Host) {
			systemdHost(h, "# /etc/systemd/system/docker.service\n[Service]\nExecStart=/usr/bin/dockerd --containerd=/run/containerd/containerd.sock\n")
			h.SetFile("/etc/default/docker", "DOCKER_OPTS=--storage-driver=overlay2\n", 0o644, "root", "root")
		},
		"ExecStart is a wrapper": func(h *tasktest.Host) {
			systemdHost(h, "# /etc/systemd/system/docker.service\n[Service]\nExecStart=/usr/local/bin/start-docker -s overlay2\n")
		},
	} {
		t.Run(name, func(t *testing.T) {
			h, _ := daemonHost("overlay2", 0, 0, false)
			h.RemoveFile("/var/run/docker.pid")
			setup(h)
			tasktest.Converge(t, overlay2(), h)
		})
	}
}

// A dockerd too old for --validate (Debian's 20.10): a key of the new file
// that its dockerd --help does not list fails the plan with the nearest
// key it knows, before anything is written; dockerd would refuse to start.
func TestDaemonConfigUnknownKeyFailsPlan(t *testing.T) {
	h := dockerInfoHost("overlay2", 0, 0, false)
	h.Freeze()
	d := &tasks.DockerDaemonConfig{Settings: map[string]any{"storage-drvier": "overlay2", "mtu": 1400}}
	_, err := d.Plan(context.Background(), h)
	h.Thaw()
	for _, w := range []string{`/etc/docker/daemon.json would have "storage-drvier" (did you mean "storage-driver"?)`,
		"dockerd 20.10.24+dfsg1 on this host does not know", "don't match any configuration option", "nothing was written",
		"Correct storage-drvier in settings"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("plan error lacks %q:\n%v", w, err)
		}
	}
	if len(h.Writes) != 0 {
		t.Errorf("written: %q", h.Writes)
	}

	// Already in the file: dindops names it and how to delete it; with
	// remove, the plan goes through.
	h = dockerInfoHost("overlay2", 0, 0, false)
	h.SetFile("/etc/docker/daemon.json", `{"debgu": true, "log-config": {"max-sise": "10m"}}`, 0o644, "root", "root")
	_, err = overlay2().Plan(context.Background(), h)
	for _, w := range []string{`"debgu" (did you mean "debug"?)`, `"log-config.max-sise"`, "Delete debgu, log-config from /etc/docker/daemon.json (remove: [debgu, log-config])"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("plan error lacks %q:\n%v", w, err)
		}
	}
	d = overlay2()
	d.Remove = []string{"debgu", "log-config"}
	tasktest.Converge(t, d, h)
}

// The keys dockerd 20.10 knows although they are not a flag's long name in
// its --help (moby v20.10.24, see dockerd_keys.go) pass the check.
func TestDaemonConfigKnownKeysPass(t *testing.T) {
	h := dockerInfoHost("overlay2", 0, 0, false)
	d := &tasks.DockerDaemonConfig{Settings: map[string]any{
		"registry-mirrors": []any{"http://m:5000"}, "insecure-registries": []any{"m:5000"}, "hosts": []any{"unix:///var/run/docker.sock"},
		"labels": []any{"a=b"}, "log-opts": map[string]any{"max-size": "10m"}, "runtimes": map[string]any{"crun": map[string]any{"path": "/usr/bin/crun"}},
		"default-ulimits":       map[string]any{"nofile": map[string]any{"Name": "nofile", "Hard": 64000, "Soft": 64000}},
		"default-address-pools": []any{map[string]any{"base": "10.10.0.0/16", "size": 24}}, "storage-opts": []any{"overlay2.override_kernel_check=true"},
		"exec-opts": []any{"native.cgroupdriver=systemd"}, "dns-opts": []any{"ndots:1"}, "dns": []any{"10.0.0.2"}, "dns-search": []any{"example.com"},
		"features": map[string]any{"buildkit": true}, "builder": map[string]any{"gc": map[string]any{"enabled": true}},
		"graph": "/var/lib/docker", "tlscacert": "/etc/docker/ca.pem", "debug": true, "ipv6": false, "storage-driver": "overlay2",
	}}
	changes := tasktest.Converge(t, d, h)
	if len(changes) != 1 {
		t.Fatalf("changes = %+v", changes)
	}
	// A dockerd that validates checks the file itself: no key check then.
	h = dockerInfoHost("overlay2", 0, 0, true)
	tasktest.Converge(t, &tasks.DockerDaemonConfig{Settings: map[string]any{"new-in-docker-99": true}}, h)
	// A dockerd --help that lists no option: a warning, not a failure.
	h = dockerInfoHost("overlay2", 0, 0, false)
	h.Handle("dockerd", func(*tasktest.Host, []string, []byte) tasks.Output {
		return tasks.Output{Stdout: []byte("Usage: dockerd\n")}
	})
	changes = plan(t, &tasks.DockerDaemonConfig{Settings: map[string]any{"storage-drvier": "overlay2"}}, h)
	if len(changes) != 1 || len(changes[0].Warnings) != 1 || !strings.Contains(changes[0].Warnings[0], "only its JSON syntax was checked (dockerd --help listed no options)") {
		t.Fatalf("changes = %+v", changes)
	}
}
