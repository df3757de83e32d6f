package tasktest

// The in-memory engine as a test sets it up and looks at it: images,
// containers and networks put in place, faults injected, state read back.

import (
	"context"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// AddImage puts an image on the host under ref and returns its ID. A ref
// already used moves to the new image (as a pull of a moved tag does).
func (d *Docker) AddImage(ref string, img DockerImage) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.addImageLocked(ref, img)
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

// DistributionAuth is the X-Registry-Auth value the last
// DistributionInspect of ref sent ("" for none).
func (d *Docker) DistributionAuth(ref string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.distAuth[normRef(ref)]
}

// SetRegistryAnswer makes every DistributionInspect fail with err, as a
// daemon does that cannot reach the registry (Docker 20.10 answers 500,
// cerrdefs.ErrInternal, "Get \"https://registry.example.com/v2/\": dial
// tcp: lookup registry.example.com ...: no such host") or gets another
// answer from it; nil: the registry answers again. Pulls are not affected: a daemon may pull
// through a mirror it could not ask.
func (d *Docker) SetRegistryAnswer(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.registryErr = err
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

// AddNetwork creates a network as set-up for a test (whether or not the
// host is frozen).
func (d *Docker) AddNetwork(name string, o client.NetworkCreateOptions) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.networks[name] = d.newNetwork(name, o, true)
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

// SetAlias adds alias to the named container's aliases on network, as
// `docker run --network-alias` does (set-up for a test).
func (d *Docker) SetAlias(name, network, alias string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.containers[name]; c != nil {
		if ep := c.c.NetworkSettings.Networks[network]; ep != nil {
			ep.Aliases = append(ep.Aliases, alias)
		}
	}
}

// OnCall makes every Engine API call run fn with the call's method name
// ("ContainerRemove") once the call has been accepted: a test interrupts a
// task at a chosen point this way. The call goes on; later calls with a
// cancelled context fail, as a real client's do.
func (d *Docker) OnCall(fn func(method string)) {
	d.mu.Lock()
	d.onCall = fn
	d.mu.Unlock()
}
