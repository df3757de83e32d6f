package tasktest

// The daemon's handling of a create request's security settings.

import (
	"fmt"
	"strconv"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
)

// checkSecurityOpts refuses the options the daemon refuses at create, with
// its message (moby daemon/daemon_unix.go parseSecurityOpt): it knows
// label, apparmor, seccomp, no-new-privileges and writable-cgroups, as
// key=value or the legacy key:value; systempaths=unconfined is for the
// client to turn into empty MaskedPaths and ReadonlyPaths, the daemon
// refuses it.
func checkSecurityOpts(opts []string) error {
	for _, o := range opts {
		switch o {
		case "no-new-privileges", "writable-cgroups", "disable":
			continue
		}
		sep := "="
		if !strings.Contains(o, "=") {
			sep = ":"
		}
		k, v, ok := strings.Cut(o, sep)
		if !ok {
			return cerrdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid --security-opt 1: %q", o))
		}
		switch k {
		case "label", "apparmor", "seccomp":
		case "no-new-privileges", "writable-cgroups":
			if _, err := strconv.ParseBool(v); err != nil {
				return cerrdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid --security-opt 2: %q", o))
			}
		default:
			return cerrdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid --security-opt 2: %q", o))
		}
	}
	return nil
}

// defaultSystemPaths gives a container that is not privileged docker's
// default masked and read-only paths when the request has none (null), as
// the daemon does (moby daemon/create_unix.go, oci/defaults.go); empty
// lists (systempaths=unconfined) are kept.
func defaultSystemPaths(hc *container.HostConfig) {
	if hc.Privileged {
		return
	}
	if hc.MaskedPaths == nil {
		hc.MaskedPaths = []string{"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
			"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"}
	}
	if hc.ReadonlyPaths == nil {
		hc.ReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
	}
}
