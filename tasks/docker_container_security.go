package tasks

// A container's security options (security_opt), as docker run sends them.

import (
	"strings"

	"github.com/moby/moby/api/types/container"
)

// normSecurityOpt writes an option as key=value: docker accepts the legacy
// "seccomp:unconfined" and a bare "no-new-privileges" too.
func normSecurityOpt(s string) string {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "=") {
		if k, v, ok := strings.Cut(s, ":"); ok {
			s = k + "=" + v
		}
	}
	if s == "no-new-privileges" {
		s = "no-new-privileges=true"
	}
	return s
}

func (c *DockerContainer) securityOpts() []string {
	out := make([]string, len(c.SecurityOpt))
	for i, o := range c.SecurityOpt {
		out[i] = normSecurityOpt(o)
	}
	return sortedSet(out)
}

// systemPathsUnconfined is the security option that docker run turns into
// empty HostConfig.MaskedPaths and ReadonlyPaths instead of sending it
// (docker/cli cli/command/container/opts.go, parseSystemPaths; docs:
// https://docs.docker.com/reference/cli/docker/container/run/#security-opt).
const systemPathsUnconfined = "systempaths=unconfined"

// daemonSecurityOpts is HostConfig.SecurityOpt for c, and whether its
// system paths are unconfined (HostConfig.MaskedPaths and ReadonlyPaths
// empty rather than docker's defaults).
func (c *DockerContainer) daemonSecurityOpts() (opts []string, unconfinedPaths bool) {
	for _, o := range c.securityOpts() {
		if o == systemPathsUnconfined {
			unconfinedPaths = true
			continue
		}
		opts = append(opts, o)
	}
	return opts, unconfinedPaths
}

// systemPathsUnconfinedIn tells whether a container's system paths are
// unconfined: the daemon sets docker's default masked and read-only paths
// when a create request has none (null) and the container is not
// privileged, and keeps the empty lists that systempaths=unconfined sends.
func systemPathsUnconfinedIn(hc *container.HostConfig) bool {
	return hc.MaskedPaths != nil && len(hc.MaskedPaths) == 0 &&
		hc.ReadonlyPaths != nil && len(hc.ReadonlyPaths) == 0
}
