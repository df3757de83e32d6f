package tasks

// The places dockerd's next start takes its flags from: the systemd unit
// docker.service (its ExecStart, the drop-ins that override it, and the
// variables it expands from Environment= and EnvironmentFile=) when systemd
// is the init system, else the variables that init scripts pass: DOCKER_OPTS
// in /etc/default/docker (Debian's /etc/init.d/docker) and OPTIONS,
// DOCKER_OPTS or other_args in /etc/sysconfig/docker (Red Hat's).

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"strings"
)

// flagSource is one place that gives dockerd flags.
type flagSource struct {
	// where names it for a person: "DOCKER_OPTS in /etc/default/docker".
	where string
	args  []string
}

const (
	defaultDockerFile   = "/etc/default/docker"
	sysconfigDockerFile = "/etc/sysconfig/docker"
)

// sysvDockerVars are the variables of each environment file that an init
// script passes to dockerd.
var sysvDockerVars = map[string][]string{
	defaultDockerFile:   {"DOCKER_OPTS"},
	sysconfigDockerFile: {"OPTIONS", "DOCKER_OPTS", "other_args"},
}

// startFlagSources reads where the next start of docker takes dockerd's
// flags from, in one round trip (two when the unit names an environment
// file other than the usual two).
func startFlagSources(ctx context.Context, h Host) ([]flagSource, error) {
	res, err := RunProbes(ctx, h,
		RunProbe("test", "-d", "/run/systemd/system"),
		RunProbe("systemctl", "cat", "docker.service"),
		ReadProbe(defaultDockerFile),
		ReadProbe(sysconfigDockerFile))
	if err != nil {
		return nil, err
	}
	envFiles := map[string][]byte{}
	for i, p := range []string{defaultDockerFile, sysconfigDockerFile} {
		if r := res[2+i]; r.Exists {
			envFiles[p] = r.File.Content
		}
	}
	if res[0].Output.ExitCode != 0 {
		var out []flagSource
		for _, p := range []string{defaultDockerFile, sysconfigDockerFile} {
			vars := parseEnvFile(envFiles[p])
			for _, v := range sysvDockerVars[p] {
				if args := strings.Fields(vars[v]); len(args) > 0 {
					out = append(out, flagSource{where: v + " in " + p, args: args})
				}
			}
		}
		return out, nil
	}
	if res[1].Output.ExitCode != 0 {
		return nil, nil // no docker.service: nothing starts dockerd with flags
	}
	u := parseSystemdUnit(string(res[1].Output.Stdout))
	var more []Probe
	for _, f := range u.envFiles {
		if _, ok := envFiles[f.path]; !ok {
			more = append(more, ReadProbe(f.path))
		}
	}
	if len(more) > 0 {
		extra, err := RunProbes(ctx, h, more...)
		if err != nil {
			return nil, err
		}
		for i, pr := range more {
			if extra[i].Exists {
				envFiles[pr.Path] = extra[i].File.Content
			}
		}
	}
	return u.sources(envFiles), nil
}

// systemdUnit is what of `systemctl cat` decides dockerd's flags: the
// ExecStart in force (the last one after the last empty ExecStart= that
// resets the list) and the environment it expands.
type systemdUnit struct {
	execStart, execFile string
	env                 []unitEnv // Environment= and EnvironmentFile=, in order
	envFiles            []unitEnv
}

// unitEnv is one Environment= assignment, or (path set) an
// EnvironmentFile=.
type unitEnv struct {
	name, value, file string // file: the unit file that says it
	path              string
}

// parseSystemdUnit reads the output of `systemctl cat UNIT`: each file it
// shows starts with a line "# /path/of/the/file".
func parseSystemdUnit(out string) systemdUnit {
	var u systemdUnit
	file, section := "", ""
	lines := strings.Split(out, "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		for strings.HasSuffix(l, `\`) && i+1 < len(lines) {
			i++
			l = strings.TrimSuffix(l, `\`) + " " + strings.TrimSpace(lines[i])
		}
		switch {
		case strings.HasPrefix(l, "# /"):
			file, section = strings.TrimPrefix(l, "# "), ""
			continue
		case l == "" || l[0] == '#' || l[0] == ';':
			continue
		case l[0] == '[':
			section = l
			continue
		}
		if section != "[Service]" {
			continue
		}
		key, val, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(key) {
		case "ExecStart":
			u.execStart, u.execFile = strings.TrimSpace(val), file
		case "Environment":
			for _, w := range splitUnitWords(val) {
				if n, v, ok := strings.Cut(w, "="); ok {
					u.env = append(u.env, unitEnv{name: n, value: v, file: file})
				}
			}
		case "EnvironmentFile":
			p := strings.TrimPrefix(strings.TrimSpace(val), "-")
			if strings.HasPrefix(p, "/") {
				e := unitEnv{path: p, file: file}
				u.env = append(u.env, e)
				u.envFiles = append(u.envFiles, e)
			}
		}
	}
	return u
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

var unitVarRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// sources splits the ExecStart in force into the flags written in it and
// those each variable it expands brings, named by where they are set.
func (u systemdUnit) sources(envFiles map[string][]byte) []flagSource {
	words := splitUnitWords(strings.TrimLeft(u.execStart, "-@:+!"))
	if len(words) == 0 || !strings.HasPrefix(path.Base(words[0]), "dockerd") {
		return nil
	}
	// Each variable's value and where it was set, the last setting winning
	// (systemd reads them in order).
	type setting struct{ value, where string }
	vars := map[string]setting{}
	for _, e := range u.env {
		if e.path == "" {
			vars[e.name] = setting{e.value, fmt.Sprintf("Environment=%s in %s", e.name, e.file)}
			continue
		}
		for n, v := range parseEnvFile(envFiles[e.path]) {
			vars[n] = setting{v, fmt.Sprintf("%s in %s (EnvironmentFile of docker.service)", n, e.path)}
		}
	}
	literal := flagSource{where: "ExecStart of docker.service in " + u.execFile}
	var out []flagSource
	for _, w := range words[1:] {
		if !strings.Contains(w, "$") {
			literal.args = append(literal.args, w)
			continue
		}
		for _, m := range unitVarRE.FindAllStringSubmatch(w, -1) {
			name := m[1] + m[2]
			if s, ok := vars[name]; ok && strings.TrimSpace(s.value) != "" {
				out = append(out, flagSource{where: s.where, args: strings.Fields(s.value)})
			}
		}
	}
	if len(literal.args) > 0 {
		out = append([]flagSource{literal}, out...)
	}
	return out
}

// splitUnitWords splits a unit file value into words as systemd does for
// ExecStart and Environment: on blanks, with "double" and 'single' quotes
// keeping blanks and a backslash escaping the next character.
func splitUnitWords(s string) []string {
	var out []string
	var cur strings.Builder
	in, quote, esc := false, byte(0), false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case esc:
			cur.WriteByte(c)
			esc, in = false, true
		case c == '\\':
			esc = true
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(c)
		case c == '"' || c == '\'':
			quote, in = c, true
		case c == ' ' || c == '\t':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

// parseEnvFile reads the assignments of a shell-style environment file
// (/etc/default/docker, an EnvironmentFile): NAME=value, NAME="value" or
// NAME='value', optionally after "export"; comments and other lines are
// skipped; $NAME and ${NAME} in an unquoted or double-quoted value expand
// earlier assignments, as the shell that sources the file does.
func parseEnvFile(b []byte) map[string]string {
	vars := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' {
			continue
		}
		l = strings.TrimPrefix(l, "export ")
		name, val, ok := strings.Cut(l, "=")
		if !ok || !envNameRE.MatchString(name) {
			continue
		}
		single := strings.HasPrefix(val, "'")
		if words := splitUnitWords(val); len(words) > 0 {
			val = strings.Join(words, " ")
		} else {
			val = ""
		}
		if !single {
			val = unitVarRE.ReplaceAllStringFunc(val, func(ref string) string {
				m := unitVarRE.FindStringSubmatch(ref)
				return vars[m[1]+m[2]]
			})
		}
		vars[name] = val
	}
	return vars
}
