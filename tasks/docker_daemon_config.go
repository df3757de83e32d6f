package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"slices"
	"sort"
	"strings"
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

type daemonConfigPayload struct {
	content []byte
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
	cur, exists, err := ReadFileIfExists(ctx, h, p)
	if err != nil {
		return nil, err
	}
	doc := &jsonObject{indent: "  "}
	if exists && len(bytes.TrimSpace(cur.Content)) > 0 {
		doc, err = parseJSONObject(cur.Content)
		if err != nil {
			return nil, fmt.Errorf("%s on the host is not valid: %v; fix or remove it by hand, dindops will not overwrite a file it cannot read", p, err)
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
	if len(changedKeys) == 0 {
		return nil, nil
	}
	if sd, ok := d.Settings["storage-driver"].(string); ok && slices.Contains(changedKeys, "storage-driver") {
		w, err := d.checkStorageDriver(ctx, h, sd)
		if err != nil {
			return nil, err
		}
		warnings = append(warnings, w...)
	}
	content := doc.encode()
	c := Change{Action: Update, Resource: "file", Target: p, Summary: "set " + strings.Join(changedKeys, ", "),
		Diff: UnifiedDiff(p, cur.Content, content), Warnings: warnings, Payload: daemonConfigPayload{content: content}}
	if !exists {
		c.Action = Create
	}
	return []Change{c}, nil
}

// checkStorageDriver compares the wanted driver with the one docker runs.
func (d *DockerDaemonConfig) checkStorageDriver(ctx context.Context, h Host, want string) ([]string, error) {
	out, err := h.Run(ctx, Cmd{Args: []string{"docker", "info", "--format", "{{json .Driver}} {{.Images}} {{.Containers}}"}})
	if err != nil {
		return nil, err
	}
	if out.ExitCode != 0 {
		// Docker is not running or not installed: nothing is hidden by the change.
		return nil, nil
	}
	var driver string
	var images, containers int
	f := strings.Fields(string(out.Stdout))
	if len(f) != 3 || json.Unmarshal([]byte(f[0]), &driver) != nil {
		return nil, fmt.Errorf("unexpected output of docker info: %q", out.Stdout)
	}
	fmt.Sscan(f[1], &images)
	fmt.Sscan(f[2], &containers)
	if driver == want || (images == 0 && containers == 0) {
		return nil, nil
	}
	msg := fmt.Sprintf("docker runs with storage driver %s; switching to %s hides its %d image(s) and %d container(s) (they stay on disk under %s but docker will not see them)", driver, want, images, containers, driver)
	if !d.AllowStorageDriverChange {
		return nil, fmt.Errorf("%s; set allow_storage_driver_change: true to go ahead", msg)
	}
	return []string{msg}, nil
}

// Apply implements Task.
func (d *DockerDaemonConfig) Apply(ctx context.Context, h Host, changes []Change) error {
	for _, c := range changes {
		p, ok := c.Payload.(daemonConfigPayload)
		if !ok {
			return fmt.Errorf("docker_daemon_config: unknown change")
		}
		var validate []string
		if help, err := h.Run(ctx, Cmd{Args: []string{"dockerd", "--help"}}); err == nil && bytes.Contains(help.Stdout, []byte("--validate")) {
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
