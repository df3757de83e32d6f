package tasktest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"iter"
	"net/netip"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/api/types/mount"
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
	// difference shows to tasks: capabilities are stored as "CAP_NET_ADMIN"
	// (20.10 stores them as given), and new bridge networks get the
	// com.docker.network.enable_ipv4/enable_ipv6 options.
	Newer bool
	// LiveRestore is what Info reports as LiveRestoreEnabled.
	LiveRestore bool
	// Driver is Info's storage driver ("overlay2" when empty).
	Driver string

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
	requests   int
	seq        int
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
		startErr: map[string]string{}, pullAuth: map[string]string{}}
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

// AddImage puts an image on the host under ref and returns its ID. A ref
// already used moves to the new image (as a pull of a moved tag does).
func (d *Docker) AddImage(ref string, img DockerImage) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.addImageLocked(ref, img)
}

func (d *Docker) addImageLocked(ref string, img DockerImage) string {
	if img.ID == "" {
		img.ID = "sha256:" + hexID(img.Env, img.Cmd, img.Entrypoint, img.Labels, img.Volumes, img.StopSignal, ref)
	}
	d.images[img.ID] = &img
	d.tags[normRef(ref)] = img.ID
	return img.ID
}

// AddRegistryImage makes ref pullable: a pull of ref gets img.
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

// PullAuth is the X-Registry-Auth value the last pull of ref sent ("" for
// none).
func (d *Docker) PullAuth(ref string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pullAuth[normRef(ref)]
}

// FailStart makes a start of the named container fail with msg.
func (d *Docker) FailStart(name, msg string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.startErr[name] = msg
}

// ContainerNames lists the containers, sorted.
func (d *Docker) ContainerNames() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return sortedNames(d.containers)
}

// Container returns a copy of the named container's inspect, or nil.
func (d *Docker) Container(name string) *container.InspectResponse {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.containers[name]
	if c == nil {
		return nil
	}
	cp := c.c
	return &cp
}

// ContainerID returns a container's ID, or "" when there is none.
func (d *Docker) ContainerID(name string) string {
	if c := d.Container(name); c != nil {
		return c.ID
	}
	return ""
}

// Running reports whether the named container runs.
func (d *Docker) Running(name string) bool {
	c := d.Container(name)
	return c != nil && c.State.Running
}

// Env returns the container's Config.Env.
func (d *Docker) Env(name string) []string {
	if c := d.Container(name); c != nil {
		return c.Config.Env
	}
	return nil
}

// Volumes lists the volumes, sorted.
func (d *Docker) Volumes() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return sortedNames(d.volumes)
}

// NetworkNames lists the networks, sorted.
func (d *Docker) NetworkNames() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return sortedNames(d.networks)
}

// Network returns a copy of the named network's inspect, or nil.
func (d *Docker) Network(name string) *network.Inspect {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.networks[name]
	if n == nil {
		return nil
	}
	cp := *n
	return &cp
}

// NetworkID returns a network's ID, or "" when there is none.
func (d *Docker) NetworkID(name string) string {
	if n := d.Network(name); n != nil {
		return n.ID
	}
	return ""
}

// Endpoints maps the networks the named container is attached to, running
// or not, to its aliases on each.
func (d *Docker) Endpoints(name string) map[string][]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string][]string{}
	if c := d.containers[name]; c != nil {
		for n, ep := range c.c.NetworkSettings.Networks {
			out[n] = append([]string(nil), ep.Aliases...)
		}
	}
	return out
}

// Signals lists the signals kill sent to the named container, in order
// ("SIGKILL" for a kill at the end of a drain).
func (d *Docker) Signals(name string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.containers[name]; c != nil {
		return append([]string(nil), c.signals...)
	}
	return nil
}

// Drains makes the named container go on running for after once it got a
// signal other than SIGKILL (a runner finishing its jobs); negative: it
// never exits by itself. By default it exits at once.
func (d *Docker) Drains(name string, after time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.containers[name]; c != nil {
		c.drainAfter = after
	}
}

// CrashLoop makes the named container exit with code again and again while
// docker restarts it (state restarting).
func (d *Docker) CrashLoop(name string, code int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.containers[name]; c != nil {
		d.exitLocked(c, code)
		c.c.State.Restarting, c.c.State.Running, c.c.State.Status = true, true, container.StateRestarting
		c.c.RestartCount++
	}
}

// Exit makes the named container's process exit with code.
func (d *Docker) Exit(name string, code int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.containers[name]; c != nil {
		d.exitLocked(c, code)
	}
}

// Pause pauses the named container.
func (d *Docker) Pause(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.containers[name]; c != nil {
		c.c.State.Paused, c.c.State.Status = true, container.StatePaused
	}
}

// Restart restarts the daemon (a `service docker restart` in a test): with
// LiveRestore nothing happens to the containers; without it every container
// stops, then those with restart policy always start again, and those with
// unless-stopped that were running
// (https://docs.docker.com/engine/containers/start-containers-automatically/).
func (d *Docker) Restart() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.down = false
	if d.LiveRestore {
		return
	}
	for _, c := range d.containers {
		was := c.c.State.Running
		if was {
			d.exitLocked(c, 0)
		}
		switch p := c.c.HostConfig.RestartPolicy.Name; {
		case p == container.RestartPolicyAlways, p == container.RestartPolicyUnlessStopped && was:
			_ = d.startLocked(c)
		}
	}
}

// SwitchStorageDriver is the daemon started with another storage driver:
// the images, containers and volumes of the old one stay on disk, unseen.
func (d *Docker) SwitchStorageDriver(driver string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.Driver = driver
	d.images, d.tags = map[string]*DockerImage{}, map[string]string{}
	d.containers, d.volumes = map[string]*fakeContainer{}, map[string]bool{}
}

// StopDaemon stops the daemon (a `service docker stop` in a test): every
// container stops and the API does not answer until StartDaemon.
func (d *Docker) StopDaemon() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.containers {
		if c.c.State.Running {
			d.exitLocked(c, 0)
		}
	}
	d.down = true
}

// StartDaemon starts the daemon again, and with it the containers whose
// restart policy is always.
func (d *Docker) StartDaemon() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.down = false
	for _, c := range d.containers {
		if c.c.HostConfig.RestartPolicy.Name == container.RestartPolicyAlways && !c.c.State.Running {
			_ = d.startLocked(c)
		}
	}
}

func (d *Docker) exitLocked(c *fakeContainer, code int) {
	st := c.c.State
	st.Running, st.Paused, st.Restarting, st.Status, st.ExitCode = false, false, false, container.StateExited, code
	if c.exited != nil {
		close(c.exited)
		c.exited = nil
	}
}

func (d *Docker) startLocked(c *fakeContainer) error {
	if msg, ok := d.startErr[strings.TrimPrefix(c.c.Name, "/")]; ok {
		c.c.State.Error = msg
		return cerrdefs.ErrInternal.WithMessage(msg)
	}
	for n := range c.c.NetworkSettings.Networks {
		if d.networks[n] == nil {
			return cerrdefs.ErrNotFound.WithMessage("network " + n + " not found")
		}
	}
	// Docker 20.10 adds the short container ID to a running container's
	// aliases on each user-defined network.
	for n, ep := range c.c.NetworkSettings.Networks {
		d.shortIDAlias(c, n, ep)
	}
	st := c.c.State
	st.Running, st.Status, st.Error, st.ExitCode = true, container.StateRunning, "", 0
	d.seq++
	st.StartedAt = fmt.Sprintf("2024-01-01T00:00:%02d.000000000Z", d.seq%60)
	c.exited = make(chan struct{})
	return nil
}

// shortIDAlias adds c's short ID to its aliases on network n, as docker
// 20.10 does for user-defined networks.
func (d *Docker) shortIDAlias(c *fakeContainer, n string, ep *network.EndpointSettings) {
	if d.Newer || n == "bridge" || n == "host" || n == "none" {
		return
	}
	short := c.c.ID[:12]
	for _, a := range ep.Aliases {
		if a == short {
			return
		}
	}
	ep.Aliases = append(ep.Aliases, short)
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
func (e engine) call(mutating bool, method string, args ...string) error {
	e.d.mu.Lock()
	e.d.requests++
	e.d.mu.Unlock()
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
	if err := e.call(false, "Info"); err != nil {
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
		ContainersRunning: running, LiveRestoreEnabled: d.LiveRestore, ServerVersion: "20.10.24"}}, nil
}

func (d *Docker) findContainer(ref string) *fakeContainer {
	if c := d.containers[ref]; c != nil {
		return c
	}
	for _, c := range d.containers {
		if len(ref) >= 4 && strings.HasPrefix(c.c.ID, ref) {
			return c
		}
	}
	return nil
}

func (e engine) ContainerInspect(ctx context.Context, id string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	if err := e.call(false, "ContainerInspect", id); err != nil {
		return client.ContainerInspectResult{}, err
	}
	e.d.mu.Lock()
	defer e.d.mu.Unlock()
	c := e.d.findContainer(id)
	if c == nil {
		return client.ContainerInspectResult{}, noSuch("container", id)
	}
	return client.ContainerInspectResult{Container: copyContainer(c.c)}, nil
}

// copyContainer copies the parts a caller could change.
func copyContainer(c container.InspectResponse) container.InspectResponse {
	st, cfg, hc, ns := *c.State, *c.Config, *c.HostConfig, *c.NetworkSettings
	ns.Networks = map[string]*network.EndpointSettings{}
	for k, v := range c.NetworkSettings.Networks {
		ep := *v
		ns.Networks[k] = &ep
	}
	c.State, c.Config, c.HostConfig, c.NetworkSettings = &st, &cfg, &hc, &ns
	c.Mounts = append([]container.MountPoint(nil), c.Mounts...)
	return c
}

func (e engine) ContainerList(ctx context.Context, o client.ContainerListOptions) (client.ContainerListResult, error) {
	if err := e.call(false, "ContainerList"); err != nil {
		return client.ContainerListResult{}, err
	}
	e.d.mu.Lock()
	defer e.d.mu.Unlock()
	var res client.ContainerListResult
	for _, name := range sortedNames(e.d.containers) {
		c := e.d.containers[name]
		if !o.All && !c.c.State.Running {
			continue
		}
		if nets := o.Filters["network"]; len(nets) > 0 {
			match := false
			for n := range nets {
				if _, ok := c.c.NetworkSettings.Networks[n]; ok {
					match = true
				}
			}
			if !match {
				continue
			}
		}
		cp := copyContainer(c.c)
		res.Items = append(res.Items, container.Summary{ID: cp.ID, Names: []string{cp.Name}, Image: cp.Config.Image, ImageID: cp.Image,
			Labels: cp.Config.Labels, State: cp.State.Status, NetworkSettings: &container.NetworkSettingsSummary{Networks: cp.NetworkSettings.Networks}})
	}
	return res, nil
}

func (d *Docker) findImage(ref string) *DockerImage {
	if id, ok := d.tags[normRef(ref)]; ok {
		return d.images[id]
	}
	if img := d.images[ref]; img != nil {
		return img
	}
	if img := d.images["sha256:"+ref]; img != nil {
		return img
	}
	return nil
}

func (e engine) ImageInspect(ctx context.Context, ref string, _ ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	if err := e.call(false, "ImageInspect", ref); err != nil {
		return client.ImageInspectResult{}, err
	}
	e.d.mu.Lock()
	defer e.d.mu.Unlock()
	img := e.d.findImage(ref)
	if img == nil {
		return client.ImageInspectResult{}, noSuch("image", ref)
	}
	vols := map[string]struct{}{}
	for _, v := range img.Volumes {
		vols[v] = struct{}{}
	}
	cfg := &dockerspec.DockerOCIImageConfig{}
	cfg.Env, cfg.Cmd, cfg.Entrypoint, cfg.Labels, cfg.Volumes, cfg.StopSignal = img.Env, img.Cmd, img.Entrypoint, img.Labels, vols, img.StopSignal
	return client.ImageInspectResult{InspectResponse: image.InspectResponse{ID: img.ID, Config: cfg, Os: "linux", Architecture: "amd64"}}, nil
}

// pullResponse is a finished pull: Wait returns its error.
type pullResponse struct {
	err error
}

func (p pullResponse) Read([]byte) (int, error) {
	return 0, fmt.Errorf("fake docker: read the pull with Wait")
}
func (p pullResponse) Close() error { return nil }
func (p pullResponse) Wait(context.Context) error {
	return p.err
}
func (p pullResponse) JSONMessages(context.Context) iter.Seq2[jsonstream.Message, error] {
	return func(yield func(jsonstream.Message, error) bool) {
		if p.err != nil {
			yield(jsonstream.Message{}, p.err)
		}
	}
}

func (e engine) ImagePull(ctx context.Context, ref string, o client.ImagePullOptions) (client.ImagePullResponse, error) {
	if err := e.call(true, "ImagePull", ref); err != nil {
		return nil, err
	}
	d := e.d
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pullAuth[normRef(ref)] = o.RegistryAuth
	img, ok := d.registry[normRef(ref)]
	if !ok {
		return pullResponse{err: cerrdefs.ErrNotFound.WithMessage(fmt.Sprintf("pull access denied for %s, repository does not exist or may require 'docker login'", ref))}, nil
	}
	d.addImageLocked(ref, img)
	return pullResponse{}, nil
}

// normCaps stores a capability as the engine does.
func (d *Docker) normCaps(l []string) []string {
	if !d.Newer {
		return l
	}
	out := make([]string, len(l))
	for i, c := range l {
		u := strings.ToUpper(c)
		if u != "ALL" && !strings.HasPrefix(u, "CAP_") {
			u = "CAP_" + u
		}
		out[i] = u
	}
	return out
}

func (e engine) ContainerCreate(ctx context.Context, o client.ContainerCreateOptions) (client.ContainerCreateResult, error) {
	if err := e.call(true, "ContainerCreate", o.Name); err != nil {
		return client.ContainerCreateResult{}, err
	}
	d := e.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.containers[o.Name] != nil {
		return client.ContainerCreateResult{}, cerrdefs.ErrConflict.WithMessage(fmt.Sprintf(`Conflict. The container name "/%s" is already in use by container "%s". You have to remove (or rename) that container to be able to reuse that name.`, o.Name, d.containers[o.Name].c.ID))
	}
	cfg := container.Config{}
	if o.Config != nil {
		cfg = *o.Config
	}
	img := d.findImage(cfg.Image)
	if img == nil {
		return client.ContainerCreateResult{}, noSuch("image", cfg.Image)
	}
	hc := container.HostConfig{}
	if o.HostConfig != nil {
		hc = *o.HostConfig
	}
	netName := string(hc.NetworkMode)
	if netName == "" || netName == "default" {
		netName = "bridge"
	}
	if d.networks[netName] == nil {
		return client.ContainerCreateResult{}, cerrdefs.ErrNotFound.WithMessage("network " + netName + " not found")
	}
	// The daemon merges the image's defaults into the container's config
	// (moby daemon/commit.go merge).
	env := append([]string(nil), img.Env...)
	for _, kv := range cfg.Env {
		k, _, _ := strings.Cut(kv, "=")
		env = slicesDeleteKey(env, k)
		env = append(env, kv)
	}
	cfg.Env = env
	labels := map[string]string{}
	for k, v := range img.Labels {
		labels[k] = v
	}
	for k, v := range cfg.Labels {
		labels[k] = v
	}
	cfg.Labels = labels
	if len(cfg.Entrypoint) == 0 {
		cfg.Entrypoint = img.Entrypoint
		if len(cfg.Cmd) == 0 {
			cfg.Cmd = img.Cmd
		}
	}
	if cfg.StopSignal == "" {
		cfg.StopSignal = img.StopSignal
	}
	vols := map[string]struct{}{}
	for _, v := range img.Volumes {
		vols[v] = struct{}{}
	}
	for v := range cfg.Volumes {
		vols[v] = struct{}{}
	}
	cfg.Volumes = vols
	hc.CapAdd, hc.CapDrop = d.normCaps(hc.CapAdd), d.normCaps(hc.CapDrop)
	if hc.Privileged {
		hc.SecurityOpt = append(hc.SecurityOpt, "label=disable")
	}
	if hc.RestartPolicy.Name == "" {
		hc.RestartPolicy.Name = container.RestartPolicyDisabled
	}
	d.seq++
	id := hexID("container", o.Name, d.seq)
	fc := &fakeContainer{}
	covered := map[string]bool{}
	var mounts []container.MountPoint
	for _, b := range hc.Binds {
		parts := strings.Split(b, ":")
		if len(parts) < 2 {
			return client.ContainerCreateResult{}, cerrdefs.ErrInvalidArgument.WithMessage("invalid volume specification: " + b)
		}
		m := container.MountPoint{Source: parts[0], Destination: path.Clean(parts[1]), RW: !(len(parts) == 3 && strings.Contains(parts[2], "ro")), Type: mount.TypeBind}
		if !strings.HasPrefix(parts[0], "/") {
			m.Type, m.Name, m.Source = mount.TypeVolume, parts[0], "/var/lib/docker/volumes/"+parts[0]+"/_data"
			if _, ok := d.volumes[parts[0]]; !ok {
				d.volumes[parts[0]] = false
			}
		}
		covered[m.Destination] = true
		mounts = append(mounts, m)
	}
	for _, v := range sortedNames(vols) {
		if covered[path.Clean(v)] {
			continue
		}
		name := hexID("volume", id, v)
		d.volumes[name] = true
		fc.anon = append(fc.anon, name)
		mounts = append(mounts, container.MountPoint{Type: mount.TypeVolume, Name: name, Source: "/var/lib/docker/volumes/" + name + "/_data", Destination: path.Clean(v), RW: true})
	}
	ep := &network.EndpointSettings{}
	if o.NetworkingConfig != nil && o.NetworkingConfig.EndpointsConfig[netName] != nil {
		cp := *o.NetworkingConfig.EndpointsConfig[netName]
		ep = &cp
	}
	ep.NetworkID = d.networks[netName].ID
	fc.c = container.InspectResponse{ID: id, Name: "/" + o.Name, Image: img.ID, Created: "2024-01-01T00:00:00Z",
		State:           &container.State{Status: container.StateCreated},
		Config:          &cfg,
		HostConfig:      &hc,
		Mounts:          mounts,
		NetworkSettings: &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{netName: ep}},
	}
	d.containers[o.Name] = fc
	return client.ContainerCreateResult{ID: id}, nil
}

func slicesDeleteKey(env []string, key string) []string {
	out := env[:0]
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != key {
			out = append(out, kv)
		}
	}
	return out
}

// lookup finds a container for a call that needs one.
func (d *Docker) lookup(id string) (*fakeContainer, error) {
	c := d.findContainer(id)
	if c == nil {
		return nil, noSuch("container", id)
	}
	return c, nil
}

func (e engine) ContainerStart(ctx context.Context, id string, _ client.ContainerStartOptions) (client.ContainerStartResult, error) {
	if err := e.call(true, "ContainerStart", id); err != nil {
		return client.ContainerStartResult{}, err
	}
	e.d.mu.Lock()
	defer e.d.mu.Unlock()
	c, err := e.d.lookup(id)
	if err != nil {
		return client.ContainerStartResult{}, err
	}
	if c.c.State.Running {
		return client.ContainerStartResult{}, nil // 304 Not Modified
	}
	return client.ContainerStartResult{}, e.d.startLocked(c)
}

func (e engine) ContainerKill(ctx context.Context, id string, o client.ContainerKillOptions) (client.ContainerKillResult, error) {
	sig := o.Signal
	if sig == "" {
		sig = "SIGKILL"
	}
	if err := e.call(true, "ContainerKill", id, sig); err != nil {
		return client.ContainerKillResult{}, err
	}
	d := e.d
	d.mu.Lock()
	defer d.mu.Unlock()
	c, err := d.lookup(id)
	if err != nil {
		return client.ContainerKillResult{}, err
	}
	if !c.c.State.Running {
		return client.ContainerKillResult{}, cerrdefs.ErrConflict.WithMessage(fmt.Sprintf("Cannot kill container: %s: Container %s is not running", id, c.c.ID))
	}
	c.signals = append(c.signals, sig)
	switch {
	case sig == "SIGKILL" || sig == "KILL" || sig == "9":
		d.exitLocked(c, 137)
	case c.drainAfter == 0:
		d.exitLocked(c, 0)
	case c.drainAfter > 0:
		exited := c.exited
		time.AfterFunc(c.drainAfter, func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			if c.exited == exited && c.exited != nil {
				d.exitLocked(c, 0)
			}
		})
	}
	return client.ContainerKillResult{}, nil
}

func (e engine) ContainerWait(ctx context.Context, id string, o client.ContainerWaitOptions) client.ContainerWaitResult {
	result, errc := make(chan container.WaitResponse, 1), make(chan error, 1)
	res := client.ContainerWaitResult{Result: result, Error: errc}
	if err := e.call(false, "ContainerWait", id, string(o.Condition)); err != nil {
		errc <- err
		return res
	}
	e.d.mu.Lock()
	c, err := e.d.lookup(id)
	var exited chan struct{}
	if err == nil {
		exited = c.exited
	}
	e.d.mu.Unlock()
	switch {
	case err != nil:
		errc <- err
	case o.Condition != container.WaitConditionNotRunning:
		errc <- fmt.Errorf("fake docker: wait condition %q is not supported", o.Condition)
	case exited == nil:
		result <- container.WaitResponse{StatusCode: int64(c.c.State.ExitCode)}
	default:
		go func() {
			select {
			case <-exited:
				result <- container.WaitResponse{}
			case <-ctx.Done():
				errc <- ctx.Err()
			}
		}()
	}
	return res
}

func (e engine) ContainerRemove(ctx context.Context, id string, o client.ContainerRemoveOptions) (client.ContainerRemoveResult, error) {
	if err := e.call(true, "ContainerRemove", id); err != nil {
		return client.ContainerRemoveResult{}, err
	}
	d := e.d
	d.mu.Lock()
	defer d.mu.Unlock()
	c, err := d.lookup(id)
	if err != nil {
		return client.ContainerRemoveResult{}, err
	}
	if c.c.State.Running && !o.Force {
		return client.ContainerRemoveResult{}, cerrdefs.ErrConflict.WithMessage("You cannot remove a running container " + c.c.ID + ". Stop the container before attempting removal or force remove")
	}
	if c.c.State.Running {
		d.exitLocked(c, 137)
	}
	if o.RemoveVolumes {
		for _, v := range c.anon {
			delete(d.volumes, v)
		}
	}
	delete(d.containers, strings.TrimPrefix(c.c.Name, "/"))
	return client.ContainerRemoveResult{}, nil
}

func (e engine) ContainerUnpause(ctx context.Context, id string, _ client.ContainerUnpauseOptions) (client.ContainerUnpauseResult, error) {
	if err := e.call(true, "ContainerUnpause", id); err != nil {
		return client.ContainerUnpauseResult{}, err
	}
	e.d.mu.Lock()
	defer e.d.mu.Unlock()
	c, err := e.d.lookup(id)
	if err != nil {
		return client.ContainerUnpauseResult{}, err
	}
	if !c.c.State.Paused {
		return client.ContainerUnpauseResult{}, cerrdefs.ErrConflict.WithMessage("Container " + c.c.ID + " is not paused")
	}
	c.c.State.Paused, c.c.State.Status = false, container.StateRunning
	return client.ContainerUnpauseResult{}, nil
}

func (d *Docker) findNetwork(ref string) *network.Inspect {
	if n := d.networks[ref]; n != nil {
		return n
	}
	for _, n := range d.networks {
		if len(ref) >= 4 && strings.HasPrefix(n.ID, ref) {
			return n
		}
	}
	return nil
}

// endpointsLocked fills in the network's Containers: those attached that run.
func (d *Docker) endpointsLocked(n *network.Inspect) {
	n.Containers = map[string]network.EndpointResource{}
	for name, c := range d.containers {
		if _, ok := c.c.NetworkSettings.Networks[n.Name]; ok && c.c.State.Running {
			n.Containers[c.c.ID] = network.EndpointResource{Name: name}
		}
	}
}

func (e engine) NetworkInspect(ctx context.Context, id string, _ client.NetworkInspectOptions) (client.NetworkInspectResult, error) {
	if err := e.call(false, "NetworkInspect", id); err != nil {
		return client.NetworkInspectResult{}, err
	}
	e.d.mu.Lock()
	defer e.d.mu.Unlock()
	n := e.d.findNetwork(id)
	if n == nil {
		return client.NetworkInspectResult{}, cerrdefs.ErrNotFound.WithMessage("network " + id + " not found")
	}
	e.d.endpointsLocked(n)
	cp := *n
	return client.NetworkInspectResult{Network: cp}, nil
}

// newNetwork builds a network as the engine would create it.
func (d *Docker) newNetwork(name string, o client.NetworkCreateOptions, user bool) *network.Inspect {
	d.seq++
	driver := o.Driver
	if driver == "" {
		driver = "bridge"
	}
	n := &network.Inspect{Network: network.Network{Name: name, ID: hexID("network", name, d.seq), Scope: "local", Driver: driver,
		EnableIPv4: true, Internal: o.Internal, Attachable: o.Attachable, Labels: map[string]string{}, Options: map[string]string{}}}
	if o.EnableIPv6 != nil {
		n.EnableIPv6 = *o.EnableIPv6
	}
	for k, v := range o.Labels {
		n.Labels[k] = v
	}
	for k, v := range o.Options {
		n.Options[k] = v
	}
	if user && d.Newer && driver == "bridge" {
		for k, v := range map[string]string{"com.docker.network.enable_ipv4": "true", "com.docker.network.enable_ipv6": "false"} {
			if _, ok := n.Options[k]; !ok {
				n.Options[k] = v
			}
		}
	}
	n.IPAM.Driver = "default"
	switch {
	case o.IPAM != nil && len(o.IPAM.Config) > 0:
		n.IPAM.Config = o.IPAM.Config
	case driver == "bridge":
		n.IPAM.Config = []network.IPAMConfig{{
			Subnet:  netip.MustParsePrefix(fmt.Sprintf("172.%d.0.0/16", 16+d.seq%200)),
			Gateway: netip.MustParseAddr(fmt.Sprintf("172.%d.0.1", 16+d.seq%200)),
		}}
	}
	return n
}

// AddNetwork creates a network as set-up for a test (whether or not the
// host is frozen).
func (d *Docker) AddNetwork(name string, o client.NetworkCreateOptions) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.networks[name] = d.newNetwork(name, o, true)
}

func (e engine) NetworkCreate(ctx context.Context, name string, o client.NetworkCreateOptions) (client.NetworkCreateResult, error) {
	if err := e.call(true, "NetworkCreate", name); err != nil {
		return client.NetworkCreateResult{}, err
	}
	d := e.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.networks[name] != nil {
		return client.NetworkCreateResult{}, cerrdefs.ErrConflict.WithMessage("network with name " + name + " already exists")
	}
	n := d.newNetwork(name, o, true)
	d.networks[name] = n
	return client.NetworkCreateResult{ID: n.ID}, nil
}

func (e engine) NetworkRemove(ctx context.Context, id string, _ client.NetworkRemoveOptions) (client.NetworkRemoveResult, error) {
	if err := e.call(true, "NetworkRemove", id); err != nil {
		return client.NetworkRemoveResult{}, err
	}
	d := e.d
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.findNetwork(id)
	if n == nil {
		return client.NetworkRemoveResult{}, cerrdefs.ErrNotFound.WithMessage("network " + id + " not found")
	}
	d.endpointsLocked(n)
	if len(n.Containers) > 0 {
		return client.NetworkRemoveResult{}, cerrdefs.ErrPermissionDenied.WithMessage("error while removing network: network " + n.Name + " id " + n.ID + " has active endpoints")
	}
	delete(d.networks, n.Name)
	return client.NetworkRemoveResult{}, nil
}

func (e engine) NetworkConnect(ctx context.Context, id string, o client.NetworkConnectOptions) (client.NetworkConnectResult, error) {
	if err := e.call(true, "NetworkConnect", id, o.Container); err != nil {
		return client.NetworkConnectResult{}, err
	}
	d := e.d
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.findNetwork(id)
	if n == nil {
		return client.NetworkConnectResult{}, cerrdefs.ErrNotFound.WithMessage("network " + id + " not found")
	}
	c, err := d.lookup(o.Container)
	if err != nil {
		return client.NetworkConnectResult{}, err
	}
	if _, ok := c.c.NetworkSettings.Networks[n.Name]; ok {
		return client.NetworkConnectResult{}, cerrdefs.ErrPermissionDenied.WithMessage("endpoint with name " + strings.TrimPrefix(c.c.Name, "/") + " already exists in network " + n.Name)
	}
	ep := &network.EndpointSettings{NetworkID: n.ID}
	if o.EndpointConfig != nil {
		cp := *o.EndpointConfig
		ep = &cp
		ep.NetworkID = n.ID
	}
	c.c.NetworkSettings.Networks[n.Name] = ep
	if c.c.State.Running {
		d.shortIDAlias(c, n.Name, ep)
	}
	return client.NetworkConnectResult{}, nil
}

func (e engine) NetworkDisconnect(ctx context.Context, id string, o client.NetworkDisconnectOptions) (client.NetworkDisconnectResult, error) {
	if err := e.call(true, "NetworkDisconnect", id, o.Container); err != nil {
		return client.NetworkDisconnectResult{}, err
	}
	d := e.d
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.findNetwork(id)
	if n == nil {
		return client.NetworkDisconnectResult{}, cerrdefs.ErrNotFound.WithMessage("network " + id + " not found")
	}
	c, err := d.lookup(o.Container)
	if err != nil {
		return client.NetworkDisconnectResult{}, err
	}
	if _, ok := c.c.NetworkSettings.Networks[n.Name]; !ok {
		return client.NetworkDisconnectResult{}, cerrdefs.ErrInvalidArgument.WithMessage("container " + c.c.ID + " is not connected to network " + n.Name)
	}
	delete(c.c.NetworkSettings.Networks, n.Name)
	return client.NetworkDisconnectResult{}, nil
}

// RunContainer creates and starts a container as set-up for a test
// (whether or not the host is frozen), as `docker run -d` would.
func (d *Docker) RunContainer(o client.ContainerCreateOptions) error {
	e := engine{d: d}
	if _, err := e.ContainerCreate(context.Background(), o); err != nil {
		return err
	}
	_, err := e.ContainerStart(context.Background(), o.Name, client.ContainerStartOptions{})
	return err
}

// Stop stops the named container as `docker stop` does (set-up for a
// test). A stopped container keeps its last exit code (a restarting one's
// too: the stop ends the restart loop).
func (d *Docker) Stop(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.containers[name]; c != nil && c.c.State.Running {
		code := 0
		if c.c.State.Restarting {
			code = c.c.State.ExitCode
		}
		d.exitLocked(c, code)
	}
}

// Start starts the named container as `docker start` does (set-up for a
// test).
func (d *Docker) Start(name string) error {
	_, err := engine{d: d}.ContainerStart(context.Background(), name, client.ContainerStartOptions{})
	return err
}

// RemoveContainer removes the named container with its anonymous volumes
// (set-up for a test).
func (d *Docker) RemoveContainer(name string) {
	_, _ = engine{d: d}.ContainerRemove(context.Background(), name, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
}

// RemoveNetwork removes the named network, as set-up for a test: unlike
// the API it does so even with running containers attached, which it
// disconnects (as a network lost under them).
func (d *Docker) RemoveNetwork(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.containers {
		if c.c.State.Running {
			delete(c.c.NetworkSettings.Networks, name)
		}
	}
	delete(d.networks, name)
}
