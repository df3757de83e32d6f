package playbooks

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/dindops/dindops/internal/strictyaml"
)

// BatchSize is one value of a play's serial: a number of hosts, or a
// percentage of the play's hosts.
type BatchSize struct {
	// Hosts is a number of hosts (when Percent is zero).
	Hosts int
	// Percent is a percentage of the play's hosts, 1 to 100.
	Percent int
}

func (b BatchSize) String() string {
	if b.Percent > 0 {
		return fmt.Sprintf("%d%%", b.Percent)
	}
	return strconv.Itoa(b.Hosts)
}

// of returns the batch size for a play of total hosts: a percentage is
// rounded down, and never less than one host (Ansible's rule).
func (b BatchSize) of(total int) int {
	if b.Percent > 0 {
		return max(1, total*b.Percent/100)
	}
	return b.Hosts
}

// Serial is a play's rolling batches: each value sizes one batch in turn,
// the last value repeating until every host has had its batch. Empty means
// one batch of every host.
type Serial []BatchSize

func (s Serial) String() string {
	parts := make([]string, len(s))
	for i, b := range s {
		parts[i] = b.String()
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// Batches returns the sizes of the batches that split total hosts, in order.
// For example [1, 50%] on 5 hosts gives 1, 2, 2; 30% on 10 hosts gives
// 3, 3, 3, 1.
func (s Serial) Batches(total int) []int {
	if total <= 0 {
		return nil
	}
	if len(s) == 0 {
		return []int{total}
	}
	var sizes []int
	left := total
	for i := 0; left > 0; i++ {
		n := s[min(i, len(s)-1)].of(total)
		n = min(n, left)
		sizes = append(sizes, n)
		left -= n
	}
	return sizes
}

// parseSerial reads serial: a number, a percentage ("30%"), or a list of
// them.
func parseSerial(file string, n *yaml.Node) (Serial, error) {
	if n.Kind == yaml.SequenceNode {
		if len(n.Content) == 0 {
			return nil, strictyaml.Errorf(file, n, "serial is an empty list; give batch sizes such as [1, 10%%, 100%%], or leave serial out")
		}
		var s Serial
		for _, c := range n.Content {
			b, err := parseBatchSize(file, c)
			if err != nil {
				return nil, err
			}
			s = append(s, b)
		}
		return s, nil
	}
	b, err := parseBatchSize(file, n)
	if err != nil {
		return nil, err
	}
	return Serial{b}, nil
}

func parseBatchSize(file string, n *yaml.Node) (BatchSize, error) {
	bad := func(why string) (BatchSize, error) {
		return BatchSize{}, strictyaml.Errorf(file, n, "serial: %s; give a number of hosts (3), a percentage (\"30%%\"), or a list ([1, 10%%, 100%%])", why)
	}
	if n.Kind != yaml.ScalarNode {
		return bad("a batch size must be a number or a percentage, got " + strictyaml.KindName(n))
	}
	v := strings.TrimSpace(n.Value)
	if p, ok := strings.CutSuffix(v, "%"); ok {
		pct, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return bad(fmt.Sprintf("%q is not a whole percentage", v))
		}
		if pct < 1 || pct > 100 {
			return bad(fmt.Sprintf("%q is not between 1%% and 100%%", v))
		}
		return BatchSize{Percent: pct}, nil
	}
	num, err := strconv.Atoi(v)
	if err != nil {
		return bad(fmt.Sprintf("%q is not a number", v))
	}
	if num < 1 {
		return bad(fmt.Sprintf("%d hosts per batch is not possible (leave serial out to run every host in one batch)", num))
	}
	return BatchSize{Hosts: num}, nil
}

// parseMaxFail reads max_fail_percentage: a number from 0 to 100.
func parseMaxFail(file string, n *yaml.Node) (*float64, error) {
	v := strings.TrimSuffix(strings.TrimSpace(n.Value), "%")
	f, err := strconv.ParseFloat(v, 64)
	if n.Kind != yaml.ScalarNode || err != nil || f < 0 || f > 100 {
		return nil, strictyaml.Errorf(file, n, "max_fail_percentage must be a number from 0 to 100 (a batch stops the rollout when MORE than this percentage of its hosts fail), got %q", n.Value)
	}
	return &f, nil
}

// parseTimeout reads a task's timeout: whole seconds (as Ansible's timeout)
// or a duration such as "90s" or "5m".
func parseTimeout(file string, n *yaml.Node) (time.Duration, error) {
	v := strings.TrimSpace(n.Value)
	var d time.Duration
	if secs, err := strconv.Atoi(v); err == nil {
		d = time.Duration(secs) * time.Second
	} else if pd, err := time.ParseDuration(v); err == nil {
		d = pd
	} else {
		return 0, strictyaml.Errorf(file, n, "timeout must be whole seconds (300) or a duration (\"5m\", \"90s\"), got %q", n.Value)
	}
	if n.Kind != yaml.ScalarNode || d <= 0 {
		return 0, strictyaml.Errorf(file, n, "timeout must be more than 0, got %q", n.Value)
	}
	return d, nil
}
