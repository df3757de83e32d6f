package tasks

import (
	"reflect"
	"testing"
)

// Routing tables as Linux prints them (the header's "Gateway " and the
// padding of each line included).
const (
	routeV4Sample = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT                                                       \n" +
		"ens3\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0                                                                               \n" +
		"ens3\t0000000A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0                                                                               \n" +
		"wg0\t00000000\t00000000\t0001\t0\t0\t50\t00000000\t0\t0\t0                                                                               \n" +
		"docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0                                                                               \n"
	routeV6Sample = "00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo\n" +
		"fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     ens3\n" +
		"00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00450003     ens3\n" +
		"00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n"
)

func TestDefaultRouteV4(t *testing.T) {
	for _, tc := range []struct {
		name, content, want string
	}{
		{"lowest metric wins", routeV4Sample, "wg0"},
		{"one default", "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\neth0\t00000000\t010011AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n", "eth0"},
		{"first on a tie", "Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT\nb 00000000 01 0003 0 0 5 00000000 0 0 0\na 00000000 01 0003 0 0 5 00000000 0 0 0\n", "b"},
		// A route that is down (no RTF_UP) or a reject route is not used.
		{"down and reject", "Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT\nx 00000000 01 0002 0 0 0 00000000 0 0 0\ny 00000000 00 0201 0 0 0 00000000 0 0 0\n", ""},
		{"no default", "Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT\neth0 0000000A 00000000 0001 0 0 0 00FFFFFF 0 0 0\n", ""},
		{"header only", "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n", ""},
	} {
		got, err := defaultRouteV4(tc.content)
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "eth0 00000000\n", "Iface Destination\neth0 00000000 01 zz 0 0 0 00000000\n", "Iface Destination\neth0 00000000 01\n"} {
		if got, err := defaultRouteV4(bad); err == nil {
			t.Errorf("%q: %q, want an error", bad, got)
		}
	}
}

func TestDefaultRouteV6(t *testing.T) {
	for _, tc := range []struct {
		name, content, want string
	}{
		// lo's unreachable ::/0 (RTF_REJECT) is no default route.
		{"gateway route", routeV6Sample, "ens3"},
		{"only lo's reject route", "00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n", ""},
		// A default route that is down is not used.
		{"down", "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00450002     ens3\n", ""},
		{"empty", "", ""},
	} {
		got, err := defaultRouteV6(tc.content)
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	if got, err := defaultRouteV6("00000000000000000000000000000000 00 0000\n"); err == nil {
		t.Errorf("short line: %q, want an error", got)
	}
}

func TestInterfaceMTUs(t *testing.T) {
	out := "/sys/class/net/docker0/mtu:1500\n/sys/class/net/eth0/mtu:1450\n/sys/class/net/lo/mtu:65536\n" +
		"grep: /sys/class/net/veth1/mtu: No such file or directory\n/sys/class/net/bad/mtu:x\n/sys/class/net/a/b/mtu:1\n\n"
	want := map[string]int{"docker0": 1500, "eth0": 1450, "lo": 65536}
	if got := interfaceMTUs(out); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
