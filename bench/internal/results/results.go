// Package results holds the benchmark's measurements (one record per run),
// saves and loads them as JSON, and summarises them: medians, ranges and
// ratios per group of equal runs.
package results

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/dindops/dindops/bench/internal/machine"
	"github.com/dindops/dindops/bench/internal/measure"
)

// Key identifies a group of repeated runs.
type Key struct {
	Scenario string `json:"scenario"` // engine, docker
	Net      string `json:"net"`      // loopback, or the added delay ("+25ms")
	Hosts    int    `json:"hosts"`
	Phase    string `json:"phase"` // plan, first, noop
	Tool     string `json:"tool"`
}

// Run is one measured run.
type Run struct {
	Key
	Rep int `json:"rep"`
	measure.Sample
	// Changed counts changed (or to-change) task results over all hosts.
	Changed int `json:"changed"`
	// Commands, SFTP and API are the largest per-host round-trip counts:
	// remote commands, SFTP requests and Docker Engine API requests
	// (dindops from its -v output; the floor issues the same;
	// floor-physical one command). Docker is the largest per-host count
	// of dindops's commands that were the docker program (dial-stdio
	// sessions included).
	Commands int `json:"commands,omitempty"`
	SFTP     int `json:"sftp,omitempty"`
	API      int `json:"api,omitempty"`
	Docker   int `json:"docker,omitempty"`
}

// Results is a whole benchmark.
type Results struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Invocation is the benchmark's own command line.
	Invocation string       `json:"invocation"`
	Machine    machine.Info `json:"machine"`
	// Commands are the exact command lines of each tool, by tool.
	Commands map[string][]string `json:"commands"`
	// AnsibleConfigs are the ansible.cfg files, by setting ("N" stands for
	// the number of hosts).
	AnsibleConfigs map[string]string `json:"ansible_configs"`
	Note           string            `json:"note,omitempty"`
	Runs           []Run             `json:"runs"`
}

// Save writes r as indented JSON.
func (r *Results) Save(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Load reads what Save wrote.
func Load(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// Summary is a group of runs reduced to what the tables show.
type Summary struct {
	Key
	Runs                   int
	Wall, WallMin, WallMax time.Duration // median, min, max
	CPU                    time.Duration // median user+sys
	MaxRSS, TreeRSS        int64         // largest over the runs, bytes
	Commands, SFTP, API    int           // per host (largest), dindops and the floors
	Docker                 int           // docker commands per host (largest), dindops
	ChangedMin, ChangedMax int
	WallSamples            []time.Duration
	CPUSamples             []time.Duration
}

// Summarise groups runs by Key, keeping the order of first appearance.
func Summarise(runs []Run) []Summary {
	var keys []Key
	groups := map[Key][]Run{}
	for _, r := range runs {
		if _, ok := groups[r.Key]; !ok {
			keys = append(keys, r.Key)
		}
		groups[r.Key] = append(groups[r.Key], r)
	}
	out := make([]Summary, 0, len(keys))
	for _, k := range keys {
		g := groups[k]
		s := Summary{Key: k, Runs: len(g), ChangedMin: g[0].Changed, ChangedMax: g[0].Changed}
		for _, r := range g {
			s.WallSamples = append(s.WallSamples, r.Wall)
			s.CPUSamples = append(s.CPUSamples, r.CPU())
			s.MaxRSS = max(s.MaxRSS, r.MaxRSS)
			s.TreeRSS = max(s.TreeRSS, r.TreeRSS)
			s.Commands = max(s.Commands, r.Commands)
			s.SFTP = max(s.SFTP, r.SFTP)
			s.API = max(s.API, r.API)
			s.Docker = max(s.Docker, r.Docker)
			s.ChangedMin = min(s.ChangedMin, r.Changed)
			s.ChangedMax = max(s.ChangedMax, r.Changed)
		}
		s.Wall, s.WallMin, s.WallMax = Median(s.WallSamples)
		s.CPU, _, _ = Median(s.CPUSamples)
		out = append(out, s)
	}
	return out
}

// Median returns the median (the mean of the middle two for an even count),
// the minimum and the maximum.
func Median(d []time.Duration) (med, lo, hi time.Duration) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	n := len(s)
	med = s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return med, s[0], s[n-1]
}

// Find returns the summary of a key.
func Find(sums []Summary, k Key) (Summary, bool) {
	for _, s := range sums {
		if s.Key == k {
			return s, true
		}
	}
	return Summary{}, false
}
