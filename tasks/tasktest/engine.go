package tasktest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"

	"github.com/dindops/dindops/tasks"
)

// Docker is an in-memory Docker Engine for unit tests: images, containers,
// networks and volumes, behind the tasks.DockerEngine calls, with the moby
// API's types and the Engine's rules where tasks meet them (a name in use is
// a conflict, a missing object is not found, a network with running
// containers cannot be removed, a container whose network is gone cannot
// start, an image must be on the host to create a container from it, a kill
// of a stopped container is a conflict). Installed on a Host (Install), it
// is that host's tasks.DockerHost; it refuses every change while the host
// is frozen, so a Plan that would change something fails. Every call is
// recorded in the host's Commands as {"API", method, args...}.
type Docker struct {
	// Newer makes the engine behave like Docker 23 and later where the
	// difference shows to tasks: Info's ServerVersion is 24.0.9 (else
	// Debian's 20.10.24+dfsg1), capabilities are stored as "CAP_NET_ADMIN"
	// (20.10 stores them as given), and new bridge networks get the
	// com.docker.network.enable_ipv4/enable_ipv6 options.
	Newer bool
	// LiveRestore is what Info reports as LiveRestoreEnabled.
	LiveRestore bool
	// Driver is Info's storage driver ("overlay2" when empty).
	Driver string

	onCall     func(method string) // see OnCall
	mu         sync.Mutex
	down       bool
	images     map[string]*DockerImage   // by ID
	tags       map[string]string         // normalised reference → image ID
	registry   map[string]DockerImage    // normalised reference → what a pull gets
	containers map[string]*fakeContainer // by name
	networks   map[string]*network.Inspect
	volumes    map[string]bool // name → anonymous
	startErr   map[string]string
	pullAuth   map[string]string // reference → X-Registry-Auth of its last pull
	distAuth   map[string]string // reference → X-Registry-Auth of its last DistributionInspect
	// registryErr, when set, is every DistributionInspect's answer
	registryErr error
	requests    int
	seq         int
}

// DockerImage is an image's configuration as the image inspect shows it.
type DockerImage struct {
	// ID is "sha256:" and 64 hex digits; derived from the rest when empty.
	ID         string
	Env        []string
	Cmd        []string
	Entrypoint []string
	Labels     map[string]string
	Volumes    []string
	StopSignal string
}

type fakeContainer struct {
	c       container.InspectResponse
	anon    []string // volumes created for this container, removed with it
	signals []string // those kill sent, in order
	// drainAfter is how long a container that got a signal other than
	// SIGKILL goes on running (Drains); negative: it never exits by
	// itself.
	drainAfter time.Duration
	exited     chan struct{} // closed when it stops running; nil while not running
}

// NewDocker returns an empty engine with docker's predefined networks
// bridge, host and none.
func NewDocker() *Docker {
	d := &Docker{images: map[string]*DockerImage{}, tags: map[string]string{}, registry: map[string]DockerImage{},
		containers: map[string]*fakeContainer{}, networks: map[string]*network.Inspect{}, volumes: map[string]bool{},
		startErr: map[string]string{}, pullAuth: map[string]string{}, distAuth: map[string]string{}}
	for _, n := range []struct{ name, driver string }{{"bridge", "bridge"}, {"host", "host"}, {"none", "null"}} {
		d.networks[n.name] = d.newNetwork(n.name, client.NetworkCreateOptions{Driver: n.driver}, false)
	}
	d.networks["bridge"].Options = map[string]string{
		"com.docker.network.bridge.default_bridge": "true",
		"com.docker.network.bridge.name":           "docker0",
		"com.docker.network.driver.mtu":            "1500",
	}
	return d
}

// InstallDocker installs a new engine on h.
func InstallDocker(h *Host) *Docker {
	d := NewDocker()
	d.Install(h)
	return d
}

// Install makes d the Docker Engine of h (h's tasks.DockerHost ability).
func (d *Docker) Install(h *Host) {
	h.mu.Lock()
	h.docker = d
	h.mu.Unlock()
}

// SetDown makes every call fail as a stopped daemon does
// (tasks.DockerUnreachable), or answer again.
func (d *Docker) SetDown(down bool) { d.mu.Lock(); d.down = down; d.mu.Unlock() }

// Requests returns how many API calls the engine was sent (those refused
// on a frozen host or by a stopped daemon included) and starts counting
// anew.
func (d *Docker) Requests() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.requests
	d.requests = 0
	return n
}

func hexID(parts ...any) string {
	sum := sha256.Sum256([]byte(fmt.Sprint(parts...)))
	return hex.EncodeToString(sum[:])
}

// normRef is a reference as docker displays it (see tasks'
// normalizeImageRef).
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

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// engine is d as one host sees it: changes are refused while the host is
// frozen, and every call is recorded in the host's Commands.
type engine struct {
	d *Docker
	h *Host
}

var _ tasks.DockerEngine = engine{}

// call counts and records one request; mutating ones fail on a frozen host
// or a stopped daemon.
func (e engine) call(ctx context.Context, mutating bool, method string, args ...string) error {
	// A real client fails at once with a context that is done.
	if err := ctx.Err(); err != nil {
		return err
	}
	e.d.mu.Lock()
	e.d.requests++
	onCall := e.d.onCall
	e.d.mu.Unlock()
	if onCall != nil {
		defer onCall(method)
	}
	if e.h != nil {
		e.h.mu.Lock()
		e.h.Commands = append(e.h.Commands, append([]string{"API", method}, args...))
		frozen := e.h.frozen
		e.h.mu.Unlock()
		if mutating && frozen {
			return fmt.Errorf("fake docker: %s on a frozen host (during plan?)", method)
		}
	}
	e.d.mu.Lock()
	defer e.d.mu.Unlock()
	if e.d.down {
		return fmt.Errorf("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?: %w", tasks.ErrDockerUnreachable)
	}
	return nil
}

func noSuch(kind, name string) error {
	return cerrdefs.ErrNotFound.WithMessage(fmt.Sprintf("No such %s: %s", kind, name))
}

func (e engine) Info(ctx context.Context, _ client.InfoOptions) (client.SystemInfoResult, error) {
	if err := e.call(ctx, false, "Info"); err != nil {
		return client.SystemInfoResult{}, err
	}
	d := e.d
	d.mu.Lock()
	defer d.mu.Unlock()
	driver := d.Driver
	if driver == "" {
		driver = "overlay2"
	}
	running := 0
	for _, c := range d.containers {
		if c.c.State.Running {
			running++
		}
	}
	return client.SystemInfoResult{Info: system.Info{Driver: driver, Images: len(d.images), Containers: len(d.containers),
		ContainersRunning: running, LiveRestoreEnabled: d.LiveRestore, ServerVersion: d.version()}}, nil
}

// version is Info's ServerVersion.
func (d *Docker) version() string {
	if d.Newer {
		return "24.0.9"
	}
	return "20.10.24+dfsg1"
}
