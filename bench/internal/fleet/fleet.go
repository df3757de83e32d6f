// Package fleet starts, reads, resets and removes the local test fleets the
// benchmark runs on, through the project's own scripts in fixtures/fleet
// (see fixtures/fleet/README.md). It only ever touches fleets it names.
package fleet

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// Spec names one fleet and how to start it.
type Spec struct {
	// Repo is the root of the dindops checkout (holds fixtures/fleet).
	Repo string
	// Name is FLEET_NAME: containers, network and state directory.
	Name string
	// Size is FLEET_SIZE, the number of hosts.
	Size int
	// Dockerd is false for sshd-only hosts (FLEET_DOCKERD=0).
	Dockerd bool
	// Fresh recreates the hosts (FLEET_FRESH=1).
	Fresh bool
}

// StateDir is where up.sh writes the fleet's state.
func (s Spec) StateDir() string {
	return filepath.Join(s.Repo, "fixtures", "fleet", ".state-"+s.Name)
}

func (s Spec) env() []string {
	env := append(os.Environ(), "FLEET_NAME="+s.Name, fmt.Sprintf("FLEET_SIZE=%d", s.Size),
		"DINDOPS_FLEET_STATE="+s.StateDir())
	if !s.Dockerd {
		env = append(env, "FLEET_DOCKERD=0")
	}
	if s.Fresh {
		env = append(env, "FLEET_FRESH=1")
	}
	return env
}

// Up runs fixtures/fleet/up.sh for the spec (idempotent: a fleet of another
// size is resized) and loads its state. The script's messages go to log.
func Up(ctx context.Context, s Spec, log io.Writer) (*Fleet, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(s.Repo, "fixtures", "fleet", "up.sh"))
	cmd.Dir = s.Repo
	cmd.Env = s.env()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("fixtures/fleet/up.sh (FLEET_NAME=%s FLEET_SIZE=%d): %w", s.Name, s.Size, err)
	}
	return Load(s.StateDir())
}

// Down removes the fleet (fixtures/fleet/down.sh; the images stay).
func Down(ctx context.Context, s Spec, log io.Writer) error {
	cmd := exec.CommandContext(ctx, filepath.Join(s.Repo, "fixtures", "fleet", "down.sh"))
	cmd.Dir = s.Repo
	cmd.Env = s.env()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("fixtures/fleet/down.sh (FLEET_NAME=%s): %w", s.Name, err)
	}
	return nil
}

// Host is one build server of the fleet.
type Host struct {
	Name      string `json:"name"`
	Address   string `json:"address"`
	Port      int    `json:"port"`
	Container string `json:"container"`
	// HostKeys are its public host keys, "type base64" each, from the
	// fleet's known_hosts.
	HostKeys []string `json:"-"`
}

// Fleet is the state up.sh wrote (fleet.json, hosts.yml, known_hosts).
type Fleet struct {
	Dir               string `json:"-"`
	GitLabURL         string `json:"gitlab_url"`
	RegistrationToken string `json:"gitlab_registration_token"`
	IdentityFile      string `json:"identity_file"` // absolute after Load
	KnownHosts        string `json:"known_hosts"`   // absolute after Load
	Inventory         string `json:"inventory"`     // absolute after Load
	Hosts             []Host `json:"hosts"`
	// Vars are the inventory's "all" vars (the fleet's overrides of the
	// shipped playbook's defaults, e.g. for the dind container), in order.
	Vars *yaml.Node `json:"-"`
}

// Load reads a fleet's state directory.
func Load(dir string) (*Fleet, error) {
	b, err := os.ReadFile(filepath.Join(dir, "fleet.json"))
	if err != nil {
		return nil, fmt.Errorf("fleet state: %w", err)
	}
	f := &Fleet{Dir: dir}
	if err := json.Unmarshal(b, f); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "fleet.json"), err)
	}
	for _, p := range []*string{&f.IdentityFile, &f.KnownHosts, &f.Inventory} {
		if !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	if err := f.loadHostKeys(); err != nil {
		return nil, err
	}
	if err := f.loadVars(); err != nil {
		return nil, err
	}
	return f, nil
}

// loadHostKeys reads known_hosts lines "NAME,IP type key".
func (f *Fleet) loadHostKeys() error {
	file, err := os.Open(f.KnownHosts)
	if err != nil {
		return fmt.Errorf("fleet state: %w", err)
	}
	defer file.Close()
	keys := map[string][]string{}
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		for _, who := range strings.Split(fields[0], ",") {
			keys[who] = append(keys[who], fields[1]+" "+fields[2])
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", f.KnownHosts, err)
	}
	for i := range f.Hosts {
		f.Hosts[i].HostKeys = keys[f.Hosts[i].Name]
		if len(f.Hosts[i].HostKeys) == 0 {
			return fmt.Errorf("%s: no host key for %s", f.KnownHosts, f.Hosts[i].Name)
		}
	}
	return nil
}

// loadVars keeps the "all.vars" mapping of hosts.yml as a YAML node, so that
// the inventories written for both tools carry the same values.
func (f *Fleet) loadVars() error {
	b, err := os.ReadFile(f.Inventory)
	if err != nil {
		return fmt.Errorf("fleet state: %w", err)
	}
	var inv struct {
		All struct {
			Vars yaml.Node `yaml:"vars"`
		} `yaml:"all"`
	}
	if err := yaml.Unmarshal(b, &inv); err != nil {
		return fmt.Errorf("%s: %w", f.Inventory, err)
	}
	if inv.All.Vars.Kind != yaml.MappingNode {
		return fmt.Errorf("%s: all.vars is not a mapping", f.Inventory)
	}
	f.Vars = &inv.All.Vars
	return nil
}

// Exec runs a shell script in every host container with `docker exec` (a
// side channel: not timed, not seen by the tools), a few at a time, and
// returns the first failure.
func (f *Fleet) Exec(ctx context.Context, script string) error {
	const parallel = 8
	sem := make(chan struct{}, parallel)
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	for _, h := range f.Hosts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var out bytes.Buffer
			cmd := exec.CommandContext(ctx, "docker", "exec", h.Container, "sh", "-euc", script)
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("docker exec %s: %w: %s", h.Container, err, strings.TrimSpace(out.String()))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}
