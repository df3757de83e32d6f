package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"
)

// DockerDaemonConfig merges settings into docker's daemon configuration file
// (https://docs.docker.com/reference/cli/dockerd/#daemon-configuration-file).
//
//	tasks:
//	  - name: docker uses the overlay2 storage driver
//	    docker_daemon_config:
//	      settings: {storage-driver: overlay2}
//	    notify: restart docker
//
// remove lists keys to delete from the file (a key the file does not have
// is no change):
//
//	docker_daemon_config:
//	  settings: {storage-driver: overlay2}
//	  remove: [debug]
//
// Keys not named in settings or remove are kept with their JSON types and order; the
// file is rewritten only when a value differs, so a handler it notifies runs
// only then. A file that is not exactly one JSON object (a syntax error, two
// objects concatenated, duplicate keys) fails the task and is never
// overwritten (moby/moby#44905). When dockerd supports --validate (Docker 23
// and later), the new file is validated by dockerd before it replaces the old
// one. An older dockerd (Debian's 20.10) cannot validate it: then each key
// of the new file is checked against the options that dockerd --help lists
// (see dockerd_keys.go for how dockerd names them), and a key it does not
// know fails the plan with the nearest one it knows, since dockerd would
// refuse to start with it.
//
// Changing "storage-driver" away from the driver docker runs with hides the
// images and containers kept under the old driver (moby/moby#34112): plan
// counts them and the task fails unless allow_storage_driver_change is true.
// The driver docker runs with is what counts, not only the file: when the
// file already names the driver but docker still runs another one (the file
// was written and the restart that should have followed never ran), the
// task reports a change that writes nothing, so that the handler it notifies
// restarts docker.
//
// When the plan has changes, the task also reads where dockerd's flags come
// from: its running command line, and where its next start takes them
// (docker.service's ExecStart, its drop-ins and the variables it expands
// from Environment= and EnvironmentFile= under systemd; DOCKER_OPTS in
// /etc/default/docker and OPTIONS in /etc/sysconfig/docker for init
// scripts). dockerd refuses to start when a setting is given both as a
// flag and in the file, so such a file would take docker down at the next
// restart, and the plan fails instead, naming the key, the flag and the
// file it is in.
type DockerDaemonConfig struct {
	// Path of the file (default /etc/docker/daemon.json).
	Path string `yaml:"path"`
	// Settings are the keys to set, with daemon.json's own names and JSON
	// types.
	Settings map[string]any `yaml:"settings"`
	// Remove are top-level keys to delete from the file.
	Remove []string `yaml:"remove"`
	// AllowStorageDriverChange lets a storage-driver change go ahead although
	// existing images and containers would no longer be visible.
	AllowStorageDriverChange bool `yaml:"allow_storage_driver_change"`
}

// daemonConfigPayload is what Apply does: write content (validated with
// dockerd --validate when validate), or, when write is false, nothing: the
// file already is right and only the restart its handler does is needed;
// Apply then checks that the file still reads as it did (expect).
type daemonConfigPayload struct {
	write    bool
	content  []byte
	validate bool
	expect   []byte
}

func (d *DockerDaemonConfig) path() string {
	if d.Path == "" {
		return "/etc/docker/daemon.json"
	}
	return d.Path
}

// Validate implements Validator.
func (d *DockerDaemonConfig) Validate() error {
	if len(d.Settings) == 0 && len(d.Remove) == 0 {
		return FieldErrorf("settings", "give at least one daemon.json key, e.g. storage-driver: overlay2 (or keys to delete in remove)")
	}
	seen := map[string]bool{}
	for _, k := range d.Remove {
		switch {
		case strings.TrimSpace(k) == "":
			return FieldErrorf("remove", "an empty key")
		case seen[k]:
			return FieldErrorf("remove", "%q is listed twice", k)
		}
		if _, ok := d.Settings[k]; ok {
			return FieldErrorf("remove", "%q is also in settings: set it or remove it, not both", k)
		}
		seen[k] = true
	}
	for k, v := range d.Settings {
		if _, err := json.Marshal(jsonable(v)); err != nil {
			return FieldErrorf("settings."+k, "cannot be written as JSON: %v", err)
		}
	}
	return nil
}

// daemonBoolKeys are daemon.json keys whose value is a JSON boolean; a string
// "true" there is rejected by recent dockerd versions.
var daemonBoolKeys = map[string]bool{
	"debug": true, "experimental": true, "icc": true, "init": true, "ip-forward": true,
	"ip-masq": true, "ip6tables": true, "iptables": true, "ipv6": true, "live-restore": true,
	"no-new-privileges": true, "selinux-enabled": true, "userland-proxy": true, "tls": true, "tlsverify": true,
}

// Plan implements Task.
func (d *DockerDaemonConfig) Plan(ctx context.Context, h Host) ([]Change, error) {
	p := d.path()
	// One round trip on a converged host: the file and, at the same time,
	// the running driver from the Engine API.
	var info *system.Info
	var infoErr error
	var wg sync.WaitGroup
	if _, ok := d.Settings["storage-driver"].(string); ok {
		wg.Go(func() { info, infoErr = runningDaemon(ctx, h) })
	}
	cur, exists, err := ReadFileIfExists(ctx, h, p)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if infoErr != nil {
		return nil, infoErr
	}
	doc := &jsonObject{indent: "  "}
	if exists && len(bytes.TrimSpace(cur.Content)) > 0 {
		doc, err = parseJSONObject(cur.Content)
		if err != nil {
			return nil, fmt.Errorf("%s on the host is not valid: %v; fix or remove it by hand, dindops will not overwrite a file it cannot read", p, err)
		}
	}
	// The running dockerd wrote its pid where the file said when it started.
	pidfile := "/var/run/docker.pid"
	if raw, ok := doc.get("pidfile"); ok {
		var s string
		if json.Unmarshal(raw, &s) == nil && strings.HasPrefix(s, "/") {
			pidfile = s
		}
	}
	var warnings []string
	changedKeys := []string{}
	keys := make([]string, 0, len(d.Settings))
	for k := range d.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		want, _ := json.Marshal(jsonable(d.Settings[k]))
		if old, ok := doc.get(k); ok && jsonEqual(old, want) {
			continue
		}
		doc.set(k, want)
		changedKeys = append(changedKeys, k)
	}
	removedKeys := []string{}
	for _, k := range slices.Sorted(slices.Values(d.Remove)) {
		if doc.remove(k) {
			removedKeys = append(removedKeys, k)
		}
	}
	edited := len(changedKeys)+len(removedKeys) > 0
	for _, k := range doc.keys {
		if v, _ := doc.get(k); daemonBoolKeys[k] && (string(v) == `"true"` || string(v) == `"false"`) {
			warnings = append(warnings, fmt.Sprintf("%s: %q is the string %s, not a boolean; dockerd 23 and later refuse it (write %s without quotes)", p, k, v, strings.Trim(string(v), `"`)))
		}
	}
	// The storage driver docker runs with, whether or not the file changes:
	// a file already right is not enough while docker runs another driver.
	running := ""
	if sd, ok := d.Settings["storage-driver"].(string); ok {
		var w []string
		running, w, err = d.checkStorageDriver(info, sd)
		if err != nil {
			return nil, err
		}
		warnings = append(warnings, w...)
	}
	restart := running != "" && !slices.Contains(changedKeys, "storage-driver")
	if !edited && !restart {
		return nil, nil
	}
	content := doc.encode()
	if !edited {
		content = cur.Content
	}
	// The running dockerd's flags and whether dockerd can validate the new
	// file are independent reads: one round trip, not three.
	var checks dockerdChecks
	var vw []string
	var vErr error
	if edited {
		wg.Go(func() { checks, vw, vErr = dockerdCanCheck(ctx, h, info) })
	}
	w, err := checkFlagConflicts(ctx, h, pidfile, p, content, d.Settings)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if vErr != nil {
		return nil, vErr
	}
	if err := checkDaemonKeys(p, content, checks, d.Settings); err != nil {
		return nil, err
	}
	warnings = append(warnings, w...)
	restartNote := ""
	if restart {
		restartNote = fmt.Sprintf("docker runs %s; restart to use %s", running, d.Settings["storage-driver"])
	}
	if !edited {
		return []Change{{Action: Update, Resource: "file", Target: p, Summary: restartNote,
			Fields:   []Field{{Name: "storage-driver", Old: running + " (running)", New: d.Settings["storage-driver"].(string)}},
			Warnings: warnings, Payload: daemonConfigPayload{expect: cur.Content}}}, nil
	}
	warnings = append(warnings, vw...)
	var did []string
	if len(changedKeys) > 0 {
		did = append(did, "set "+strings.Join(changedKeys, ", "))
	}
	if len(removedKeys) > 0 {
		did = append(did, "remove "+strings.Join(removedKeys, ", "))
	}
	c := Change{Action: Update, Resource: "file", Target: p, Summary: strings.Join(did, "; "),
		Diff: UnifiedDiff(p, cur.Content, content), Warnings: warnings,
		Payload: daemonConfigPayload{write: true, content: content, validate: checks.validate}}
	if restart {
		c.Summary += "; " + restartNote
	}
	if !exists {
		c.Action = Create
	}
	return []Change{c}, nil
}

// checkStorageDriver compares the wanted driver with the one docker runs. It
// returns the running driver when it is another one (empty when it is the
// wanted one or docker does not answer), with a warning, or an error when
// the change would hide images and containers without consent.
func (d *DockerDaemonConfig) checkStorageDriver(info *system.Info, want string) (string, []string, error) {
	if info == nil {
		// Docker is not running or not installed: nothing is hidden by the
		// change, and the next start reads the file.
		return "", nil, nil
	}
	driver, images, containers := info.Driver, info.Images, info.Containers
	if driver == want {
		return "", nil, nil
	}
	if images == 0 && containers == 0 {
		return driver, nil, nil
	}
	msg := fmt.Sprintf("docker runs with storage driver %s; switching to %s hides its %d image(s) and %d container(s) (they stay on disk under %s but docker will not see them)", driver, want, images, containers, driver)
	if !d.AllowStorageDriverChange {
		return "", nil, fmt.Errorf("%s; set allow_storage_driver_change: true to go ahead", msg)
	}
	return driver, []string{msg}, nil
}

// runningDaemon returns what the running docker daemon reports of itself
// (GET /info: https://docs.docker.com/reference/api/engine/version/v1.41/#tag/System/operation/SystemInfo),
// or nil when no daemon answers (stopped, or not installed: nothing is
// hidden by a change of its configuration then, and its next start reads
// the file).
func runningDaemon(ctx context.Context, h Host) (*system.Info, error) {
	api, err := Docker(ctx, h)
	if err == nil {
		var res client.SystemInfoResult
		if res, err = api.Info(ctx, client.InfoOptions{}); err == nil {
			return &res.Info, nil
		}
	}
	if DockerUnreachable(err) || errors.Is(err, ErrNoDockerAPI) {
		return nil, nil
	}
	return nil, dockerErr("docker info", err)
}

// Apply implements Task.
func (d *DockerDaemonConfig) Apply(ctx context.Context, h Host, changes []Change) error {
	for _, c := range changes {
		p, ok := c.Payload.(daemonConfigPayload)
		if !ok {
			return fmt.Errorf("docker_daemon_config: unknown change")
		}
		if !p.write {
			// Nothing to write: the change is the restart the handler this
			// task notifies does. It must restart docker with the file the
			// plan saw.
			now, _, err := ReadFileIfExists(ctx, h, d.path())
			if err != nil {
				return err
			}
			if !bytes.Equal(now.Content, p.expect) {
				return fmt.Errorf("%s changed since the plan; run plan again", d.path())
			}
			continue
		}
		var validate []string
		if p.validate {
			validate = []string{"dockerd", "--validate", "--config-file", "%s"}
		}
		if _, err := Exec(ctx, h, "mkdir", "-p", "-m", "0755", pathDir(d.path())); err != nil {
			return err
		}
		// What docker starts with now is kept first, so that a service
		// task with restore: [this file] can put it back should docker
		// not come up with the new one (see config_backup.go).
		cur, exists, err := ReadFileIfExists(ctx, h, d.path())
		if err != nil {
			return err
		}
		if err := saveConfigBackup(ctx, h, d.path(), cur, exists, p.content); err != nil {
			return err
		}
		if err := h.WriteFile(ctx, d.path(), p.content, WriteOptions{Mode: 0o644, Owner: "root", Group: "root", Validate: validate}); err != nil {
			return err
		}
	}
	return nil
}
