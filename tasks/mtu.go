package tasks

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MTU is a task's setting of a network MTU, in bytes: left out (or ""),
// "auto", or a number.
//
//   - Left out, the task does not manage the MTU: docker's and
//     gitlab-runner's defaults (1500) apply, and an MTU set by other means
//     is left alone.
//   - "auto" is the MTU of the host's default-route interface (UplinkMTU)
//     when it is below DefaultMTU, and no MTU setting at all when it is not
//     (or when the host has no default route): on a 1500 network nothing
//     is set, and an MTU set before is removed.
//   - A number is that MTU, always, from MinMTU to MaxMTU.
//
// Written in YAML as auto, a number, or a number in a string ("1450", as
// -e network_mtu=1450 or a template may give it).
type MTU struct {
	// Auto is "auto".
	Auto bool
	// Value is the number given; 0 when Auto or left out.
	Value int
	// invalid is a value that is neither, kept for Check to name.
	invalid string
}

// The MTUs MTU knows. DefaultMTU is what docker gives a bridge network and
// its veth interfaces, and dockerd's default bridge, when no MTU is set
// (https://docs.docker.com/engine/network/drivers/bridge/#options); MinMTU
// is the smallest MTU Linux takes for an Ethernet device (ETH_MIN_MTU),
// MaxMTU the largest any link takes (IP_MAX_MTU).
const (
	DefaultMTU = 1500
	MinMTU     = 68
	MaxMTU     = 65535
)

// UnmarshalYAML implements yaml.Unmarshaler. A scalar that is not an MTU
// setting is kept for Check, so the error names the task's option.
func (m *MTU) UnmarshalYAML(n *yaml.Node) error {
	*m = MTU{}
	switch {
	case n.Kind != yaml.ScalarNode:
		what := "a list"
		if n.Kind == yaml.MappingNode {
			what = "a mapping"
		}
		return fmt.Errorf("line %d: an MTU is auto or a number of bytes such as 1450, not %s", n.Line, what)
	case n.Tag == "!!null":
		return nil
	}
	v, err := ParseMTU(n.Value)
	if err != nil {
		v.invalid = n.Value
	}
	*m = v
	return nil
}

// ParseMTU reads an MTU setting as YAML or -e gives it: "" (not managed),
// "auto", or a decimal number. The range is checked by Check.
func ParseMTU(s string) (MTU, error) {
	switch s = strings.TrimSpace(s); s {
	case "":
		return MTU{}, nil
	case "auto":
		return MTU{Auto: true}, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return MTU{}, fmt.Errorf("%q is not auto or a number of bytes such as 1450", s)
	}
	return MTU{Value: v}, nil
}

// Managed reports whether the setting was given (auto or a number).
func (m MTU) Managed() bool { return m.Auto || m.Value != 0 }

// String is the setting as written: "auto", the number, or "".
func (m MTU) String() string {
	switch {
	case m.Auto:
		return "auto"
	case m.Value != 0:
		return strconv.Itoa(m.Value)
	}
	return ""
}

// Check returns an error when the value is neither auto nor a number, or
// a number out of MinMTU..MaxMTU; tasks wrap it in a *FieldError naming
// their option.
func (m MTU) Check() error {
	if m.invalid != "" {
		_, err := ParseMTU(m.invalid)
		return err
	}
	if !m.Auto && m.Value != 0 && (m.Value < MinMTU || m.Value > MaxMTU) {
		return fmt.Errorf("%d is not an MTU: give a number of bytes from %d to %d, such as 1450, or auto", m.Value, MinMTU, MaxMTU)
	}
	return nil
}

// Resolve returns the MTU to set on h: the number given; for auto, the
// MTU of h's default-route interface when it is below DefaultMTU (one
// probe batch, see UplinkMTU); 0 when none is to be set (left out, or auto
// on a host whose uplink takes DefaultMTU or more, or has no default
// route). Errors: those of UplinkMTU.
func (m MTU) Resolve(ctx context.Context, h Host) (int, error) {
	var res []ProbeResult
	if p := m.Probes(); len(p) > 0 {
		var err error
		if res, err = RunProbes(ctx, h, p...); err != nil {
			return 0, fmt.Errorf("auto MTU: reading the host's default route: %w", err)
		}
	}
	return m.ResolveFrom(res)
}

// Probes are what Resolve reads on the host: UplinkProbes for auto,
// nothing else. A task that reads other files as well puts these in its
// own batch and gives their results to ResolveFrom.
func (m MTU) Probes() []Probe {
	if !m.Auto {
		return nil
	}
	return UplinkProbes()
}

// ResolveFrom is Resolve with the results of Probes, in their order.
func (m MTU) ResolveFrom(res []ProbeResult) (int, error) {
	if !m.Auto {
		return m.Value, nil
	}
	up, err := ParseUplink(res)
	if err != nil {
		return 0, fmt.Errorf("auto MTU: %w", err)
	}
	if up.Interface == "" || up.MTU >= DefaultMTU {
		return 0, nil
	}
	return up.MTU, nil
}
