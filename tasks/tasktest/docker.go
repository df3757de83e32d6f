package tasktest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode"

	"github.com/dindops/dindops/tasks"
)

// Docker is an in-memory docker engine for unit tests: images, containers,
// networks and volumes. Installed on a Host (Install), it answers the docker
// CLI commands the docker tasks run, with JSON shaped like Docker 20.10's
// `docker inspect` (the fields tasks read, in docker's order) and docker's
// error messages and exit codes. It refuses to change anything while the
// host is frozen (exit 99), so a Plan that would mutate fails.
//
// Supported: inspect, container inspect, image inspect, network inspect,
// create, run (always detached), start, stop, kill (--signal), unpause, rm,
// pull, ps (with --format), info (--format {{.LiveRestoreEnabled}}),
// network create|rm|connect|disconnect. Anything else exits 125.
type Docker struct {
	// Newer makes the engine and CLI behave like Docker 23 and later where
	// the difference shows to tasks: capabilities are stored as
	// "CAP_NET_ADMIN" (20.10 stores them as given), new bridge networks get
	// the com.docker.network.enable_ipv4/enable_ipv6 options, and "not
	// found" errors carry the daemon's words ("Error response from daemon:
	// No such container: x" instead of "Error: No such container: x").
	Newer bool
	// LiveRestore is what `docker info` reports as LiveRestoreEnabled.
	LiveRestore bool

	mu         sync.Mutex
	images     map[string]*fakeImage     // by ID
	tags       map[string]string         // normalised reference → image ID
	registry   map[string]DockerImage    // normalised reference → what pull gets
	containers map[string]*fakeContainer // by name
	networks   map[string]*fakeNetwork   // by name
	volumes    map[string]*fakeVolume    // by name
	startErr   map[string]string         // container name → why start fails
	seq        int
}

// DockerImage is an image's configuration as docker image inspect shows it.
type DockerImage struct {
	// ID is "sha256:" and 64 hex digits; derived from the rest when empty.
	ID         string
	Env        []string
	Cmd        []string
	Entrypoint []string
	Labels     map[string]string
	Volumes    []string
}

type fakeImage struct {
	DockerImage
	seq int
}

type fakeContainer struct {
	doc  containerDoc
	seq  int
	anon []string // volumes created for this container, removed by rm -v
	// signals are those docker kill sent, in order.
	signals []string
	// drainFor is how many inspections a container that got a signal
	// other than SIGKILL goes on running (Drains); draining says it got
	// one. Negative: it never exits by itself.
	drainFor int
	draining bool
}

type fakeNetwork struct {
	doc networkDoc
}

type fakeVolume struct {
	name string
	anon bool
}

// NewDocker returns an empty engine with docker's predefined networks
// bridge, host and none.
func NewDocker() *Docker {
	d := &Docker{
		images: map[string]*fakeImage{}, tags: map[string]string{}, registry: map[string]DockerImage{},
		containers: map[string]*fakeContainer{}, networks: map[string]*fakeNetwork{},
		volumes: map[string]*fakeVolume{}, startErr: map[string]string{},
	}
	for _, n := range []struct{ name, driver string }{{"bridge", "bridge"}, {"host", "host"}, {"none", "null"}} {
		d.networks[n.name] = &fakeNetwork{doc: d.newNetworkDoc(n.name, n.driver)}
	}
	d.networks["bridge"].doc.Options = map[string]string{
		"com.docker.network.bridge.default_bridge":       "true",
		"com.docker.network.bridge.enable_icc":           "true",
		"com.docker.network.bridge.enable_ip_masquerade": "true",
		"com.docker.network.bridge.host_binding_ipv4":    "0.0.0.0",
		"com.docker.network.bridge.name":                 "docker0",
		"com.docker.network.driver.mtu":                  "1500",
	}
	return d
}

// InstallDocker installs a new engine on h as the program "docker".
func InstallDocker(h *Host) *Docker {
	d := NewDocker()
	d.Install(h)
	return d
}

// Install makes d answer the program "docker" on h.
func (d *Docker) Install(h *Host) {
	h.Handle("docker", func(h *Host, args []string, stdin []byte) tasks.Output {
		return d.exec(h, args[1:], stdin)
	})
}

// AddImage puts an image on the host under ref and returns its ID. A ref
// already used moves to the new image (as a pull of a moved tag does).
func (d *Docker) AddImage(ref string, img DockerImage) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.addImageLocked(ref, img)
}

// AddRegistryImage makes ref pullable: docker pull ref gets img.
func (d *Docker) AddRegistryImage(ref string, img DockerImage) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.registry[normRef(ref)] = img
}

// RemoveImage untags ref on the host (the image stays while containers use it).
func (d *Docker) RemoveImage(ref string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.tags, normRef(ref))
}

// FailStart makes docker start of the named container fail with msg.
func (d *Docker) FailStart(name, msg string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.startErr[name] = msg
}

// CLI runs a docker command (without the leading "docker") on the engine,
// as set-up for a test; it ignores whether a host is frozen.
func (d *Docker) CLI(args ...string) tasks.Output { return d.exec(nil, args, nil) }

// MustCLI is CLI that fails the test on a non-zero exit.
func (d *Docker) MustCLI(t testing.TB, args ...string) string {
	t.Helper()
	out := d.CLI(args...)
	if out.ExitCode != 0 {
		t.Fatalf("docker %s: exit %d: %s", strings.Join(args, " "), out.ExitCode, out.Stderr)
	}
	return string(out.Stdout)
}

// ContainerNames lists the containers, sorted.
func (d *Docker) ContainerNames() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return sortedNames(d.containers)
}

// ContainerID returns a container's ID, or "" when there is none.
func (d *Docker) ContainerID(name string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.containers[name]; c != nil {
		return c.doc.ID
	}
	return ""
}

// Running reports whether the named container runs.
func (d *Docker) Running(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.containers[name]
	return c != nil && c.doc.State.Running
}

// Env returns the container's Config.Env.
func (d *Docker) Env(name string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.containers[name]; c != nil {
		return append([]string(nil), c.doc.Config.Env...)
	}
	return nil
}

// Volumes lists the volumes, sorted; anonymous ones have 64-hex names.
func (d *Docker) Volumes() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return sortedNames(d.volumes)
}

// NetworkNames lists the networks, sorted (bridge, host, none included).
func (d *Docker) NetworkNames() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return sortedNames(d.networks)
}

// NetworkID returns a network's ID, or "" when there is none.
func (d *Docker) NetworkID(name string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n := d.networks[name]; n != nil {
		return n.doc.ID
	}
	return ""
}

// Endpoints returns the networks the container is attached to, each with
// its aliases (docker's automatic short-ID alias included).
func (d *Docker) Endpoints(name string) map[string][]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string][]string{}
	if c := d.containers[name]; c != nil {
		for n, ep := range c.doc.NetworkSettings.Networks {
			out[n] = append([]string(nil), ep.Aliases...)
		}
	}
	return out
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// The JSON documents, shaped like Docker 20.10's inspect output.

type containerDoc struct {
	ID              string             `json:"Id"`
	Created         string             `json:"Created"`
	Path            string             `json:"Path"`
	Args            []string           `json:"Args"`
	State           stateDoc           `json:"State"`
	Image           string             `json:"Image"`
	Name            string             `json:"Name"`
	RestartCount    int                `json:"RestartCount"`
	Driver          string             `json:"Driver"`
	Platform        string             `json:"Platform"`
	HostConfig      hostConfigDoc      `json:"HostConfig"`
	Mounts          []mountDoc         `json:"Mounts"`
	Config          containerConfigDoc `json:"Config"`
	NetworkSettings networkSettingsDoc `json:"NetworkSettings"`
}

type stateDoc struct {
	Status     string `json:"Status"`
	Running    bool   `json:"Running"`
	Paused     bool   `json:"Paused"`
	Restarting bool   `json:"Restarting"`
	OOMKilled  bool   `json:"OOMKilled"`
	Dead       bool   `json:"Dead"`
	Pid        int    `json:"Pid"`
	ExitCode   int    `json:"ExitCode"`
	Error      string `json:"Error"`
	StartedAt  string `json:"StartedAt"`
	FinishedAt string `json:"FinishedAt"`
}

type restartPolicyDoc struct {
	Name              string `json:"Name"`
	MaximumRetryCount int    `json:"MaximumRetryCount"`
}

type hostConfigDoc struct {
	Binds         []string         `json:"Binds"`
	NetworkMode   string           `json:"NetworkMode"`
	RestartPolicy restartPolicyDoc `json:"RestartPolicy"`
	AutoRemove    bool             `json:"AutoRemove"`
	VolumesFrom   []string         `json:"VolumesFrom"`
	CapAdd        []string         `json:"CapAdd"`
	CapDrop       []string         `json:"CapDrop"`
	Privileged    bool             `json:"Privileged"`
	SecurityOpt   []string         `json:"SecurityOpt"`
}

type mountDoc struct {
	Type        string `json:"Type"`
	Name        string `json:"Name,omitempty"`
	Source      string `json:"Source"`
	Destination string `json:"Destination"`
	Driver      string `json:"Driver,omitempty"`
	Mode        string `json:"Mode"`
	RW          bool   `json:"RW"`
	Propagation string `json:"Propagation"`
}

type containerConfigDoc struct {
	Hostname    string              `json:"Hostname"`
	Env         []string            `json:"Env"`
	Cmd         []string            `json:"Cmd"`
	Image       string              `json:"Image"`
	Volumes     map[string]struct{} `json:"Volumes"`
	WorkingDir  string              `json:"WorkingDir"`
	Entrypoint  []string            `json:"Entrypoint"`
	Labels      map[string]string   `json:"Labels"`
	StopSignal  string              `json:"StopSignal,omitempty"`
	StopTimeout *int                `json:"StopTimeout,omitempty"`
}

type networkSettingsDoc struct {
	Bridge    string                  `json:"Bridge"`
	SandboxID string                  `json:"SandboxID"`
	Networks  map[string]*endpointDoc `json:"Networks"`
}

type endpointDoc struct {
	IPAMConfig  any      `json:"IPAMConfig"`
	Links       []string `json:"Links"`
	Aliases     []string `json:"Aliases"`
	NetworkID   string   `json:"NetworkID"`
	EndpointID  string   `json:"EndpointID"`
	Gateway     string   `json:"Gateway"`
	IPAddress   string   `json:"IPAddress"`
	IPPrefixLen int      `json:"IPPrefixLen"`
	MacAddress  string   `json:"MacAddress"`
	DriverOpts  any      `json:"DriverOpts"`
}

type imageDoc struct {
	ID            string         `json:"Id"`
	RepoTags      []string       `json:"RepoTags"`
	RepoDigests   []string       `json:"RepoDigests"`
	Parent        string         `json:"Parent"`
	Comment       string         `json:"Comment"`
	Created       string         `json:"Created"`
	DockerVersion string         `json:"DockerVersion"`
	Author        string         `json:"Author"`
	Config        imageConfigDoc `json:"Config"`
	Architecture  string         `json:"Architecture"`
	Os            string         `json:"Os"`
	Size          int64          `json:"Size"`
	RootFS        struct {
		Type   string   `json:"Type"`
		Layers []string `json:"Layers"`
	} `json:"RootFS"`
}

type imageConfigDoc struct {
	Env        []string            `json:"Env"`
	Cmd        []string            `json:"Cmd"`
	Image      string              `json:"Image"`
	Volumes    map[string]struct{} `json:"Volumes"`
	WorkingDir string              `json:"WorkingDir"`
	Entrypoint []string            `json:"Entrypoint"`
	Labels     map[string]string   `json:"Labels"`
}

type networkDoc struct {
	Name       string `json:"Name"`
	ID         string `json:"Id"`
	Created    string `json:"Created"`
	Scope      string `json:"Scope"`
	Driver     string `json:"Driver"`
	EnableIPv6 bool   `json:"EnableIPv6"`
	IPAM       struct {
		Driver  string            `json:"Driver"`
		Options map[string]string `json:"Options"`
		Config  []ipamConfigDoc   `json:"Config"`
	} `json:"IPAM"`
	Internal   bool                         `json:"Internal"`
	Attachable bool                         `json:"Attachable"`
	Ingress    bool                         `json:"Ingress"`
	ConfigOnly bool                         `json:"ConfigOnly"`
	Containers map[string]networkContainers `json:"Containers"`
	Options    map[string]string            `json:"Options"`
	Labels     map[string]string            `json:"Labels"`
}

// ipamConfigDoc is one IPAM pool. Docker leaves out what is not set: a
// network created with --subnet and no --gateway shows no Gateway.
type ipamConfigDoc struct {
	Subnet  string `json:"Subnet,omitempty"`
	Gateway string `json:"Gateway,omitempty"`
}

type networkContainers struct {
	Name        string `json:"Name"`
	EndpointID  string `json:"EndpointID"`
	MacAddress  string `json:"MacAddress"`
	IPv4Address string `json:"IPv4Address"`
	IPv6Address string `json:"IPv6Address"`
}

type volumeDoc struct {
	CreatedAt  string            `json:"CreatedAt"`
	Driver     string            `json:"Driver"`
	Labels     map[string]string `json:"Labels"`
	Mountpoint string            `json:"Mountpoint"`
	Name       string            `json:"Name"`
	Options    map[string]string `json:"Options"`
	Scope      string            `json:"Scope"`
}

// hexID is a deterministic 64-hex-digit ID.
func hexID(parts ...any) string {
	sum := sha256.Sum256([]byte(fmt.Sprint(parts...)))
	return hex.EncodeToString(sum[:])
}

const created = "2024-01-01T00:00:00.000000000Z"

func (d *Docker) newNetworkDoc(name, driver string) networkDoc {
	d.seq++
	n := networkDoc{Name: name, ID: hexID("network", d.seq, name), Created: created, Scope: "local", Driver: driver,
		Containers: map[string]networkContainers{}, Options: map[string]string{}, Labels: map[string]string{}}
	n.IPAM.Driver = "default"
	n.IPAM.Options = map[string]string{}
	if driver == "bridge" {
		n.IPAM.Config = append(n.IPAM.Config, ipamConfigDoc{fmt.Sprintf("172.%d.0.0/16", 16+d.seq%200), fmt.Sprintf("172.%d.0.1", 16+d.seq%200)})
	}
	return n
}

func (d *Docker) addImageLocked(ref string, img DockerImage) string {
	if img.ID == "" {
		b, _ := json.Marshal(img)
		img.ID = "sha256:" + hexID("image", string(b))
	}
	d.seq++
	if old, ok := d.images[img.ID]; ok {
		old.DockerImage = img
	} else {
		d.images[img.ID] = &fakeImage{DockerImage: img, seq: d.seq}
	}
	d.tags[normRef(ref)] = img.ID
	return img.ID
}

// normRef is a reference as docker displays it: without docker.io/ and
// library/, with :latest when it has neither tag nor digest.
func normRef(ref string) string {
	name, digest, _ := strings.Cut(ref, "@")
	tag := ""
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name, tag = name[:i], name[i+1:]
	}
	name = strings.TrimPrefix(strings.TrimPrefix(name, "docker.io/"), "index.docker.io/")
	if strings.HasPrefix(name, "library/") && strings.Count(name, "/") == 1 {
		name = strings.TrimPrefix(name, "library/")
	}
	if tag == "" && digest == "" {
		tag = "latest"
	}
	if tag != "" {
		name += ":" + tag
	}
	if digest != "" {
		name += "@" + digest
	}
	return name
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// Lookups, as the daemon does them: full ID, name, then ID prefix.

func (d *Docker) findContainer(ref string) *fakeContainer {
	if c := d.containers[strings.TrimPrefix(ref, "/")]; c != nil {
		return c
	}
	if !isHex(ref) {
		return nil
	}
	var found *fakeContainer
	for _, c := range d.containers {
		if strings.HasPrefix(c.doc.ID, ref) {
			if found != nil {
				return nil // ambiguous
			}
			found = c
		}
	}
	return found
}

func (d *Docker) findImage(ref string) *fakeImage {
	if id, ok := d.tags[normRef(ref)]; ok {
		return d.images[id]
	}
	id := strings.TrimPrefix(ref, "sha256:")
	if !isHex(id) {
		return nil
	}
	for _, img := range d.images {
		if strings.HasPrefix(strings.TrimPrefix(img.ID, "sha256:"), id) {
			return img
		}
	}
	return nil
}

func (d *Docker) findNetwork(ref string) *fakeNetwork {
	for _, n := range d.networks {
		if n.doc.ID == ref {
			return n
		}
	}
	if n := d.networks[ref]; n != nil {
		return n
	}
	if !isHex(ref) {
		return nil
	}
	for _, n := range d.networks {
		if strings.HasPrefix(n.doc.ID, ref) {
			return n
		}
	}
	return nil
}

func (d *Docker) imageDocLocked(img *fakeImage) imageDoc {
	doc := imageDoc{ID: img.ID, RepoTags: []string{}, RepoDigests: []string{}, Created: created,
		DockerVersion: "20.10.24+dfsg1", Architecture: "amd64", Os: "linux", Size: 1 << 20}
	for ref, id := range d.tags {
		if id == img.ID {
			doc.RepoTags = append(doc.RepoTags, ref)
		}
	}
	sort.Strings(doc.RepoTags)
	doc.Config = imageConfigDoc{Env: img.Env, Cmd: img.Cmd, Entrypoint: img.Entrypoint, Labels: img.Labels}
	if len(img.Volumes) > 0 {
		doc.Config.Volumes = map[string]struct{}{}
		for _, v := range img.Volumes {
			doc.Config.Volumes[v] = struct{}{}
		}
	}
	doc.RootFS.Type = "layers"
	doc.RootFS.Layers = []string{"sha256:" + hexID("layer", img.ID)}
	return doc
}

// networkDocLocked is a network with its running containers filled in:
// docker lists only running containers' endpoints.
func (d *Docker) networkDocLocked(n *fakeNetwork) networkDoc {
	doc := n.doc
	doc.Containers = map[string]networkContainers{}
	for _, c := range d.containers {
		ep := c.doc.NetworkSettings.Networks[n.doc.Name]
		if ep != nil && c.doc.State.Running && ep.NetworkID == n.doc.ID {
			doc.Containers[c.doc.ID] = networkContainers{Name: c.doc.Name[1:], EndpointID: ep.EndpointID,
				MacAddress: ep.MacAddress, IPv4Address: ep.IPAddress + "/16"}
		}
	}
	return doc
}

func volumeDocOf(v *fakeVolume) volumeDoc {
	return volumeDoc{CreatedAt: created, Driver: "local", Mountpoint: "/var/lib/docker/volumes/" + v.name + "/_data",
		Name: v.name, Options: nil, Scope: "local"}
}

// out builds an Output.
func out(code int, stdout, stderr string) tasks.Output {
	return tasks.Output{ExitCode: code, Stdout: []byte(stdout), Stderr: []byte(stderr)}
}

func jsonArray(objs []any) string {
	if objs == nil {
		objs = []any{}
	}
	b, err := json.MarshalIndent(objs, "", "    ")
	if err != nil {
		panic(err)
	}
	return string(b) + "\n"
}

// mutating lists the commands that change the engine.
var mutating = map[string]bool{"create": true, "run": true, "start": true, "stop": true, "kill": true, "unpause": true,
	"rm": true, "pull": true, "network create": true, "network rm": true, "network connect": true,
	"network disconnect": true}

func (d *Docker) exec(h *Host, args []string, stdin []byte) tasks.Output {
	if len(args) == 0 {
		return out(0, "Usage:  docker [OPTIONS] COMMAND\n", "")
	}
	verb := args[0]
	rest := args[1:]
	if (verb == "network" || verb == "container" || verb == "image") && len(rest) > 0 {
		verb += " " + rest[0]
		rest = rest[1:]
	}
	switch verb {
	case "container create":
		verb = "create"
	case "container run":
		verb = "run"
	case "container start":
		verb = "start"
	case "container rm":
		verb = "rm"
	}
	if mutating[verb] && h != nil && h.Frozen() {
		return out(99, "", "fake docker: "+verb+" on a frozen host (during plan?)\n")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch verb {
	case "inspect":
		return d.inspect(rest)
	case "container inspect":
		return d.typedInspect(rest, "container")
	case "image inspect":
		return d.typedInspect(rest, "image")
	case "network inspect":
		return d.typedInspect(rest, "network")
	case "create", "run":
		return d.create(h, verb, rest, stdin)
	case "start":
		return d.start(rest)
	case "stop":
		return d.stop(rest)
	case "kill":
		return d.kill(rest)
	case "info":
		return d.info(rest)
	case "unpause":
		return d.unpause(rest)
	case "rm":
		return d.rm(rest)
	case "pull":
		return d.pull(rest)
	case "ps":
		return d.ps(rest)
	case "network create":
		return d.networkCreate(rest)
	case "network rm":
		return d.networkRm(rest)
	case "network connect":
		return d.networkConnect(rest)
	case "network disconnect":
		return d.networkDisconnect(rest)
	}
	return out(125, "", fmt.Sprintf("docker: '%s' is not a docker command (fake).\nSee 'docker --help'\n", verb))
}

// flagSet is a tiny pflag: which flags take a value, and short aliases.
type flagSet struct {
	cmd    string
	valued map[string]bool // long name → takes a value
	short  map[byte]string // short letter → long name
	// interspersed: flags may follow positional arguments (false for run
	// and create, where everything after the image is the command).
	interspersed bool
}

func (fs flagSet) parse(args []string) (map[string][]string, []string, *tasks.Output) {
	flags := map[string][]string{}
	var pos []string
	bad := func(msg string) (map[string][]string, []string, *tasks.Output) {
		o := out(125, "", fmt.Sprintf("%s\nSee 'docker %s --help'.\n", msg, fs.cmd))
		return nil, nil, &o
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return flags, append(pos, args[i+1:]...), nil
		case strings.HasPrefix(a, "--"):
			name, val, hasVal := strings.Cut(a[2:], "=")
			valued, known := fs.valued[name]
			if !known {
				return bad("unknown flag: --" + name)
			}
			if valued && !hasVal {
				if i+1 >= len(args) {
					return bad("flag needs an argument: --" + name)
				}
				i++
				val = args[i]
			}
			if !valued && !hasVal {
				val = "true"
			}
			flags[name] = append(flags[name], val)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for j := 1; j < len(a); j++ {
				name, ok := fs.short[a[j]]
				if !ok {
					return bad(fmt.Sprintf("unknown shorthand flag: '%c' in %s", a[j], a))
				}
				if !fs.valued[name] {
					flags[name] = append(flags[name], "true")
					continue
				}
				val := strings.TrimPrefix(a[j+1:], "=")
				if val == "" {
					if i+1 >= len(args) {
						return bad(fmt.Sprintf("flag needs an argument: '%c' in %s", a[j], a))
					}
					i++
					val = args[i]
				}
				flags[name] = append(flags[name], val)
				break
			}
		default:
			if !fs.interspersed {
				return flags, append(pos, args[i:]...), nil
			}
			pos = append(pos, a)
		}
	}
	return flags, pos, nil
}

func last(flags map[string][]string, name string) string {
	if v := flags[name]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

func isTrue(flags map[string][]string, name string) bool {
	v := last(flags, name)
	return v != "" && v != "false"
}

// notFound is the "no such" line of the CLI of d's version.
func (d *Docker) notFound(kind, name string) string {
	if !d.Newer {
		return fmt.Sprintf("Error: No such %s: %s\n", kind, name)
	}
	switch kind {
	case "network":
		return fmt.Sprintf("Error response from daemon: network %s not found\n", name)
	case "image":
		return fmt.Sprintf("Error response from daemon: no such image: %s: No such image: %s\n", name, name)
	case "object":
		return fmt.Sprintf("Error: No such object: %s\n", name)
	}
	return fmt.Sprintf("Error response from daemon: No such %s: %s\n", kind, name)
}

func (d *Docker) inspect(args []string) tasks.Output {
	flags, names, bad := flagSet{cmd: "inspect", valued: map[string]bool{"type": true, "format": true, "size": false},
		short: map[byte]string{'f': "format", 's': "size"}, interspersed: true}.parse(args)
	if bad != nil {
		return *bad
	}
	if last(flags, "format") != "" {
		return out(125, "", "fake docker: inspect --format is not supported\n")
	}
	if t := last(flags, "type"); t != "" {
		return d.typedInspect(names, t)
	}
	if len(names) == 0 {
		return out(125, "", "\"docker inspect\" requires at least 1 argument.\n")
	}
	var objs []any
	var stderr strings.Builder
	for _, n := range names {
		if c := d.findContainer(n); c != nil {
			d.drainStep(c)
			objs = append(objs, c.doc)
		} else if img := d.findImage(n); img != nil {
			objs = append(objs, d.imageDocLocked(img))
		} else if nw := d.findNetwork(n); nw != nil {
			objs = append(objs, d.networkDocLocked(nw))
		} else if v := d.volumes[n]; v != nil {
			objs = append(objs, volumeDocOf(v))
		} else {
			stderr.WriteString(d.notFound("object", n))
		}
	}
	code := 0
	if stderr.Len() > 0 {
		code = 1
	}
	return out(code, jsonArray(objs), stderr.String())
}

func (d *Docker) typedInspect(args []string, kind string) tasks.Output {
	_, names, bad := flagSet{cmd: kind + " inspect", valued: map[string]bool{"format": true, "size": false},
		short: map[byte]string{'f': "format", 's': "size"}, interspersed: true}.parse(args)
	if bad != nil {
		return *bad
	}
	var objs []any
	var stderr strings.Builder
	for _, n := range names {
		var obj any
		switch kind {
		case "container":
			if c := d.findContainer(n); c != nil {
				d.drainStep(c)
				obj = c.doc
			}
		case "image":
			if img := d.findImage(n); img != nil {
				obj = d.imageDocLocked(img)
			}
		case "network":
			if nw := d.findNetwork(n); nw != nil {
				obj = d.networkDocLocked(nw)
			}
		case "volume":
			if v := d.volumes[n]; v != nil {
				obj = volumeDocOf(v)
			}
		default:
			return out(125, "", fmt.Sprintf("%q is not a valid value for --type\n", kind))
		}
		if obj == nil {
			stderr.WriteString(d.notFound(kind, n))
			continue
		}
		objs = append(objs, obj)
	}
	code := 0
	if stderr.Len() > 0 {
		code = 1
	}
	return out(code, jsonArray(objs), stderr.String())
}

var runFlags = flagSet{
	valued: map[string]bool{
		"detach": false, "name": true, "env": true, "env-file": true, "network": true, "net": true,
		"network-alias": true, "restart": true, "privileged": false, "cap-add": true, "cap-drop": true,
		"security-opt": true, "volume": true, "label": true, "stop-timeout": true, "entrypoint": true,
		"pull": true, "rm": false, "interactive": false, "tty": false, "hostname": true, "user": true,
		"workdir": true, "stop-signal": true,
	},
	short: map[byte]string{'d': "detach", 'e': "env", 'v': "volume", 'l': "label", 'i': "interactive",
		't': "tty", 'h': "hostname", 'u': "user", 'w': "workdir"},
}

var restartPolicies = map[string]bool{"no": true, "always": true, "unless-stopped": true, "on-failure": true}

// create is docker create and docker run (which is create, then start).
func (d *Docker) create(h *Host, verb string, args []string, stdin []byte) tasks.Output {
	fs := runFlags
	fs.cmd = verb
	flags, pos, bad := fs.parse(args)
	if bad != nil {
		return *bad
	}
	// docker run reports daemon errors as "docker: ..." with exit 125.
	fail := func(msg string) tasks.Output {
		if verb == "run" {
			return out(125, "", "docker: "+msg+"\nSee 'docker run --help'.\n")
		}
		return out(1, "", msg+"\n")
	}
	if len(pos) == 0 {
		return out(125, "", fmt.Sprintf("\"docker %s\" requires at least 1 argument.\n", verb))
	}
	ref, cmd := pos[0], pos[1:]
	name := last(flags, "name")
	if name != "" && !validName(name) {
		return fail(fmt.Sprintf("Error response from daemon: Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed.", name))
	}

	// Environment: --env-file lines first, then -e, as the CLI reads them.
	var env []string
	for _, f := range flags["env-file"] {
		var content []byte
		switch {
		case f == "/dev/stdin" || f == "-":
			content = stdin
		case h != nil:
			file, ok := h.File(f)
			if !ok {
				return out(125, "", fmt.Sprintf("docker: open %s: no such file or directory.\nSee 'docker %s --help'.\n", f, verb))
			}
			content = file.Content
		}
		lines, err := parseEnvFile(content)
		if err != nil {
			return out(125, "", "docker: "+err.Error()+".\nSee 'docker "+verb+" --help'.\n")
		}
		env = append(env, lines...)
	}
	for _, e := range flags["env"] {
		if strings.Contains(e, "=") {
			env = append(env, e)
		} // "-e KEY" takes KEY from the CLI's environment: empty here
	}
	labels := map[string]string{}
	for _, l := range flags["label"] {
		k, v, _ := strings.Cut(l, "=")
		labels[k] = v
	}
	restart := restartPolicyDoc{Name: "no"}
	if r := last(flags, "restart"); r != "" {
		n, count, _ := strings.Cut(r, ":")
		if !restartPolicies[n] {
			return fail("invalid restart policy '" + r + "'")
		}
		restart.Name = n
		if count != "" {
			restart.MaximumRetryCount, _ = strconv.Atoi(count)
		}
	}
	var stopTimeout *int
	if s := last(flags, "stop-timeout"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return out(125, "", fmt.Sprintf("invalid argument %q for \"--stop-timeout\" flag: strconv.ParseInt: parsing %q: invalid syntax\n", s, s))
		}
		stopTimeout = &n
	}
	// Volumes: "src:dst[:opts]" are binds (kept as given), "/path" anonymous.
	var binds []string
	anonPaths := map[string]struct{}{}
	for _, v := range flags["volume"] {
		parts := strings.Split(v, ":")
		switch {
		case len(parts) == 1 && strings.HasPrefix(v, "/"):
			anonPaths[path.Clean(v)] = struct{}{}
		case len(parts) >= 2 && len(parts) <= 3 && parts[0] != "" && strings.HasPrefix(parts[1], "/"):
			if !strings.HasPrefix(parts[0], "/") && !validName(parts[0]) {
				return fail(fmt.Sprintf("Error response from daemon: create %s: %q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path", parts[0], parts[0]))
			}
			binds = append(binds, v)
		default:
			return fail(fmt.Sprintf("Error response from daemon: invalid volume specification: '%s'", v))
		}
	}

	img := d.findImage(ref)
	var stderr strings.Builder
	if img == nil {
		stderr.WriteString(fmt.Sprintf("Unable to find image '%s' locally\n", normRef(ref)))
		r, ok := d.registry[normRef(ref)]
		if !ok {
			return fail(strings.TrimSuffix(stderr.String(), "\n") + "\n" + d.pullDenied(ref))
		}
		d.addImageLocked(ref, r)
		img = d.findImage(ref)
	}
	if name == "" {
		name = fmt.Sprintf("fake_%d", d.seq+1)
	}
	if c := d.containers[name]; c != nil {
		return fail(fmt.Sprintf("Error response from daemon: Conflict. The container name \"/%s\" is already in use by container \"%s\". You have to remove (or rename) that container to be able to reuse that name.", name, c.doc.ID))
	}

	d.seq++
	c := &fakeContainer{seq: d.seq}
	doc := &c.doc
	doc.ID = hexID("container", d.seq, name)
	doc.Created = created
	doc.Name = "/" + name
	doc.Image = img.ID
	doc.Driver, doc.Platform = "overlay2", "linux"
	doc.State = stateDoc{Status: "created", StartedAt: "0001-01-01T00:00:00Z", FinishedAt: "0001-01-01T00:00:00Z"}

	// The daemon merges the image's config under the container's
	// (moby daemon/commit.go merge): env and labels by key, Cmd only when
	// no entrypoint is given.
	cfg := &doc.Config
	cfg.Hostname = doc.ID[:12]
	cfg.Image = ref
	cfg.Env = env
	for _, ie := range img.Env {
		k, _, _ := strings.Cut(ie, "=")
		if !hasEnvKey(cfg.Env, k) {
			cfg.Env = append(cfg.Env, ie)
		}
	}
	cfg.Labels = labels
	for k, v := range img.Labels {
		if _, ok := cfg.Labels[k]; !ok {
			cfg.Labels[k] = v
		}
	}
	if ep := last(flags, "entrypoint"); ep != "" {
		cfg.Entrypoint = []string{ep}
	}
	if len(cmd) > 0 {
		cfg.Cmd = cmd
	}
	if len(cfg.Entrypoint) == 0 {
		if len(cfg.Cmd) == 0 {
			cfg.Cmd = img.Cmd
		}
		cfg.Entrypoint = img.Entrypoint
	}
	cfg.StopTimeout = stopTimeout
	cfg.StopSignal = last(flags, "stop-signal")
	argv := append(append([]string(nil), cfg.Entrypoint...), cfg.Cmd...)
	if len(argv) > 0 {
		doc.Path, doc.Args = argv[0], argv[1:]
	}
	if len(argv) == 0 {
		return fail("Error response from daemon: No command specified")
	}
	doc.Args = append([]string{}, doc.Args...)

	hc := &doc.HostConfig
	hc.Binds = binds
	hc.RestartPolicy = restart
	hc.Privileged = isTrue(flags, "privileged")
	hc.CapAdd = d.caps(flags["cap-add"])
	hc.CapDrop = d.caps(flags["cap-drop"])
	hc.SecurityOpt = append([]string(nil), flags["security-opt"]...)
	if hc.Privileged {
		hc.SecurityOpt = append(hc.SecurityOpt, "label=disable")
	}

	// Mounts: binds, then anonymous volumes (the container's and the
	// image's) at paths no bind covers.
	doc.Mounts = []mountDoc{}
	covered := map[string]bool{}
	for _, b := range binds {
		parts := strings.Split(b, ":")
		src, dst, mode := parts[0], path.Clean(parts[1]), ""
		if len(parts) == 3 {
			mode = parts[2]
		}
		rw := !strings.Contains(","+mode+",", ",ro,")
		covered[dst] = true
		if strings.HasPrefix(src, "/") {
			doc.Mounts = append(doc.Mounts, mountDoc{Type: "bind", Source: src, Destination: dst, Mode: mode, RW: rw, Propagation: "rprivate"})
			continue
		}
		if d.volumes[src] == nil {
			d.volumes[src] = &fakeVolume{name: src}
		}
		if mode == "" {
			mode = "z"
		}
		doc.Mounts = append(doc.Mounts, mountDoc{Type: "volume", Name: src, Source: "/var/lib/docker/volumes/" + src + "/_data",
			Destination: dst, Driver: "local", Mode: mode, RW: rw})
	}
	for _, v := range img.Volumes {
		anonPaths[path.Clean(v)] = struct{}{}
	}
	if len(anonPaths) > 0 {
		cfg.Volumes = anonPaths
	}
	for _, p := range sortedNames(anonPaths) {
		if covered[p] {
			continue
		}
		d.seq++
		vn := hexID("volume", d.seq)
		d.volumes[vn] = &fakeVolume{name: vn, anon: true}
		c.anon = append(c.anon, vn)
		doc.Mounts = append(doc.Mounts, mountDoc{Type: "volume", Name: vn, Source: "/var/lib/docker/volumes/" + vn + "/_data",
			Destination: p, Driver: "local", RW: true})
	}

	// Networks: --network (the default bridge when absent) with aliases
	// on user-defined networks, where docker adds the short ID.
	mode := last(flags, "network")
	if mode == "" {
		mode = last(flags, "net")
	}
	netName := mode
	if mode == "" || mode == "default" {
		mode, netName = "default", "bridge"
	}
	hc.NetworkMode = mode
	ep := &endpointDoc{}
	if netName != "bridge" && netName != "host" && netName != "none" {
		ep.Aliases = append(append([]string(nil), flags["network-alias"]...), doc.ID[:12])
	}
	// The endpoint gets its network's ID when the container starts.
	doc.NetworkSettings.Networks = map[string]*endpointDoc{netName: ep}

	d.containers[name] = c
	if verb == "run" {
		if o := d.startLocked(c); o.ExitCode != 0 {
			return out(125, "", "docker: "+string(o.Stderr))
		}
	}
	return out(0, doc.ID+"\n", stderr.String())
}

func hasEnvKey(env []string, key string) bool {
	for _, e := range env {
		if k, _, _ := strings.Cut(e, "="); k == key {
			return true
		}
	}
	return false
}

// caps stores capabilities as the CLI of d's version sends them.
func (d *Docker) caps(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	out := make([]string, len(l))
	for i, c := range l {
		if d.Newer {
			u := strings.ToUpper(c)
			if u != "ALL" && !strings.HasPrefix(u, "CAP_") {
				u = "CAP_" + u
			}
			c = u
		}
		out[i] = c
	}
	return out
}

// parseEnvFile reads an env file as the docker CLI does (opts/file.go):
// leading whitespace trimmed, blank and '#' lines skipped, split at the
// first '='; a name with whitespace is an error.
func parseEnvFile(b []byte) ([]string, error) {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimLeftFunc(sc.Text(), unicode.IsSpace)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, hasVal := strings.Cut(line, "=")
		if strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("poorly formatted environment: variable '%s' contains whitespaces", k)
		}
		if k == "" {
			return nil, fmt.Errorf("poorly formatted environment: no variable name on line '%s'", line)
		}
		if hasVal {
			lines = append(lines, k+"="+v)
		}
	}
	return lines, sc.Err()
}

func validName(s string) bool {
	if len(s) < 2 {
		return false
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if i > 0 {
			ok = ok || r == '_' || r == '.' || r == '-'
		}
		if !ok {
			return false
		}
	}
	return true
}

func (d *Docker) pullDenied(ref string) string {
	name, _, _ := strings.Cut(normRef(ref), ":")
	return fmt.Sprintf("Error response from daemon: pull access denied for %s, repository does not exist or may require 'docker login': denied: requested access to the resource is denied", name)
}

func (d *Docker) start(args []string) tasks.Output {
	_, names, bad := flagSet{cmd: "start", valued: map[string]bool{}, interspersed: true}.parse(args)
	if bad != nil {
		return *bad
	}
	var stdout, stderr strings.Builder
	var failed []string
	for _, n := range names {
		c := d.findContainer(n)
		if c == nil {
			stderr.WriteString("Error response from daemon: No such container: " + n + "\n")
			failed = append(failed, n)
			continue
		}
		if o := d.startLocked(c); o.ExitCode != 0 {
			stderr.Write(o.Stderr)
			failed = append(failed, n)
			continue
		}
		stdout.WriteString(n + "\n")
	}
	if len(failed) > 0 {
		stderr.WriteString("Error: failed to start containers: " + strings.Join(failed, ", ") + "\n")
		return out(1, stdout.String(), stderr.String())
	}
	return out(0, stdout.String(), "")
}

// startLocked starts c: every network it is attached to must exist (by the
// ID it was attached with, so a network recreated behind a stopped
// container's back fails as it does in docker 20.10).
func (d *Docker) startLocked(c *fakeContainer) tasks.Output {
	if c.doc.State.Running {
		return out(0, "", "")
	}
	if msg, ok := d.startErr[c.doc.Name[1:]]; ok {
		// Docker 20.10 keeps the reason in State.Error, with exit code 128
		// (127 and 126 when the executable is missing or not executable).
		c.doc.State.Error, c.doc.State.ExitCode = msg, 128
		return out(1, "", "Error response from daemon: "+msg+"\n")
	}
	for name, ep := range c.doc.NetworkSettings.Networks {
		nw := d.networks[name]
		if ep.NetworkID != "" {
			nw = d.findNetwork(ep.NetworkID)
			if nw == nil || nw.doc.ID != ep.NetworkID {
				return out(1, "", "Error response from daemon: network "+ep.NetworkID+" not found\n")
			}
		}
		if nw == nil {
			return out(1, "", "Error response from daemon: network "+name+" not found\n")
		}
		d.seq++
		ep.NetworkID = nw.doc.ID
		ep.EndpointID = hexID("endpoint", d.seq)
		if nw.doc.Driver == "bridge" {
			ep.IPAddress = fmt.Sprintf("172.18.0.%d", 2+d.seq%250)
			ep.IPPrefixLen = 16
			ep.MacAddress = fmt.Sprintf("02:42:ac:12:00:%02x", d.seq%250)
		}
	}
	c.doc.State.Status, c.doc.State.Running, c.doc.State.Restarting, c.doc.State.Pid = "running", true, false, 1000+c.seq
	c.doc.State.ExitCode, c.doc.State.Error = 0, ""
	c.doc.State.StartedAt = created
	return out(0, "", "")
}

func (d *Docker) stop(args []string) tasks.Output {
	_, names, bad := flagSet{cmd: "stop", valued: map[string]bool{"time": true}, short: map[byte]string{'t': "time"}, interspersed: true}.parse(args)
	if bad != nil {
		return *bad
	}
	for _, n := range names {
		c := d.findContainer(n)
		if c == nil {
			return out(1, "", "Error response from daemon: No such container: "+n+"\n")
		}
		// A stopped container keeps its last exit code (a restarting one's
		// too: docker stop ends the restart loop).
		c.doc.State.Status, c.doc.State.Running, c.doc.State.Paused, c.doc.State.Restarting, c.doc.State.Pid = "exited", false, false, false, 0
		for _, ep := range c.doc.NetworkSettings.Networks {
			ep.EndpointID, ep.IPAddress, ep.MacAddress, ep.IPPrefixLen = "", "", "", 0
		}
	}
	return out(0, strings.Join(names, "\n")+"\n", "")
}

// kill is docker kill [--signal SIG]: SIGKILL (the default) stops the
// container at once; another signal makes it exit at once too, unless
// Drains says it finishes its work first. A container that does not run
// fails as in docker 20.10.
func (d *Docker) kill(args []string) tasks.Output {
	flags, names, bad := flagSet{cmd: "kill", valued: map[string]bool{"signal": true}, short: map[byte]string{'s': "signal"}, interspersed: true}.parse(args)
	if bad != nil {
		return *bad
	}
	sig := last(flags, "signal")
	if sig == "" {
		sig = "KILL"
	}
	up := strings.TrimPrefix(strings.ToUpper(sig), "SIG")
	for _, n := range names {
		c := d.findContainer(n)
		switch {
		case c == nil:
			return out(1, "", "Error response from daemon: Cannot kill container: "+n+": No such container: "+n+"\n")
		case !c.doc.State.Running:
			return out(1, "", "Error response from daemon: Cannot kill container: "+n+": Container "+c.doc.ID+" is not running\n")
		}
		c.signals = append(c.signals, sig)
		if up == "KILL" || up == "9" || c.drainFor == 0 {
			d.exitLocked(c, 137)
			if up != "KILL" && up != "9" {
				c.doc.State.ExitCode = 0
			}
			continue
		}
		c.draining = true
	}
	return out(0, strings.Join(names, "\n")+"\n", "")
}

// drainStep advances a draining container by one inspection.
func (d *Docker) drainStep(c *fakeContainer) {
	if !c.draining || !c.doc.State.Running {
		return
	}
	if c.drainFor > 0 {
		c.drainFor--
	}
	if c.drainFor == 0 {
		c.draining = false
		d.exitLocked(c, 0)
	}
}

func (d *Docker) exitLocked(c *fakeContainer, code int) {
	st := &c.doc.State
	st.Status, st.Running, st.Paused, st.Restarting, st.Pid, st.ExitCode = "exited", false, false, false, 0, code
	st.FinishedAt = created
	for _, ep := range c.doc.NetworkSettings.Networks {
		ep.EndpointID, ep.IPAddress, ep.MacAddress, ep.IPPrefixLen = "", "", "", 0
	}
}

// info is docker info; only --format {{.LiveRestoreEnabled}} is answered.
func (d *Docker) info(args []string) tasks.Output {
	flags, _, bad := flagSet{cmd: "info", valued: map[string]bool{"format": true}, short: map[byte]string{'f': "format"}, interspersed: true}.parse(args)
	if bad != nil {
		return *bad
	}
	switch last(flags, "format") {
	case "{{.LiveRestoreEnabled}}", "{{json .LiveRestoreEnabled}}":
		return out(0, strconv.FormatBool(d.LiveRestore)+"\n", "")
	}
	return out(125, "", "fake docker: info supports only --format {{.LiveRestoreEnabled}}\n")
}

func (d *Docker) unpause(args []string) tasks.Output {
	for _, n := range args {
		c := d.findContainer(n)
		if c == nil {
			return out(1, "", "Error response from daemon: No such container: "+n+"\n")
		}
		if !c.doc.State.Paused {
			return out(1, "", "Error response from daemon: Container "+c.doc.ID+" is not paused\n")
		}
		c.doc.State.Paused, c.doc.State.Status = false, "running"
	}
	return out(0, strings.Join(args, "\n")+"\n", "")
}

// CrashLoop makes the named container's process exit with code, as many
// times as docker restarted it so far plus one, and leaves it as Docker
// 20.10 shows a container of restart policy always between two restarts:
// Status "restarting", Running and Restarting true, Pid 0, the last exit
// code, RestartCount counting the restarts.
func (d *Docker) CrashLoop(name string, code int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.containers[name]; c != nil {
		st := &c.doc.State
		st.Status, st.Running, st.Restarting, st.Paused, st.Pid, st.ExitCode = "restarting", true, true, false, 0, code
		st.FinishedAt = created
		c.doc.RestartCount++
	}
}

// Exit makes the named container's process exit with code and stay
// stopped, as it does under restart policy "no" (Status "exited").
func (d *Docker) Exit(name string, code int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.containers[name]; c != nil {
		st := &c.doc.State
		st.Status, st.Running, st.Restarting, st.Paused, st.Pid, st.ExitCode = "exited", false, false, false, 0, code
		st.FinishedAt = created
	}
}

// Drains makes the named container behave like gitlab-runner under its
// graceful stop signal: after `docker kill --signal` with anything but
// SIGKILL it goes on running (finishing its jobs) for that many more
// inspections of it, then exits with code 0. A negative count never exits
// by itself (a job that outlasts a drain's timeout). Without Drains, a
// container exits at once on any signal.
func (d *Docker) Drains(name string, inspections int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.containers[name]; c != nil {
		c.drainFor = inspections
	}
}

// Signals returns the signals `docker kill` sent to the named container, in
// order, as given on the command line ("KILL" when none was).
func (d *Docker) Signals(name string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.containers[name]; c != nil {
		return append([]string(nil), c.signals...)
	}
	return nil
}

// Pause marks a running container paused (there is no docker pause here).
func (d *Docker) Pause(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.containers[name]; c != nil && c.doc.State.Running {
		c.doc.State.Paused, c.doc.State.Status = true, "paused"
	}
}

func (d *Docker) rm(args []string) tasks.Output {
	flags, names, bad := flagSet{cmd: "rm", valued: map[string]bool{"force": false, "volumes": false, "link": false},
		short: map[byte]string{'f': "force", 'v': "volumes", 'l': "link"}, interspersed: true}.parse(args)
	if bad != nil {
		return *bad
	}
	force, vols := isTrue(flags, "force"), isTrue(flags, "volumes")
	var stdout, stderr strings.Builder
	for _, n := range names {
		c := d.findContainer(n)
		switch {
		case c == nil && force:
			continue // docker rm -f ignores missing containers
		case c == nil:
			stderr.WriteString(d.notFound("container", n))
			continue
		case c.doc.State.Running && !force:
			stderr.WriteString("Error response from daemon: You cannot remove a running container " + c.doc.ID + ". Stop the container before attempting removal or force remove\n")
			continue
		}
		if vols {
			for _, v := range c.anon {
				delete(d.volumes, v)
			}
		}
		delete(d.containers, c.doc.Name[1:])
		stdout.WriteString(n + "\n")
	}
	if stderr.Len() > 0 {
		return out(1, stdout.String(), stderr.String())
	}
	return out(0, stdout.String(), "")
}

func (d *Docker) pull(args []string) tasks.Output {
	_, pos, bad := flagSet{cmd: "pull", valued: map[string]bool{"quiet": false}, short: map[byte]string{'q': "quiet"}, interspersed: true}.parse(args)
	if bad != nil {
		return *bad
	}
	if len(pos) != 1 {
		return out(1, "", "\"docker pull\" requires exactly 1 argument.\n")
	}
	ref := pos[0]
	img, ok := d.registry[normRef(ref)]
	if !ok {
		return out(1, "", d.pullDenied(ref)+"\n")
	}
	prev := d.tags[normRef(ref)]
	id := d.addImageLocked(ref, img)
	_, tag, _ := strings.Cut(normRef(ref), ":")
	status := "Downloaded newer image for " + normRef(ref)
	if prev == id {
		status = "Image is up to date for " + normRef(ref)
	}
	return out(0, fmt.Sprintf("%s: Pulling from %s\nDigest: sha256:%s\nStatus: %s\ndocker.io/%s\n",
		tag, strings.Split(normRef(ref), ":")[0], hexID("digest", id), status, normRef(ref)), "")
}

func (d *Docker) ps(args []string) tasks.Output {
	flags, _, bad := flagSet{cmd: "ps", valued: map[string]bool{"all": false, "no-trunc": false, "filter": true, "format": true, "quiet": false},
		short: map[byte]string{'a': "all", 'f': "filter", 'q': "quiet"}, interspersed: true}.parse(args)
	if bad != nil {
		return *bad
	}
	format := last(flags, "format")
	if format == "" {
		return out(125, "", "fake docker: ps needs --format\n")
	}
	var conts []*fakeContainer
	for _, c := range d.containers {
		if !isTrue(flags, "all") && !c.doc.State.Running {
			continue
		}
		keep := true
		for _, f := range flags["filter"] {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "network":
				match := false
				for name, ep := range c.doc.NetworkSettings.Networks {
					if name == v || (ep.NetworkID != "" && strings.HasPrefix(ep.NetworkID, v)) {
						match = true
					}
				}
				keep = keep && match
			case "name":
				keep = keep && strings.Contains(c.doc.Name, v)
			default:
				return out(1, "", "Error response from daemon: Invalid filter '"+k+"'\n")
			}
		}
		if keep {
			conts = append(conts, c)
		}
	}
	sort.Slice(conts, func(i, j int) bool { return conts[i].seq > conts[j].seq }) // newest first
	var b strings.Builder
	for _, c := range conts {
		id := c.doc.ID
		if !isTrue(flags, "no-trunc") {
			id = id[:12]
		}
		line := strings.NewReplacer("{{.ID}}", id, "{{.Names}}", c.doc.Name[1:], "\\t", "\t").Replace(format)
		b.WriteString(line + "\n")
	}
	return out(0, b.String(), "")
}

var networkDrivers = map[string]bool{"bridge": true, "macvlan": true, "ipvlan": true}

func (d *Docker) networkCreate(args []string) tasks.Output {
	flags, pos, bad := flagSet{cmd: "network create", valued: map[string]bool{"driver": true, "opt": true, "label": true,
		"internal": false, "attachable": false, "ipv6": false, "subnet": true, "gateway": true},
		short: map[byte]string{'d': "driver", 'o': "opt"}, interspersed: true}.parse(args)
	if bad != nil {
		return *bad
	}
	if len(pos) != 1 {
		return out(1, "", "\"docker network create\" requires exactly 1 argument.\n")
	}
	name := pos[0]
	if d.networks[name] != nil {
		return out(1, "", "Error response from daemon: network with name "+name+" already exists\n")
	}
	driver := last(flags, "driver")
	if driver == "" {
		driver = "bridge"
	}
	if !networkDrivers[driver] {
		return out(1, "", fmt.Sprintf("Error response from daemon: plugin %q not found\n", driver))
	}
	// IPAM as the CLI and daemon of 20.10 check it: a gateway needs its
	// subnet; a subnet is kept as written (host bits included).
	var pool *ipamConfigDoc
	subnet, gateway := last(flags, "subnet"), last(flags, "gateway")
	switch {
	case gateway != "" && subnet == "":
		return out(1, "", "every ip-range or gateway must have a corresponding subnet\n")
	case subnet != "":
		prefix, err := netip.ParsePrefix(subnet)
		if err != nil {
			return out(1, "", fmt.Sprintf("Error response from daemon: Invalid subnet %s : invalid CIDR address: %s\n", subnet, subnet))
		}
		if gw, err := netip.ParseAddr(gateway); gateway != "" && (err != nil || !prefix.Contains(gw)) {
			return out(1, "", "no matching subnet for gateway "+gateway+"\n")
		}
		pool = &ipamConfigDoc{Subnet: subnet, Gateway: gateway}
	}
	doc := d.newNetworkDoc(name, driver)
	if pool != nil {
		doc.IPAM.Config = []ipamConfigDoc{*pool}
	}
	doc.Internal = isTrue(flags, "internal")
	doc.Attachable = isTrue(flags, "attachable")
	doc.EnableIPv6 = isTrue(flags, "ipv6")
	for _, o := range flags["opt"] {
		k, v, _ := strings.Cut(o, "=")
		doc.Options[k] = v
	}
	for _, l := range flags["label"] {
		k, v, _ := strings.Cut(l, "=")
		doc.Labels[k] = v
	}
	if d.Newer && driver == "bridge" {
		for k, v := range map[string]string{"com.docker.network.enable_ipv4": "true", "com.docker.network.enable_ipv6": "false"} {
			if _, set := doc.Options[k]; !set {
				doc.Options[k] = v
			}
		}
	}
	d.networks[name] = &fakeNetwork{doc: doc}
	return out(0, doc.ID+"\n", "")
}

func (d *Docker) networkRm(args []string) tasks.Output {
	var stdout, stderr strings.Builder
	for _, n := range args {
		nw := d.findNetwork(n)
		switch {
		case nw == nil:
			stderr.WriteString(d.notFound("network", n))
			continue
		case n == "bridge" || n == "host" || n == "none":
			stderr.WriteString("Error response from daemon: " + n + " is a pre-defined network and cannot be removed\n")
			continue
		case len(d.networkDocLocked(nw).Containers) > 0:
			stderr.WriteString(fmt.Sprintf("Error response from daemon: error while removing network: network %s id %s has active endpoints\n", nw.doc.Name, nw.doc.ID))
			continue
		}
		delete(d.networks, nw.doc.Name)
		stdout.WriteString(n + "\n")
	}
	if stderr.Len() > 0 {
		return out(1, stdout.String(), stderr.String())
	}
	return out(0, stdout.String(), "")
}

func (d *Docker) networkConnect(args []string) tasks.Output {
	flags, pos, bad := flagSet{cmd: "network connect", valued: map[string]bool{"alias": true, "ip": true}, interspersed: true}.parse(args)
	if bad != nil {
		return *bad
	}
	if len(pos) != 2 {
		return out(1, "", "\"docker network connect\" requires exactly 2 arguments.\n")
	}
	nw := d.findNetwork(pos[0])
	if nw == nil {
		return out(1, "", "Error response from daemon: network "+pos[0]+" not found\n")
	}
	c := d.findContainer(pos[1])
	if c == nil {
		return out(1, "", "Error response from daemon: No such container: "+pos[1]+"\n")
	}
	if _, ok := c.doc.NetworkSettings.Networks[nw.doc.Name]; ok {
		return out(1, "", "Error response from daemon: endpoint with name "+c.doc.Name[1:]+" already exists in network "+nw.doc.Name+"\n")
	}
	// A stopped container's endpoint gets its network's ID when it starts.
	ep := &endpointDoc{}
	ep.Aliases = append(append([]string(nil), flags["alias"]...), c.doc.ID[:12])
	if c.doc.State.Running {
		d.seq++
		ep.NetworkID = nw.doc.ID
		ep.EndpointID = hexID("endpoint", d.seq)
		ep.IPAddress, ep.IPPrefixLen = fmt.Sprintf("172.19.0.%d", 2+d.seq%250), 16
	}
	c.doc.NetworkSettings.Networks[nw.doc.Name] = ep
	return out(0, "", "")
}

func (d *Docker) networkDisconnect(args []string) tasks.Output {
	_, pos, bad := flagSet{cmd: "network disconnect", valued: map[string]bool{"force": false}, short: map[byte]string{'f': "force"}, interspersed: true}.parse(args)
	if bad != nil {
		return *bad
	}
	if len(pos) != 2 {
		return out(1, "", "\"docker network disconnect\" requires exactly 2 arguments.\n")
	}
	nw := d.findNetwork(pos[0])
	if nw == nil {
		return out(1, "", "Error response from daemon: network "+pos[0]+" not found\n")
	}
	c := d.findContainer(pos[1])
	if c == nil {
		return out(1, "", "Error response from daemon: No such container: "+pos[1]+"\n")
	}
	if _, ok := c.doc.NetworkSettings.Networks[nw.doc.Name]; !ok {
		return out(1, "", "Error response from daemon: container "+c.doc.ID+" is not connected to network "+nw.doc.Name+"\n")
	}
	delete(c.doc.NetworkSettings.Networks, nw.doc.Name)
	return out(0, "", "")
}
