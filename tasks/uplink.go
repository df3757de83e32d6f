package tasks

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Uplink is the interface of a host's default route and its MTU.
type Uplink struct {
	// Interface is the network interface's name (eth0, ens3, bond0.12);
	// "" when the host has no default route.
	Interface string
	// MTU is the interface's MTU in bytes (/sys/class/net/IFACE/mtu).
	MTU int
}

// The files and the command UplinkMTU reads: the kernel's IPv4 and IPv6
// routing tables (proc(5): /proc/net/route, /proc/net/ipv6_route) and the
// MTU of every interface (sysfs-class-net: /sys/class/net/IFACE/mtu), one
// "PATH:VALUE" line each from grep -H.
const (
	routeV4File = "/proc/net/route"
	routeV6File = "/proc/net/ipv6_route"
)

var interfaceMTUsProbe = []string{"sh", "-c", "grep -H . /sys/class/net/*/mtu"}

// Route flags of linux/route.h and linux/ipv6_route.h.
const (
	rtfUp     = 0x0001 // RTF_UP: the route is usable
	rtfReject = 0x0200 // RTF_REJECT: an unreachable route ("lo" default of IPv6)
)

// UplinkMTU reads which interface h's default route leaves by and that
// interface's MTU, in one probe batch (UplinkProbes); see ParseUplink.
func UplinkMTU(ctx context.Context, h Host) (Uplink, error) {
	res, err := RunProbes(ctx, h, UplinkProbes()...)
	if err != nil {
		return Uplink{}, fmt.Errorf("reading the host's default route: %w", err)
	}
	return ParseUplink(res)
}

// UplinkProbes are the reads UplinkMTU makes: the two routing tables and
// the MTU of every interface. A task that reads other files as well puts
// them in its own batch and gives their results to ParseUplink.
func UplinkProbes() []Probe {
	return []Probe{ReadProbe(routeV4File), ReadProbe(routeV6File), RunProbe(interfaceMTUsProbe...)}
}

// ParseUplink reads the results of UplinkProbes, in their order. The IPv4
// default route wins; without one, IPv6's; among several, the one of the
// lowest metric (the one the kernel uses), the first listed on a tie. A
// host without a default route gives an Uplink with no Interface and no
// error. Errors: a probe's own, a routing table that does not parse, an
// interface whose MTU sysfs does not list.
func ParseUplink(res []ProbeResult) (Uplink, error) {
	if len(res) != 3 {
		return Uplink{}, fmt.Errorf("reading the host's default route: %d probe results, want 3", len(res))
	}
	for _, r := range res {
		if r.Err != nil {
			return Uplink{}, fmt.Errorf("reading the host's default route: %w", r.Err)
		}
	}
	var iface string
	var err error
	if res[0].Exists {
		if iface, err = defaultRouteV4(string(res[0].File.Content)); err != nil {
			return Uplink{}, fmt.Errorf("%s: %w", routeV4File, err)
		}
	}
	if iface == "" && res[1].Exists {
		if iface, err = defaultRouteV6(string(res[1].File.Content)); err != nil {
			return Uplink{}, fmt.Errorf("%s: %w", routeV6File, err)
		}
	}
	if iface == "" {
		return Uplink{}, nil
	}
	// grep exits 2 when a file went away under the glob (an interface
	// removed meanwhile): what it printed still counts.
	mtu, ok := interfaceMTUs(string(res[2].Output.Stdout))[iface]
	if !ok {
		why := LastLine(res[2].Output.Stderr)
		if why == "" {
			why = fmt.Sprintf("exit status %d", res[2].Output.ExitCode)
		}
		return Uplink{}, fmt.Errorf("the default route leaves by %s, whose MTU /sys/class/net/%s/mtu does not give (%s: %s)", iface, iface, ShellJoin(interfaceMTUsProbe), why)
	}
	return Uplink{Interface: iface, MTU: mtu}, nil
}

// routeTable is the layout of one of the kernel's routing tables in /proc
// (proc(5)): which columns hold what, and how a default route reads.
type routeTable struct {
	header bool // a header line comes first
	// columns a route's line has at least, and the index of each column
	// read.
	columns, iface, dst, prefix, metric, flags int
	// metricBase is the metric's base (flags are hex in both tables).
	metricBase int
	// anyDst and anyPrefix are the destination and prefix of a default
	// route.
	anyDst, anyPrefix string
}

// /proc/net/route: a header line, then one line per route: Iface
// Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT, the
// addresses and flags in hex, the metric in decimal. /proc/net/ipv6_route,
// no header: destination, prefix length, source, its prefix length, next
// hop, metric, refcount, use, flags, interface, all but the interface in
// hex.
var (
	routeV4 = routeTable{header: true, columns: 8, iface: 0, dst: 1, prefix: 7, metric: 6, flags: 3,
		metricBase: 10, anyDst: "00000000", anyPrefix: "00000000"}
	routeV6 = routeTable{columns: 10, iface: 9, dst: 0, prefix: 1, metric: 5, flags: 8,
		metricBase: 16, anyDst: strings.Repeat("0", 32), anyPrefix: "00"}
)

func defaultRouteV4(content string) (string, error) { return routeV4.defaultRoute(content) }
func defaultRouteV6(content string) (string, error) { return routeV6.defaultRoute(content) }

// defaultRoute returns the interface of the default route in the content
// of the table, or "" when there is none: the route to 0.0.0.0/0 (::/0)
// that is up and not a reject route (the kernel lists an unreachable ::/0
// on lo), of the lowest metric, the first listed on a tie.
func (t routeTable) defaultRoute(content string) (string, error) {
	lines := strings.Split(strings.TrimSpace(content), "\n")
	first := 0
	if t.header {
		if !strings.HasPrefix(strings.TrimSpace(lines[0]), "Iface") {
			return "", errors.New("no header line (Iface Destination ...)")
		}
		first = 1
	}
	best, bestMetric := "", uint64(math.MaxUint64)
	for i := first; i < len(lines); i++ {
		f := strings.Fields(lines[i])
		if len(f) == 0 {
			continue
		}
		if len(f) < t.columns {
			return "", fmt.Errorf("line %d: %d fields, want at least %d", i+1, len(f), t.columns)
		}
		flags, err1 := strconv.ParseUint(f[t.flags], 16, 32)
		metric, err2 := strconv.ParseUint(f[t.metric], t.metricBase, 32)
		if err := errors.Join(err1, err2); err != nil {
			return "", fmt.Errorf("line %d: %v", i+1, err)
		}
		if f[t.dst] != t.anyDst || f[t.prefix] != t.anyPrefix || flags&rtfUp == 0 || flags&rtfReject != 0 || f[t.iface] == "lo" {
			continue
		}
		if metric < bestMetric {
			best, bestMetric = f[t.iface], metric
		}
	}
	return best, nil
}

// interfaceMTUs reads grep -H's "/sys/class/net/IFACE/mtu:VALUE" lines
// into a map by interface. Interface names never hold "/" or ":" (Linux's
// dev_valid_name); lines that are not of this shape are skipped.
func interfaceMTUs(out string) map[string]int {
	m := map[string]int{}
	for _, l := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(l), "/sys/class/net/")
		if !ok {
			continue
		}
		name, val, ok := strings.Cut(rest, "/mtu:")
		if !ok || name == "" || strings.Contains(name, "/") {
			continue
		}
		if v, err := strconv.Atoi(strings.TrimSpace(val)); err == nil && v > 0 {
			m[name] = v
		}
	}
	return m
}
