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

// dockerdValidates reports whether dockerd can check a configuration file
// (dockerd --validate, which came with Docker 23.0:
// https://docs.docker.com/engine/release-notes/23.0/), and if not, a
// warning saying so. The running daemon's version (info; nil when none
// answered) decides, so the plan starts no dockerd, a heavy program, on the
// host; only without a running daemon, or with a version it cannot read,
// is the installed dockerd's --help asked. (A dockerd upgraded but not yet
// restarted is taken for the version that runs: its file is then checked
// for its JSON syntax only, as the warning says.)
func dockerdValidates(ctx context.Context, h Host, info *system.Info) (bool, []string, error) {
	cannot := func(version string) []string {
		return []string{fmt.Sprintf("dockerd %s cannot validate daemon.json (dockerd --validate came with Docker 23); only its JSON syntax was checked", version)}
	}
	if info != nil {
		if major, ok := dockerMajor(info.ServerVersion); ok {
			if major >= 23 {
				return true, nil, nil
			}
			return false, cannot(info.ServerVersion), nil
		}
	}
	help, err := h.Run(ctx, Cmd{Args: []string{"dockerd", "--help"}})
	if err != nil {
		return false, nil, err
	}
	if bytes.Contains(help.Stdout, []byte("--validate")) {
		return true, nil, nil
	}
	if help.ExitCode == 127 {
		return false, []string{"dockerd was not found, so daemon.json could not be validated; only its JSON syntax was checked"}, nil
	}
	version := "on this host"
	if out, err := h.Run(ctx, Cmd{Args: []string{"dockerd", "--version"}}); err == nil && out.ExitCode == 0 {
		// "Docker version 20.10.24+dfsg1, build 5d6db84"
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(string(out.Stdout)), "Docker version "))
		if len(f) > 0 {
			version = strings.TrimSuffix(f[0], ",")
		}
	}
	return false, cannot(version), nil
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
