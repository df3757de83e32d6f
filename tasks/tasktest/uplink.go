package tasktest

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/dindops/dindops/tasks"
)

// SetUplink gives h network interfaces as Linux shows them: the MTU of
// each in /sys/class/net/NAME/mtu (those of an earlier call removed), an
// IPv4 default route by iface in /proc/net/route (none when iface is ""),
// a loopback-only /proc/net/ipv6_route, and the shell command of
// tasks.UplinkProbes that lists the MTUs (grep -H over the glob).
// Another "sh" command goes to the handler installed before, if any.
func (h *Host) SetUplink(iface string, mtus map[string]int) {
	h.mu.Lock()
	for p := range h.files {
		if strings.HasPrefix(p, "/sys/class/net/") {
			delete(h.files, p)
		}
	}
	names := make([]string, 0, len(mtus))
	for n := range mtus {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		h.setFileLocked("/sys/class/net/"+n+"/mtu", tasks.RemoteFile{Content: fmt.Appendf(nil, "%d\n", mtus[n]), Mode: 0o644, Owner: "root", Group: "root"})
	}
	route := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	for _, n := range names {
		if n != "lo" {
			// The route of the interface's own subnet: never the default.
			route += n + "\t0096A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
		}
	}
	if iface != "" {
		route += iface + "\t00000000\t0196A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
	}
	h.setFileLocked("/proc/net/route", tasks.RemoteFile{Content: []byte(route), Mode: 0o444, Owner: "root", Group: "root"})
	h.setFileLocked("/proc/net/ipv6_route", tasks.RemoteFile{Content: []byte(
		"00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo\n" +
			"00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n"),
		Mode: 0o444, Owner: "root", Group: "root"})
	prev := h.handlers["sh"]
	list := tasks.UplinkProbes()[2].Args
	h.handlers["sh"] = func(h *Host, args []string, stdin []byte) tasks.Output {
		if !slices.Equal(args, list) {
			if prev != nil {
				return prev(h, args, stdin)
			}
			return tasks.Output{ExitCode: 127, Stderr: []byte("sh: 1: not found\n")}
		}
		var out strings.Builder
		for _, p := range h.Paths() {
			if m, _ := path.Match("/sys/class/net/*/mtu", p); m {
				f, _ := h.File(p)
				fmt.Fprintf(&out, "%s:%s", p, f.Content)
			}
		}
		return tasks.Output{Stdout: []byte(out.String())}
	}
	h.mu.Unlock()
}
