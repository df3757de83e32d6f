package tasks

// Whether an image a plan would pull is in the registry the host would pull
// it from, asked of the host's own Docker daemon, read-only.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// registryCheckTimeout bounds one question to the daemon about a registry.
// The daemon's own dial timeout to a registry is 30s, so a registry that
// drops packets would otherwise hold the plan that long; past it, the
// check is a warning, not a failure.
const registryCheckTimeout = 20 * time.Second

// ImageNotInRegistryError is a plan's error for an image it would pull that
// the registry says it does not have (or, with the host's credentials sent,
// refuses): the pull would fail the same way.
type ImageNotInRegistryError struct {
	// Image is the reference as the task names it.
	Image string
	// Registry is the registry's host ("docker.io" for Docker Hub).
	Registry string
	// WithCredentials says whether the host's credentials were sent.
	WithCredentials bool
	// Answer is the daemon's error: it matches DockerNotFound, or
	// cerrdefs.IsUnauthorized / IsPermissionDenied.
	Answer error
}

func (e *ImageNotInRegistryError) Error() string {
	how := "as the host's docker daemon asked it"
	if e.Registry == "docker.io" {
		how += ", its registry-mirrors first"
	}
	fix := "and for a private registry run `" + loginCommand(e.Registry) + "` on the host as the user docker runs as"
	if e.WithCredentials {
		fix = "and that the host's credentials for " + e.Registry + " may pull it"
	}
	return fmt.Sprintf("image %s is not in its registry (%s, %s): %v; check the image name and tag, %s", e.Image, e.Registry, how, e.Answer, fix)
}

// loginCommand is the docker CLI command that stores credentials for
// registry.
func loginCommand(registry string) string {
	if registry == "docker.io" {
		return "docker login"
	}
	return "docker login " + registry
}

func (e *ImageNotInRegistryError) Unwrap() error { return e.Answer }

// registryVerdict is what a daemon's answer says about an image.
type registryVerdict int

const (
	imageInRegistry   registryVerdict = iota // the registry has it
	imageNotThere                            // the registry says it has not (the pull would fail)
	imageUnknownThere                        // the daemon cannot tell
)

// classifyRegistryAnswer sorts the error of a DistributionInspect. The
// daemon answers 404 for the registry's MANIFEST_UNKNOWN and NAME_UNKNOWN
// ("manifest unknown: manifest unknown"); 401 or 403 for UNAUTHORIZED and
// DENIED, which is how Docker Hub answers for a repository that does not
// exist, and also a private one asked anonymously; 500 for a registry it
// cannot reach (DNS, connection refused, TLS), 503 or 429 for one that is
// overloaded or rate-limits (moby api/server/httpstatus FromError, with the
// errcode descriptors of docker/distribution). withAuth says whether
// credentials were sent: a refusal without them is no proof, since the
// host's docker may get them at pull time from where dindops does not look
// (a credential helper, a login made before apply).
func classifyRegistryAnswer(err error, withAuth bool) registryVerdict {
	switch {
	case err == nil:
		return imageInRegistry
	case cerrdefs.IsNotFound(err):
		return imageNotThere
	case cerrdefs.IsUnauthorized(err), cerrdefs.IsPermissionDenied(err):
		if withAuth {
			return imageNotThere
		}
	}
	return imageUnknownThere
}

// checkRegistry asks the host's daemon whether ref is in the registry it
// would pull it from (GET /distribution/{ref}/json: the daemon contacts the
// registry, with the credentials pullImage would send, and pulls nothing).
// It returns a warning for the change when the daemon cannot tell (the
// registry unreachable, slow, failing, or asking for credentials none of
// which are configured): air-gapped sites often have a mirror the daemon
// uses at pull time. It fails with *ImageNotInRegistryError when the
// registry says the image is not there, and with the daemon's error when
// the daemon itself does not answer or ctx ends.
//
// Mirrors, as seen on the fleet (Debian's Docker 20.10.24, registry-mirrors
// set in daemon.json, Docker Hub's name not resolving): the daemon asks
// its mirror about a docker.io image (the mirror's access log shows the
// daemon's HEAD of the manifest), so an image only the mirror has is found,
// and a tag it has not is 404 "manifest unknown: manifest unknown". With
// the mirror down, the daemon waits for its ping (15 s) and then asks
// Docker Hub: 500, "Get \"https://registry-1.docker.io/v2/\": dial tcp:
// lookup registry-1.docker.io ...: no such host", a warning. A registry
// whose name does not resolve is such a 500 at once; an address with no
// route, after 3 s ("connect: no route to host"). Before
// Docker 25 the daemon asks only the first endpoint that answers its
// /v2/ ping (the mirror), while a pull goes on to Docker Hub when the
// mirror has not the image (moby commit 8aacbb3ba9, "api: fix GET
// /distribution endpoint ignoring mirrors"); so a docker.io image the
// answer says is missing is asked again of Docker Hub itself (as
// registry-1.docker.io/..., a name the daemon sends to no mirror), and is
// found when Docker Hub has it.
func checkRegistry(ctx context.Context, h Host, api DockerEngine, ref string) (warning string, err error) {
	auth, err := registryAuth(ctx, h, ref)
	if err != nil {
		return "", err
	}
	answer := askRegistry(ctx, api, ref, auth)
	verdict := classifyRegistryAnswer(answer, auth != "")
	if verdict == imageNotThere && imageDomain(ref) == "docker.io" && askRegistry(ctx, api, hubRef(ref), auth) == nil {
		return "", nil
	}
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	if DockerUnreachable(answer) {
		return "", dockerErr("check that "+ref+" is in its registry", answer)
	}
	switch verdict {
	case imageInRegistry:
		return "", nil
	case imageNotThere:
		return "", &ImageNotInRegistryError{Image: ref, Registry: imageDomain(ref), WithCredentials: auth != "", Answer: answer}
	}
	return registryWarning(ref, answer, auth != ""), nil
}

// askRegistry is one DistributionInspect of ref, within registryCheckTimeout.
func askRegistry(ctx context.Context, api DockerEngine, ref, auth string) error {
	ctx, cancel := context.WithTimeout(ctx, registryCheckTimeout)
	defer cancel()
	_, err := api.DistributionInspect(ctx, ref, client.DistributionInspectOptions{EncodedRegistryAuth: auth})
	return err
}

// registryWarning is the warning of a check the daemon could not answer.
func registryWarning(ref string, answer error, withAuth bool) string {
	why := answer.Error()
	if errors.Is(answer, context.DeadlineExceeded) {
		why = fmt.Sprintf("the docker daemon had no answer from the registry within %s", registryCheckTimeout)
	}
	if !withAuth && (cerrdefs.IsUnauthorized(answer) || cerrdefs.IsPermissionDenied(answer)) {
		why += fmt.Sprintf(" (the host's docker configuration has no credentials for %s: for a private registry run `%s` on the host; else check the image name)", imageDomain(ref), loginCommand(imageDomain(ref)))
	}
	return fmt.Sprintf("cannot check that %s exists in its registry: %s; apply pulls it", ref, why)
}

// imageDomain is the registry host of ref: its first path component when
// that has a '.' or ':' or is "localhost" (the rule of
// github.com/distribution/reference), else "docker.io". Docker Hub's other
// names (index.docker.io, registry-1.docker.io) are "docker.io" too.
func imageDomain(ref string) string {
	i := strings.Index(ref, "/")
	if i <= 0 {
		return "docker.io"
	}
	d := ref[:i]
	switch {
	case d == "index.docker.io" || d == "registry-1.docker.io":
		return "docker.io"
	case strings.ContainsAny(d, ".:") || d == "localhost":
		return d
	}
	return "docker.io"
}

// hubRef is a Docker Hub reference under the name of Docker Hub's registry
// itself: "docker:27-dind" is "registry-1.docker.io/library/docker:27-dind".
// The daemon sends such a name to that host, never to a registry mirror
// (mirrors are for "docker.io" only).
func hubRef(ref string) string {
	for _, p := range []string{"docker.io/", "index.docker.io/", "registry-1.docker.io/"} {
		ref = strings.TrimPrefix(ref, p)
	}
	if !strings.Contains(ref, "/") {
		ref = "library/" + ref
	}
	return "registry-1.docker.io/" + ref
}
