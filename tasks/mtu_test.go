package tasks_test

import (
	"context"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

func TestMTUFromYAML(t *testing.T) {
	for _, tc := range []struct {
		yaml    string
		want    tasks.MTU
		checkOK bool
	}{
		{"mtu: auto", tasks.MTU{Auto: true}, true},
		{"mtu: 1450", tasks.MTU{Value: 1450}, true},
		{`mtu: "1360"`, tasks.MTU{Value: 1360}, true},
		{`mtu: ""`, tasks.MTU{}, true},
		{"mtu: null", tasks.MTU{}, true},
		{"other: 1", tasks.MTU{}, true},
		{"mtu: 9000", tasks.MTU{Value: 9000}, true},
		{"mtu: 68", tasks.MTU{Value: 68}, true},
		{"mtu: 67", tasks.MTU{Value: 67}, false},
		{"mtu: 65536", tasks.MTU{Value: 65536}, false},
		{"mtu: -1", tasks.MTU{Value: -1}, false},
	} {
		var v struct {
			MTU tasks.MTU `yaml:"mtu"`
		}
		if err := yaml.Unmarshal([]byte(tc.yaml), &v); err != nil {
			t.Errorf("%s: %v", tc.yaml, err)
			continue
		}
		if v.MTU != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.yaml, v.MTU, tc.want)
		}
		if err := v.MTU.Check(); (err == nil) != tc.checkOK {
			t.Errorf("%s: Check() = %v", tc.yaml, err)
		}
		if got := v.MTU.Managed(); got != (tc.want != tasks.MTU{}) {
			t.Errorf("%s: Managed() = %v", tc.yaml, got)
		}
	}
	// Not an MTU: kept for Check, which names the value.
	var v struct {
		MTU tasks.MTU `yaml:"mtu"`
	}
	if err := yaml.Unmarshal([]byte("mtu: jumbo"), &v); err != nil {
		t.Fatal(err)
	}
	if err := v.MTU.Check(); err == nil || !strings.Contains(err.Error(), `"jumbo" is not auto or a number`) {
		t.Errorf("Check() = %v", err)
	}
	if err := yaml.Unmarshal([]byte("mtu: [1450]"), &v); err == nil || !strings.Contains(err.Error(), "not a list") {
		t.Errorf("a list: %v", err)
	}
}

// The interface of the default route decides, whatever the others' MTUs;
// all of it is one round trip.
func TestUplinkMTU(t *testing.T) {
	h := tasktest.New()
	h.SetUplink("eth0", map[string]int{"lo": 65536, "docker0": 1500, "eth0": 1450})
	up, err := tasks.UplinkMTU(context.Background(), h)
	if err != nil || up != (tasks.Uplink{Interface: "eth0", MTU: 1450}) {
		t.Fatalf("UplinkMTU = %+v, %v", up, err)
	}
	if n := h.RoundTrips(); n != 1 {
		t.Errorf("%d round trips, want 1", n)
	}
	// The default route by an interface sysfs does not list fails, saying
	// which.
	h.SetUplink("eth1", map[string]int{"eth0": 1450})
	if _, err := tasks.UplinkMTU(context.Background(), h); err == nil || !strings.Contains(err.Error(), "/sys/class/net/eth1/mtu") {
		t.Errorf("missing interface: %v", err)
	}
}

func TestMTUResolve(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		mtu   tasks.MTU
		iface string
		up    int
		want  int
		trips int
	}{
		{"auto below 1500", tasks.MTU{Auto: true}, "eth0", 1450, 1450, 1},
		{"auto at 1500: none", tasks.MTU{Auto: true}, "eth0", 1500, 0, 1},
		{"auto on jumbo frames: none", tasks.MTU{Auto: true}, "eth0", 9000, 0, 1},
		{"auto without a default route: none", tasks.MTU{Auto: true}, "", 1450, 0, 1},
		{"a number overrides", tasks.MTU{Value: 1400}, "eth0", 1500, 1400, 0},
		{"a number above 1500", tasks.MTU{Value: 9000}, "eth0", 1450, 9000, 0},
		{"left out", tasks.MTU{}, "eth0", 1450, 0, 0},
	} {
		h := tasktest.New()
		h.SetUplink(tc.iface, map[string]int{"eth0": tc.up, "lo": 65536})
		got, err := tc.mtu.Resolve(ctx, h)
		if err != nil || got != tc.want {
			t.Errorf("%s: %d, %v; want %d", tc.name, got, err, tc.want)
		}
		if n := h.RoundTrips(); n != tc.trips {
			t.Errorf("%s: %d round trips, want %d", tc.name, n, tc.trips)
		}
	}
	// A host without the files (not Linux) has no default route to read.
	if got, err := (tasks.MTU{Auto: true}).Resolve(ctx, tasktest.New()); err != nil || got != 0 {
		t.Errorf("no /proc/net/route: %d, %v", got, err)
	}
}
