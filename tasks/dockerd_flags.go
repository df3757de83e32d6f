package tasks

// Where dockerd takes its flags from, and which of them a daemon.json key
// would conflict with.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
)

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

// runningCmdline names the running dockerd's flags as a flagSource.
const runningCmdline = "the running dockerd's command line"

// checkFlagConflicts fails when dockerd gets a setting of the file as it
// will be (content) also as a flag, from its running command line or from
// where its next start takes flags (startFlagSources): dockerd would refuse
// to start with it ("the following directives are specified both as a flag
// and in the configuration file"), so the restart this change leads to
// would take docker down. A running command line that cannot be read is a
// warning.
func checkFlagConflicts(ctx context.Context, h Host, pidfile, file string, content []byte, settings map[string]any) ([]string, error) {
	var warnings []string
	var sources []flagSource
	args, err := runningDockerdArgs(ctx, h, pidfile)
	if err != nil {
		warnings = append(warnings, fmt.Sprintf("could not read the running dockerd's command line (%v): if it gets a setting of %s also as a flag, dockerd will refuse to start", err, file))
	} else if len(args) > 0 {
		sources = append(sources, flagSource{where: runningCmdline, args: args})
	}
	start, err := startFlagSources(ctx, h)
	if err != nil {
		return nil, err
	}
	sources = append(sources, start...)
	if len(sources) == 0 || len(bytes.TrimSpace(content)) == 0 {
		return warnings, nil
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
	// Each conflict once ("storage-driver (flag -s overlay2)"), with every
	// place that gives its flag.
	var conflicts []string
	from := map[string][]string{}
	var inSettings, inFile, places []string
	for _, src := range sources {
		for _, f := range parseDockerdFlags(src.args) {
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
				c := fmt.Sprintf("%s (flag %s)", name, f.text)
				if from[c] == nil {
					conflicts = append(conflicts, c)
				}
				from[c] = appendNew(from[c], src.where)
				places = appendNew(places, src.where)
				if _, set := settings[topKey]; set {
					inSettings = appendNew(inSettings, name)
				} else {
					inFile = appendNew(inFile, name)
				}
			}
		}
	}
	if len(conflicts) == 0 {
		return warnings, nil
	}
	for i, c := range conflicts {
		conflicts[i] = c + " from " + strings.Join(from[c], " and ")
	}
	var fix []string
	if start := slices.DeleteFunc(slices.Clone(places), func(p string) bool { return p == runningCmdline }); len(start) > 0 {
		fix = append(fix, "remove the flag from "+strings.Join(start, " and "))
	} else {
		fix = append(fix, "remove the flag from where docker's start takes it (DOCKER_OPTS in /etc/default/docker, or ExecStart of docker.service and its drop-ins in /etc/systemd/system/docker.service.d/) and restart docker")
	}
	if len(inSettings) > 0 {
		fix = append(fix, "leave "+strings.Join(inSettings, ", ")+" out of settings")
	}
	if len(inFile) > 0 {
		fix = append(fix, "remove "+strings.Join(inFile, ", ")+" from "+file+" (remove: ["+strings.Join(inFile, ", ")+"])")
	}
	return nil, fmt.Errorf("dockerd gets %s, and dockerd refuses to start when a setting is given both as a flag and in %s (\"the following directives are specified both as a flag and in the configuration file\"), so restarting docker with this file would take it down; nothing was written. To go ahead, %s",
		strings.Join(conflicts, ", "), file, strings.Join(fix, ", or "))
}

func appendNew(l []string, s string) []string {
	if slices.Contains(l, s) {
		return l
	}
	return append(l, s)
}
