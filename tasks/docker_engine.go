package tasks

// The Docker Engine API as the docker tasks see it: the few calls they make,
// the optional Host ability that gives them a client, and the typed errors
// they tell apart.

import (
	"context"
	"errors"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// DockerEngine is the part of the Docker Engine API
// (https://docs.docker.com/reference/api/engine/) the docker tasks use.
// *client.Client of github.com/moby/moby/client implements it; tests use
// tasktest's in-memory engine. Errors follow the client's: a missing object
// matches cerrdefs.IsNotFound, a name in use cerrdefs.IsConflict, a daemon
// that does not answer client.IsErrConnectionFailed (see DockerNotFound and
// DockerUnreachable).
type DockerEngine interface {
	Info(ctx context.Context, o client.InfoOptions) (client.SystemInfoResult, error)

	ContainerInspect(ctx context.Context, id string, o client.ContainerInspectOptions) (client.ContainerInspectResult, error)
	ContainerList(ctx context.Context, o client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerCreate(ctx context.Context, o client.ContainerCreateOptions) (client.ContainerCreateResult, error)
	ContainerStart(ctx context.Context, id string, o client.ContainerStartOptions) (client.ContainerStartResult, error)
	ContainerKill(ctx context.Context, id string, o client.ContainerKillOptions) (client.ContainerKillResult, error)
	ContainerRemove(ctx context.Context, id string, o client.ContainerRemoveOptions) (client.ContainerRemoveResult, error)
	ContainerUnpause(ctx context.Context, id string, o client.ContainerUnpauseOptions) (client.ContainerUnpauseResult, error)
	ContainerWait(ctx context.Context, id string, o client.ContainerWaitOptions) client.ContainerWaitResult

	ImageInspect(ctx context.Context, ref string, o ...client.ImageInspectOption) (client.ImageInspectResult, error)
	ImagePull(ctx context.Context, ref string, o client.ImagePullOptions) (client.ImagePullResponse, error)
	// DistributionInspect is GET /distribution/{ref}/json: the daemon asks
	// the registry it would pull ref from for its manifest, pulling nothing
	// (see checkRegistry for what it answers).
	DistributionInspect(ctx context.Context, ref string, o client.DistributionInspectOptions) (client.DistributionInspectResult, error)

	NetworkInspect(ctx context.Context, id string, o client.NetworkInspectOptions) (client.NetworkInspectResult, error)
	NetworkCreate(ctx context.Context, name string, o client.NetworkCreateOptions) (client.NetworkCreateResult, error)
	NetworkRemove(ctx context.Context, id string, o client.NetworkRemoveOptions) (client.NetworkRemoveResult, error)
	NetworkConnect(ctx context.Context, id string, o client.NetworkConnectOptions) (client.NetworkConnectResult, error)
	NetworkDisconnect(ctx context.Context, id string, o client.NetworkDisconnectOptions) (client.NetworkDisconnectResult, error)
}

// DockerHost is the optional Host ability the docker tasks need: the Engine
// API of the host's Docker daemon. The SSH transport implements it with one
// client per host, on the host's SSH connection (a direct-streamlocal
// channel to the daemon's socket, or `docker system dial-stdio` in a
// session). The client is the same on every call; an error says why the
// daemon cannot be reached at all (no way to dial it), while a daemon that
// is merely down shows in the calls' errors.
type DockerHost interface {
	Docker(ctx context.Context) (DockerEngine, error)
}

// ErrNoDockerAPI is returned by Docker for a host that offers no Docker
// Engine API (a Host without the DockerHost ability).
var ErrNoDockerAPI = errors.New("this host offers no Docker Engine API")

// Docker returns h's Docker Engine API client.
func Docker(ctx context.Context, h Host) (DockerEngine, error) {
	d, ok := h.(DockerHost)
	if !ok {
		return nil, ErrNoDockerAPI
	}
	return d.Docker(ctx)
}

// DockerNotFound reports whether err is the daemon's "no such container,
// image or network".
func DockerNotFound(err error) bool { return cerrdefs.IsNotFound(err) }

// DockerConflict reports whether err is the daemon's "name already in use"
// (or another conflict with the object's state).
func DockerConflict(err error) bool { return cerrdefs.IsConflict(err) }

// DockerUnreachable reports whether err means the daemon did not answer:
// the transport found nothing listening (ErrDockerUnreachable), or the
// client could not connect (client.IsErrConnectionFailed) for a reason
// other than having no way to the daemon at all (ErrNoDockerPath: a
// permission or configuration problem, not a stopped daemon).
func DockerUnreachable(err error) bool {
	if errors.Is(err, ErrDockerUnreachable) {
		return true
	}
	return client.IsErrConnectionFailed(err) && !errors.Is(err, ErrNoDockerPath)
}

// ErrNoDockerPath is matched by the transport's errors for a host where no
// way to the daemon's API works (the socket is not the login user's to
// open, forwarding is off, there is no docker CLI for dial-stdio), as
// opposed to a daemon that is down.
var ErrNoDockerPath = errors.New("no way to the Docker Engine API")

// ErrDockerUnreachable is matched (errors.Is) by the transport's errors for a
// daemon that does not answer on its socket, such as a stopped dockerd.
var ErrDockerUnreachable = errors.New("the docker daemon does not answer")

// dockerErr wraps an Engine API error with what was being done. The
// client's message already is the daemon's own ("Error response from
// daemon: ..."); the error stays matchable with DockerNotFound and the rest.
func dockerErr(what string, err error) error {
	return fmt.Errorf("%s: %w", what, err)
}
