package tasktest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

// probeImage is the image the testdata was captured with on a real Docker
// 20.10.24 engine (docker import with these --change lines).
var probeImage = tasktest.DockerImage{
	Env:     []string{"IMGVAR=fromimage", "PATH=/bin"},
	Cmd:     []string{"/sleeper"},
	Labels:  map[string]string{"img.label": "yes"},
	Volumes: []string{"/data"},
}

// The commands that made testdata/docker-20.10-*.json on the real engine.
var probeCommands = [][]string{
	{"network", "create", "--label", "team=ci", "--opt", "com.docker.network.driver.mtu=1400", "dindops-cap-net"},
	{"run", "-d", "--name", "dindops-cap-c", "--network", "dindops-cap-net", "--network-alias", "cache",
		"--restart", "always", "--cap-add", "all", "--cap-drop", "sys_resource", "--security-opt", "seccomp=unconfined",
		"-v", "dindops-cap-vol:/v", "-v", "/tmp:/host:ro", "-v", "/anon", "-e", "A=1", "-e", "EMPTY=", "--label", "l=1",
		"--stop-timeout", "5", "--entrypoint", "/sleeper", "dindops-probe:1", "a", "b"},
}

func readJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var objs []map[string]any
	if err := json.Unmarshal(b, &objs); err != nil || len(objs) != 1 {
		t.Fatalf("want a JSON array of one object: %v\n%s", err, b)
	}
	return objs[0]
}

// get walks a dotted path; "*" takes a map's only (or first by key) entry.
func get(v any, p string) any {
	for _, k := range strings.Split(p, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		if k == "*" {
			keys := make([]string, 0, len(m))
			for mk := range m {
				keys = append(keys, mk)
			}
			if len(keys) == 0 {
				return nil
			}
			sort.Strings(keys)
			k = keys[0]
		}
		v = m[k]
	}
	return v
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// The fake answers the same commands with the same shape and, where docker
// 20.10 keeps what it was given, the same values as the real engine.
func TestFakeMatchesRealDocker2010(t *testing.T) {
	d := tasktest.NewDocker()
	d.AddImage("dindops-probe:1", probeImage)
	for _, c := range probeCommands {
		d.MustCLI(t, c...)
	}
	for _, tc := range []struct {
		file, kind, name string
		same             []string // paths with equal values
		shape            []string // paths with the same JSON type
	}{
		{"docker-20.10-container.json", "container", "dindops-cap-c",
			[]string{"Name", "State.Status", "State.Running", "State.Paused", "Config.Image", "Config.Env", "Config.Cmd",
				"Config.Entrypoint", "Config.Labels", "Config.Volumes", "Config.StopTimeout", "HostConfig.Binds",
				"HostConfig.NetworkMode", "HostConfig.RestartPolicy", "HostConfig.Privileged", "HostConfig.CapAdd",
				"HostConfig.CapDrop", "HostConfig.SecurityOpt"},
			[]string{"Id", "Image", "Mounts", "NetworkSettings.Networks", "NetworkSettings.Networks.*.Aliases",
				"NetworkSettings.Networks.*.NetworkID"}},
		{"docker-20.10-image.json", "image", "dindops-probe:1",
			[]string{"RepoTags", "Config.Env", "Config.Cmd", "Config.Entrypoint", "Config.Labels", "Config.Volumes"},
			[]string{"Id", "RootFS", "RootFS.Layers"}},
		{"docker-20.10-network.json", "network", "dindops-cap-net",
			[]string{"Name", "Driver", "Options", "Labels", "Scope"},
			[]string{"Id", "Containers", "Containers.*.Name", "IPAM.Config"}},
	} {
		b, err := os.ReadFile("testdata/" + tc.file)
		if err != nil {
			t.Fatal(err)
		}
		real := readJSON(t, b)
		fake := readJSON(t, []byte(d.MustCLI(t, tc.kind, "inspect", tc.name)))
		for _, p := range tc.same {
			if r, f := get(real, p), get(fake, p); !reflect.DeepEqual(r, f) {
				t.Errorf("%s %s: real %v, fake %v", tc.kind, p, r, f)
			}
		}
		for _, p := range append(tc.same, tc.shape...) {
			if r, f := kind(get(real, p)), kind(get(fake, p)); r != f {
				t.Errorf("%s %s: real is %s, fake is %s", tc.kind, p, r, f)
			}
		}
	}
	// Mounts: the same types, destinations, modes and names (anonymous
	// volumes get random names).
	b, _ := os.ReadFile("testdata/docker-20.10-container.json")
	mounts := func(c map[string]any) []string {
		var out []string
		for _, m := range c["Mounts"].([]any) {
			m := m.(map[string]any)
			name, _ := m["Name"].(string)
			if len(name) == 64 {
				name = "(anonymous)"
			}
			out = append(out, fmt.Sprintf("%v %v %v rw=%v mode=%q", m["Type"], name, m["Destination"], m["RW"], m["Mode"]))
		}
		sort.Strings(out)
		return out
	}
	real := readJSON(t, b)
	fake := readJSON(t, []byte(d.MustCLI(t, "container", "inspect", "dindops-cap-c")))
	if r, f := mounts(real), mounts(fake); !reflect.DeepEqual(r, f) {
		t.Errorf("mounts:\nreal %q\nfake %q", r, f)
	}
	aliases := get(fake, "NetworkSettings.Networks.*.Aliases").([]any)
	if len(aliases) != 2 || aliases[0] != "cache" || aliases[1] != get(fake, "Id").(string)[:12] {
		t.Errorf("aliases %v: want cache and the short ID, as docker 20.10", aliases)
	}
}

func TestFakeNotFoundMessages(t *testing.T) {
	for _, tc := range []struct {
		newer bool
		args  []string
		want  string
	}{
		{false, []string{"inspect", "x"}, "Error: No such object: x\n"},
		{true, []string{"inspect", "x"}, "Error: No such object: x\n"},
		{false, []string{"container", "inspect", "x"}, "Error: No such container: x\n"},
		{true, []string{"container", "inspect", "x"}, "Error response from daemon: No such container: x\n"},
		{false, []string{"image", "inspect", "x:1"}, "Error: No such image: x:1\n"},
		{true, []string{"image", "inspect", "x:1"}, "Error response from daemon: no such image: x:1: No such image: x:1\n"},
		{false, []string{"network", "inspect", "x"}, "Error: No such network: x\n"},
		{true, []string{"network", "inspect", "x"}, "Error response from daemon: network x not found\n"},
		{false, []string{"rm", "x"}, "Error: No such container: x\n"},
	} {
		d := tasktest.NewDocker()
		d.Newer = tc.newer
		o := d.CLI(tc.args...)
		if o.ExitCode != 1 || string(o.Stderr) != tc.want {
			t.Errorf("newer=%v %q: exit %d, stderr %q; want 1, %q", tc.newer, tc.args, o.ExitCode, o.Stderr, tc.want)
		}
		if strings.Contains(tc.args[len(tc.args)-2], "inspect") && strings.TrimSpace(string(o.Stdout)) != "[]" {
			t.Errorf("%q: stdout %q, want []", tc.args, o.Stdout)
		}
	}
	d := tasktest.NewDocker()
	if o := d.CLI("rm", "-f", "-v", "x"); o.ExitCode != 0 {
		t.Errorf("docker rm -f of a missing container: exit %d, want 0 as docker 20.10", o.ExitCode)
	}
}

func TestFakeInspectMixesKindsInArgumentOrder(t *testing.T) {
	d := tasktest.NewDocker()
	d.AddImage("dindops-probe:1", probeImage)
	d.MustCLI(t, "create", "--name", "c1", "dindops-probe:1")
	o := d.CLI("inspect", "c1", "nosuch:1", "dindops-probe:1")
	if o.ExitCode != 1 || string(o.Stderr) != "Error: No such object: nosuch:1\n" {
		t.Fatalf("exit %d, stderr %q", o.ExitCode, o.Stderr)
	}
	var objs []map[string]any
	if err := json.Unmarshal(o.Stdout, &objs); err != nil || len(objs) != 2 {
		t.Fatalf("stdout: %v %s", err, o.Stdout)
	}
	if objs[0]["Name"] != "/c1" || objs[1]["RepoTags"] == nil {
		t.Errorf("want the container then the image, got %v / %v", objs[0]["Name"], objs[1]["Id"])
	}
}

func TestFakeRefusesToChangeAFrozenHost(t *testing.T) {
	h := tasktest.New()
	d := tasktest.InstallDocker(h)
	d.AddImage("dindops-probe:1", probeImage)
	h.Freeze()
	for _, args := range [][]string{
		{"docker", "network", "create", "n1"},
		{"docker", "run", "-d", "--name", "c1", "dindops-probe:1"},
		{"docker", "create", "--name", "c1", "dindops-probe:1"},
		{"docker", "pull", "dindops-probe:1"},
		{"docker", "rm", "-f", "x"},
	} {
		o, _ := h.Run(context.Background(), tasks.Cmd{Args: args})
		if o.ExitCode != 99 {
			t.Errorf("%q on a frozen host: exit %d", args, o.ExitCode)
		}
	}
	if len(d.ContainerNames()) != 0 || slices.Contains(d.NetworkNames(), "n1") {
		t.Error("frozen host changed")
	}
	if o, _ := h.Run(context.Background(), tasks.Cmd{Args: []string{"docker", "network", "inspect", "bridge"}}); o.ExitCode != 0 {
		t.Errorf("reading a frozen host failed: %s", o.Stderr)
	}
}

func TestFakeConflictAndEnvFile(t *testing.T) {
	h := tasktest.New()
	d := tasktest.InstallDocker(h)
	d.AddImage("dindops-probe:1", probeImage)
	ctx := context.Background()
	o, _ := h.Run(ctx, tasks.Cmd{Args: []string{"docker", "create", "--name=c1", "--env-file=/dev/stdin", "dindops-probe:1"},
		Stdin: []byte("# comment\n\n  A=1\nEMPTY=\nSPACES=  x  \nUNSET\n")})
	if o.ExitCode != 0 {
		t.Fatalf("create: %s", o.Stderr)
	}
	want := []string{"A=1", "EMPTY=", "SPACES=  x  ", "IMGVAR=fromimage", "PATH=/bin"}
	if got := d.Env("c1"); !reflect.DeepEqual(got, want) {
		t.Errorf("env = %q, want %q", got, want)
	}
	o, _ = h.Run(ctx, tasks.Cmd{Args: []string{"docker", "run", "-d", "--name", "c1", "dindops-probe:1"}})
	if o.ExitCode != 125 || !strings.Contains(string(o.Stderr), `The container name "/c1" is already in use`) {
		t.Errorf("conflict: exit %d, %s", o.ExitCode, o.Stderr)
	}
	o = d.CLI("create", "--bogus", "x", "dindops-probe:1")
	if o.ExitCode != 125 || !strings.HasPrefix(string(o.Stderr), "unknown flag: --bogus") {
		t.Errorf("unknown flag: exit %d, %s", o.ExitCode, o.Stderr)
	}
}

func TestFakeVolumesAndNetworks(t *testing.T) {
	d := tasktest.NewDocker()
	d.AddImage("dindops-probe:1", probeImage)
	d.MustCLI(t, "network", "create", "n1")
	d.MustCLI(t, "run", "-d", "--name", "c1", "--network", "n1", "-v", "named:/n", "-v", "/anon", "dindops-probe:1")
	if got := d.Volumes(); len(got) != 3 || !slices.Contains(got, "named") { // named, /anon, the image's /data
		t.Fatalf("volumes = %q", got)
	}
	o := d.CLI("network", "rm", "n1")
	if o.ExitCode != 1 || !strings.Contains(string(o.Stderr), "has active endpoints") {
		t.Errorf("network rm with a running container: exit %d, %s", o.ExitCode, o.Stderr)
	}
	// A stopped container does not keep its network from being removed,
	// and then cannot start: it remembers the old network's ID.
	d.MustCLI(t, "stop", "c1")
	d.MustCLI(t, "network", "rm", "n1")
	d.MustCLI(t, "network", "create", "n1")
	o = d.CLI("start", "c1")
	if o.ExitCode != 1 || !strings.Contains(string(o.Stderr), "not found") || !strings.Contains(string(o.Stderr), "Error: failed to start containers: c1") {
		t.Errorf("start after the network's recreation: exit %d, %s", o.ExitCode, o.Stderr)
	}
	out := d.MustCLI(t, "ps", "-a", "--no-trunc", "--filter", "network=n1", "--format", "{{.ID}}\t{{.Names}}")
	if out != d.ContainerID("c1")+"\tc1\n" {
		t.Errorf("ps = %q", out)
	}
	d.MustCLI(t, "rm", "-f", "-v", "c1")
	if got := d.Volumes(); !reflect.DeepEqual(got, []string{"named"}) {
		t.Errorf("after rm -v: volumes = %q, want only the named one", got)
	}
}

func TestFakeCapsNewer(t *testing.T) {
	d := tasktest.NewDocker()
	d.Newer = true
	d.AddImage("dindops-probe:1", probeImage)
	d.MustCLI(t, "create", "--name", "c1", "--cap-add", "all", "--cap-add", "net_admin", "--cap-drop", "CAP_MKNOD", "dindops-probe:1")
	c := readJSON(t, []byte(d.MustCLI(t, "container", "inspect", "c1")))
	if got := fmt.Sprint(get(c, "HostConfig.CapAdd"), get(c, "HostConfig.CapDrop")); got != "[ALL CAP_NET_ADMIN] [CAP_MKNOD]" {
		t.Errorf("caps = %s", got)
	}
	d.MustCLI(t, "network", "create", "n1")
	n := readJSON(t, []byte(d.MustCLI(t, "network", "inspect", "n1")))
	if get(n, "Options") == nil || get(n, "Options").(map[string]any)["com.docker.network.enable_ipv4"] != "true" {
		t.Errorf("newer network options = %v", get(n, "Options"))
	}
}

// States and IPAM as a real Docker 20.10.24 engine showed them (docker
// inspect of a container of restart policy always whose process exits 3,
// between two restarts, then after docker stop; of a container whose start
// failed; docker network inspect after create --subnet with and without
// --gateway, and the CLI's refusals).
func TestFakeStatesAndIPAMMatchRealDocker2010(t *testing.T) {
	d := tasktest.NewDocker()
	d.AddImage("dindops-probe:1", probeImage)
	d.MustCLI(t, "run", "-d", "--name", "c1", "--restart", "always", "dindops-probe:1")
	state := func() map[string]any {
		c := readJSON(t, []byte(d.MustCLI(t, "container", "inspect", "c1")))
		s := get(c, "State").(map[string]any)
		s["RestartCount"] = c["RestartCount"]
		return s
	}
	for i := 0; i < 9; i++ {
		d.CrashLoop("c1", 3)
	}
	want := map[string]any{"Status": "restarting", "Running": true, "Paused": false, "Restarting": true, "OOMKilled": false,
		"Dead": false, "Pid": float64(0), "ExitCode": float64(3), "Error": "", "RestartCount": float64(9)}
	got := state()
	for k, v := range want {
		if !reflect.DeepEqual(got[k], v) {
			t.Errorf("restarting: State.%s = %v, want %v", k, got[k], v)
		}
	}
	d.MustCLI(t, "stop", "c1")
	want["Status"], want["Running"], want["Restarting"] = "exited", false, false
	got = state()
	for k, v := range want {
		if !reflect.DeepEqual(got[k], v) {
			t.Errorf("stopped: State.%s = %v, want %v", k, got[k], v)
		}
	}

	d.FailStart("c2", "failed to create shim task: OCI runtime create failed: boom: unknown")
	d.MustCLI(t, "create", "--name", "c2", "dindops-probe:1")
	if o := d.CLI("start", "c2"); o.ExitCode != 1 {
		t.Fatalf("start: exit %d", o.ExitCode)
	}
	c2 := readJSON(t, []byte(d.MustCLI(t, "container", "inspect", "c2")))
	if get(c2, "State.Status") != "created" || get(c2, "State.Error") != "failed to create shim task: OCI runtime create failed: boom: unknown" {
		t.Errorf("failed start: State = %v", get(c2, "State"))
	}

	d.MustCLI(t, "network", "create", "--internal", "--attachable", "--subnet", "10.231.7.0/24", "--gateway", "10.231.7.254", "n1")
	d.MustCLI(t, "network", "create", "--subnet", "10.231.8.5/24", "n2")
	for name, want := range map[string]string{
		"n1": `{"Config":[{"Gateway":"10.231.7.254","Subnet":"10.231.7.0/24"}],"Driver":"default","Options":{}} true true`,
		"n2": `{"Config":[{"Subnet":"10.231.8.5/24"}],"Driver":"default","Options":{}} false false`,
	} {
		n := readJSON(t, []byte(d.MustCLI(t, "network", "inspect", name)))
		b, _ := json.Marshal(n["IPAM"])
		if got := fmt.Sprintf("%s %v %v", b, n["Internal"], n["Attachable"]); got != want {
			t.Errorf("%s: %s, want %s", name, got, want)
		}
	}
	for args, msg := range map[string]string{
		"--gateway 10.231.9.1 n3":                          "every ip-range or gateway must have a corresponding subnet\n",
		"--subnet 10.231.10.0/24 --gateway 10.231.11.1 n3": "no matching subnet for gateway 10.231.11.1\n",
		"--subnet 10.231.10.0 n3":                          "Error response from daemon: Invalid subnet 10.231.10.0 : invalid CIDR address: 10.231.10.0\n",
	} {
		o := d.CLI(append([]string{"network", "create"}, strings.Fields(args)...)...)
		if o.ExitCode != 1 || string(o.Stderr) != msg {
			t.Errorf("network create %s: exit %d, %q; want 1, %q", args, o.ExitCode, o.Stderr, msg)
		}
	}
}
