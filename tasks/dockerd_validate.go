package tasks

// What the host's dockerd can check of a daemon.json before it is written.

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/system"
)

// dockerdChecks is what the host's dockerd can check of a new file: all of
// it (validate: dockerd --validate), or else its keys against the options
// it knows (known, from dockerd --help; nil when they could not be had).
type dockerdChecks struct {
	validate bool
	version  string
	known    map[string]bool
}

// dockerdCanCheck finds out what dockerd can check of a configuration file
// (dockerd --validate came with Docker 23.0:
// https://docs.docker.com/engine/release-notes/23.0/), with a warning when
// it cannot validate it. The running daemon's version (info; nil when none
// answered) decides whether it validates; dockerd --help (which prints its
// options and exits, starting no daemon) tells the options of an older one,
// and tells both when no daemon answers or its version cannot be read. (A
// dockerd upgraded but not yet restarted is taken for the version that
// runs.)
func dockerdCanCheck(ctx context.Context, h Host, info *system.Info) (dockerdChecks, []string, error) {
	var c dockerdChecks
	if info != nil {
		if major, ok := dockerMajor(info.ServerVersion); ok {
			if major >= 23 {
				return dockerdChecks{validate: true}, nil, nil
			}
			c.version = info.ServerVersion
		}
	}
	help, err := h.Run(ctx, Cmd{Args: []string{"dockerd", "--help"}})
	if err != nil {
		return c, nil, err
	}
	if c.version == "" && bytes.Contains(help.Stdout, []byte("--validate")) {
		return dockerdChecks{validate: true}, nil, nil
	}
	if help.ExitCode == 127 {
		return c, []string{"dockerd was not found, so daemon.json could not be validated; only its JSON syntax was checked"}, nil
	}
	if help.ExitCode == 0 {
		c.known = knownDaemonKeys(help.Stdout)
	}
	if c.version == "" {
		c.version = "on this host"
		if out, err := h.Run(ctx, Cmd{Args: []string{"dockerd", "--version"}}); err == nil && out.ExitCode == 0 {
			// "Docker version 20.10.24+dfsg1, build 5d6db84"
			f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(string(out.Stdout)), "Docker version "))
			if len(f) > 0 {
				c.version = strings.TrimSuffix(f[0], ",")
			}
		}
	}
	checked := "only its JSON syntax was checked (dockerd --help listed no options)"
	if c.known != nil {
		checked = "its keys were checked against the options dockerd --help lists, its values only for their JSON syntax"
	}
	return c, []string{fmt.Sprintf("dockerd %s cannot validate daemon.json (dockerd --validate came with Docker 23); %s", c.version, checked)}, nil
}

// dockerMajor is the major version of a Docker release ("20.10.24+dfsg1",
// "24.0.9", "17.03.2-ce", "28.0.0-rc.1"); false when v does not start
// with one.
func dockerMajor(v string) (int, bool) {
	major, _, ok := strings.Cut(v, ".")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(major)
	return n, err == nil && n > 0
}
