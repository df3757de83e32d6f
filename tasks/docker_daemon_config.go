package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"reflect"
	"slices"
	"sort"
	"strconv"
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
// Keys not named in settings are kept with their JSON types and order; the
// file is rewritten only when a value differs, so a handler it notifies runs
// only then. A file that is not exactly one JSON object (a syntax error, two
// objects concatenated, duplicate keys) fails the task and is never
// overwritten (moby/moby#44905). When dockerd supports --validate (Docker 23
// and later), the new file is validated by dockerd before it replaces the old
// one.
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
// When the plan has changes, the task also reads the running dockerd's
// command line: dockerd refuses to start when a setting is given both as a
// flag (DOCKER_OPTS in /etc/default/docker, a systemd drop-in) and in the
// file, so such a file would take docker down at the next restart, and the
// plan fails instead, naming the key and the flag.
type DockerDaemonConfig struct {
	// Path of the file (default /etc/docker/daemon.json).
	Path string `yaml:"path"`
	// Settings are the keys to set, with daemon.json's own names and JSON
	// types.
	Settings map[string]any `yaml:"settings"`
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
	if len(d.Settings) == 0 {
		return FieldErrorf("settings", "give at least one daemon.json key, e.g. storage-driver: overlay2")
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
	if len(changedKeys) == 0 && !restart {
		return nil, nil
	}
	content := doc.encode()
	if len(changedKeys) == 0 {
		content = cur.Content
	}
	// The running dockerd's flags and whether dockerd can validate the new
	// file are independent reads: one round trip, not three.
	var validate bool
	var vw []string
	var vErr error
	if len(changedKeys) > 0 {
		wg.Go(func() { validate, vw, vErr = dockerdValidates(ctx, h, info) })
	}
	w, err := checkFlagConflicts(ctx, h, pidfile, p, content, d.Settings)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if vErr != nil {
		return nil, vErr
	}
	warnings = append(warnings, w...)
	restartNote := ""
	if restart {
		restartNote = fmt.Sprintf("docker runs %s; restart to use %s", running, d.Settings["storage-driver"])
	}
	if len(changedKeys) == 0 {
		return []Change{{Action: Update, Resource: "file", Target: p, Summary: restartNote,
			Fields:   []Field{{Name: "storage-driver", Old: running + " (running)", New: d.Settings["storage-driver"].(string)}},
			Warnings: warnings, Payload: daemonConfigPayload{expect: cur.Content}}}, nil
	}
	warnings = append(warnings, vw...)
	c := Change{Action: Update, Resource: "file", Target: p, Summary: "set " + strings.Join(changedKeys, ", "),
		Diff: UnifiedDiff(p, cur.Content, content), Warnings: warnings,
		Payload: daemonConfigPayload{write: true, content: content, validate: validate}}
	if restart {
		c.Summary += "; " + restartNote
	}
	if !exists {
		c.Action = Create
	}
	return []Change{c}, nil
}

// dockerdValidates reports whether dockerd can check a configuration file
// (dockerd --validate, which came with Docker 23.0:
// https://docs.docker.com/engine/release-notes/23.0/), and if not, a
// warning saying so. The running daemon's version (info; nil when none
// answered) decides, so the plan starts no dockerd, a heavy program, on the
// host; only without a running daemon, or with a version it cannot read,
// is the installed dockerd's --help asked. (A dockerd upgraded but not yet
// restarted is taken for the version that runs: its file is then checked
// for its JSON syntax only, as the warning says.)
func dockerdValidates(ctx context.Context, h Host, info *system.Info) (bool, []string, error) {
	cannot := func(version string) []string {
		return []string{fmt.Sprintf("dockerd %s cannot validate daemon.json (dockerd --validate came with Docker 23); only its JSON syntax was checked", version)}
	}
	if info != nil {
		if major, ok := dockerMajor(info.ServerVersion); ok {
			if major >= 23 {
				return true, nil, nil
			}
			return false, cannot(info.ServerVersion), nil
		}
	}
	help, err := h.Run(ctx, Cmd{Args: []string{"dockerd", "--help"}})
	if err != nil {
		return false, nil, err
	}
	if bytes.Contains(help.Stdout, []byte("--validate")) {
		return true, nil, nil
	}
	if help.ExitCode == 127 {
		return false, []string{"dockerd was not found, so daemon.json could not be validated; only its JSON syntax was checked"}, nil
	}
	version := "on this host"
	if out, err := h.Run(ctx, Cmd{Args: []string{"dockerd", "--version"}}); err == nil && out.ExitCode == 0 {
		// "Docker version 20.10.24+dfsg1, build 5d6db84"
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(string(out.Stdout)), "Docker version "))
		if len(f) > 0 {
			version = strings.TrimSuffix(f[0], ",")
		}
	}
	return false, cannot(version), nil
}

// dockerMajor is the major version of a Docker release ("20.10.24+dfsg1",
// "24.0.9", "17.03.2-ce", "28.0.0-rc.1"); false when v does not start
// with one.
func dockerMajor(v string) (int, bool) {
	major, _, ok := strings.Cut(v, ".")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(major)
	return n, err == nil && n > 0
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
		if err := h.WriteFile(ctx, d.path(), p.content, WriteOptions{Mode: 0o644, Owner: "root", Group: "root", Validate: validate}); err != nil {
			return err
		}
	}
	return nil
}

// jsonObject is a JSON object that keeps its keys' order and its values'
// exact text, so a merge changes only what it must.
type jsonObject struct {
	keys    []string
	values  map[string]json.RawMessage
	touched map[string]bool // values set by dindops, formatted on encode
	indent  string
}

func parseJSONObject(b []byte) (*jsonObject, error) {
	if err := CheckJSON(b); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("the top-level value is not a JSON object")
	}
	o := &jsonObject{values: map[string]json.RawMessage{}, indent: detectIndent(b)}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k := kt.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		if _, dup := o.values[k]; dup {
			return nil, fmt.Errorf("key %q appears twice", k)
		}
		o.keys = append(o.keys, k)
		o.values[k] = raw
	}
	if _, err := dec.Token(); err != nil && err != io.EOF {
		return nil, err
	}
	return o, nil
}

func detectIndent(b []byte) string {
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimLeft(line, " \t")
		if strings.HasPrefix(trimmed, `"`) && len(trimmed) < len(line) {
			return line[:len(line)-len(trimmed)]
		}
	}
	return "  "
}

func (o *jsonObject) get(k string) (json.RawMessage, bool) {
	v, ok := o.values[k]
	return v, ok
}

func (o *jsonObject) set(k string, v json.RawMessage) {
	if o.values == nil {
		o.values = map[string]json.RawMessage{}
	}
	if _, ok := o.values[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.values[k] = v
	if o.touched == nil {
		o.touched = map[string]bool{}
	}
	o.touched[k] = true
}

func (o *jsonObject) encode() []byte {
	var b bytes.Buffer
	b.WriteString("{\n")
	for i, k := range o.keys {
		key, _ := json.Marshal(k)
		// Values already in the file keep their exact text.
		var val bytes.Buffer
		if !o.touched[k] || json.Indent(&val, o.values[k], o.indent, o.indent) != nil {
			val.Reset()
			val.Write(o.values[k])
		}
		fmt.Fprintf(&b, "%s%s: %s", o.indent, key, val.Bytes())
		if i < len(o.keys)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("}\n")
	return b.Bytes()
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// jsonable converts YAML-decoded values (map[string]any, []any, ints) to
// values encoding/json accepts, recursively.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonable(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = jsonable(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonable(e)
		}
		return out
	}
	return v
}

func pathDir(p string) string {
	if i := strings.LastIndexByte(p, '/'); i > 0 {
		return p[:i]
	}
	return "/"
}

// How dockerd tells a setting given twice (moby daemon/config: the flags of
// daemon/command, findConfigurationConflicts): a flag and a daemon.json key
// are the same setting when the key is the flag's long name, except for the
// flags that collect a list or a map, whose key has its own, mostly plural,
// name. Nested objects in the file count by their own keys ("proxies":
// {"http-proxy": ...} is http-proxy), except for the values that are maps
// themselves (dockerdFlatKeys). Runtimes from both places are merged, never
// a conflict.
var (
	dockerdFlagKeys = map[string][]string{
		"host": {"hosts"}, "label": {"labels"}, "registry-mirror": {"registry-mirrors"},
		"insecure-registry": {"insecure-registries"}, "storage-opt": {"storage-opts"},
		"authorization-plugin": {"authorization-plugins"}, "exec-opt": {"exec-opts"}, "dns-opt": {"dns-opts"},
		"log-opt": {"log-opts"}, "default-ulimit": {"default-ulimits"}, "node-generic-resource": {"node-generic-resources"},
		"default-address-pool": {"default-address-pools"}, "cluster-store-opt": {"cluster-store-opts"},
		"feature": {"features"}, "default-network-opt": {"default-network-opts"}, "cdi-spec-dir": {"cdi-spec-dirs"},
		"host-gateway-ip": {"host-gateway-ip", "host-gateway-ips"},
		"add-runtime":     nil,
	}
	dockerdShortFlags = map[byte]string{'H': "host", 'D': "debug", 'l': "log-level", 's': "storage-driver",
		'G': "group", 'p': "pidfile", 'b': "bridge", 'g': "graph", 'r': "restart"}
	dockerdFlatKeys = map[string]bool{"cluster-store-opts": true, "default-network-opts": true, "log-opts": true,
		"runtimes": true, "default-ulimits": true, "features": true, "builder": true}
	// dockerdBoolFlags take no value after them (only needed to show a
	// flag with its value).
	dockerdBoolFlags = map[string]bool{"debug": true, "restart": true, "raw-logs": true, "cri-containerd": true,
		"rootless": true, "validate": true, "userland-proxy": true}
)

// dockerdFlag is one flag on dockerd's command line: its long name, and how
// it was written (with its value).
type dockerdFlag struct{ name, text string }

// parseDockerdFlags reads dockerd's arguments as pflag does: --name=value,
// --name value, -s value, -svalue, and bool shorthands run together (-D).
func parseDockerdFlags(args []string) []dockerdFlag {
	var out []dockerdFlag
	takesValue := func(name string) bool { return !dockerdBoolFlags[name] && !daemonBoolKeys[name] }
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return out
		case strings.HasPrefix(a, "--"):
			name, _, hasVal := strings.Cut(a[2:], "=")
			text := a
			if !hasVal && takesValue(name) && i+1 < len(args) {
				i++
				text += " " + args[i]
			}
			out = append(out, dockerdFlag{name, text})
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for j := 1; j < len(a); j++ {
				name, ok := dockerdShortFlags[a[j]]
				if !ok {
					break
				}
				if !takesValue(name) {
					out = append(out, dockerdFlag{name, "-" + a[j:j+1]})
					continue
				}
				text := "-" + a[j:]
				if j == len(a)-1 && i+1 < len(args) {
					i++
					text += " " + args[i]
				}
				out = append(out, dockerdFlag{name, text})
				break
			}
		}
	}
	return out
}

// runningDockerdArgs returns the arguments of the running dockerd, found by
// the pid in its pidfile; nil when none runs (no pidfile, or its pid is no
// longer a dockerd).
func runningDockerdArgs(ctx context.Context, h Host, pidfile string) ([]string, error) {
	f, ok, err := ReadFileIfExists(ctx, h, pidfile)
	if err != nil || !ok {
		return nil, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(f.Content)))
	if err != nil || pid <= 0 {
		return nil, nil
	}
	cl, ok, err := ReadFileIfExists(ctx, h, "/proc/"+strconv.Itoa(pid)+"/cmdline")
	if err != nil || !ok {
		return nil, err
	}
	args := strings.Split(strings.TrimRight(string(cl.Content), "\x00"), "\x00")
	if !strings.HasPrefix(path.Base(args[0]), "dockerd") {
		return nil, nil
	}
	return args[1:], nil
}

// checkFlagConflicts fails when the running dockerd gets a setting of the
// file as it will be (content) also as a command-line flag: dockerd would
// refuse to start with it ("the following directives are specified both as
// a flag and in the configuration file"), so the restart this change leads
// to would take docker down. No dockerd running, nothing to check; a
// command line that cannot be read is a warning.
func checkFlagConflicts(ctx context.Context, h Host, pidfile, file string, content []byte, settings map[string]any) ([]string, error) {
	args, err := runningDockerdArgs(ctx, h, pidfile)
	if err != nil {
		return []string{fmt.Sprintf("could not read the running dockerd's command line (%v): if it gets a setting of %s also as a flag, dockerd will refuse to start", err, file)}, nil
	}
	if len(args) == 0 || len(bytes.TrimSpace(content)) == 0 {
		return nil, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(content, &top); err != nil {
		return nil, err
	}
	owner := map[string]string{} // key as dockerd sees it → top-level key
	for k, v := range top {
		var sub map[string]json.RawMessage
		if !dockerdFlatKeys[k] && bytes.HasPrefix(bytes.TrimSpace(v), []byte("{")) && json.Unmarshal(v, &sub) == nil {
			for sk := range sub {
				owner[sk] = k
			}
			continue
		}
		owner[k] = k
	}
	var conflicts, inSettings, inFile []string
	for _, f := range parseDockerdFlags(args) {
		keys, named := dockerdFlagKeys[f.name]
		if !named {
			keys = []string{f.name}
		}
		for _, k := range keys {
			topKey, ok := owner[k]
			if !ok {
				continue
			}
			name := topKey
			if topKey != k {
				name = topKey + "." + k
			}
			conflicts = append(conflicts, fmt.Sprintf("%s (flag %s)", name, f.text))
			if _, set := settings[topKey]; set {
				inSettings = appendNew(inSettings, name)
			} else {
				inFile = appendNew(inFile, name)
			}
		}
	}
	if len(conflicts) == 0 {
		return nil, nil
	}
	var fix []string
	if len(inSettings) > 0 {
		fix = append(fix, "leave "+strings.Join(inSettings, ", ")+" out of settings")
	}
	if len(inFile) > 0 {
		fix = append(fix, "remove "+strings.Join(inFile, ", ")+" from "+file)
	}
	return nil, fmt.Errorf("the running dockerd already gets %s on its command line, and dockerd refuses to start when a setting is given both as a flag and in %s (\"the following directives are specified both as a flag and in the configuration file\"), so restarting docker with this file would take it down; remove the flag from dockerd's command line (DOCKER_OPTS in /etc/default/docker, or ExecStart of docker.service and its drop-ins in /etc/systemd/system/docker.service.d/), or %s",
		strings.Join(conflicts, ", "), file, strings.Join(fix, " and "))
}

func appendNew(l []string, s string) []string {
	if slices.Contains(l, s) {
		return l
	}
	return append(l, s)
}
