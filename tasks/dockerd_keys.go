package tasks

// The daemon.json keys a dockerd knows, for a dockerd too old for
// `dockerd --validate`, read from the options its `dockerd --help` lists.
//
// How dockerd 20.10 checks the keys of its file (moby/moby v20.10.24,
// daemon/config/config.go: getConflictFreeConfiguration, configValuesSet,
// findConfigurationConflicts): a top-level value that is a JSON object is
// flattened into its own keys, except for the keys of flatOptions
// (cluster-store-opts, log-opts, runtimes, default-ulimits, features,
// builder), which count as one key; then every key must be a flag's long
// name (flags.Lookup), or the name of a flag whose value is a NamedOption
// (its daemon.json name differs from the flag's), or be one of
// skipValidateOptions (features, builder, deprecated-key-path). Otherwise
// dockerd refuses to start: "the following directives don't match any
// configuration option".
//
// The exceptions handled here, with their source in moby v20.10.24:
//   - named options (cmd/dockerd/config.go, config_unix.go,
//     config_common_unix.go, options.go; opts/address_pools.go): the
//     plural keys of dockerdFlagKeys, and runtimes for --add-runtime;
//   - flags hidden from --help that dockerd still looks up: graph and
//     network-diagnostic-port (MarkHidden), restart, cluster-advertise,
//     cluster-store and cluster-store-opt (MarkDeprecated; its key is
//     cluster-store-opts);
//   - skipValidateOptions: features, builder, deprecated-key-path.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// helpFlagRE matches an option of dockerd --help ("  -b, --bridge string",
// "      --add-runtime runtime"); description lines are indented further.
var helpFlagRE = regexp.MustCompile(`(?m)^ {2,6}(?:-[A-Za-z], )?--([a-z0-9][a-z0-9-]*)`)

// dockerdHiddenKeys are keys dockerd 20.10 accepts although --help does not
// list their flags, and the keys it does not check at all.
var dockerdHiddenKeys = []string{"graph", "network-diagnostic-port", "restart", "cluster-advertise", "cluster-store",
	"cluster-store-opt", "cluster-store-opts", "features", "builder", "deprecated-key-path"}

// knownDaemonKeys returns the daemon.json keys a dockerd accepts, from its
// --help; nil when the help lists no option.
func knownDaemonKeys(help []byte) map[string]bool {
	ms := helpFlagRE.FindAllSubmatch(help, -1)
	if len(ms) == 0 {
		return nil
	}
	known := map[string]bool{}
	for _, k := range dockerdHiddenKeys {
		known[k] = true
	}
	for _, m := range ms {
		flag := string(m[1])
		known[flag] = true
		for _, k := range dockerdFlagKeys[flag] {
			known[k] = true
		}
		if flag == "add-runtime" {
			known["runtimes"] = true
		}
	}
	return known
}

// unknownDaemonKeys returns the keys of content that a dockerd knowing
// known would refuse, as dockerd flattens them: a key inside an object is
// named parent.key.
func unknownDaemonKeys(content []byte, known map[string]bool) []string {
	var top map[string]json.RawMessage
	if json.Unmarshal(content, &top) != nil {
		return nil
	}
	var unknown []string
	for k, v := range top {
		var sub map[string]json.RawMessage
		if !dockerdFlatKeys[k] && bytes.HasPrefix(bytes.TrimSpace(v), []byte("{")) && json.Unmarshal(v, &sub) == nil {
			for sk := range sub {
				if !known[sk] {
					unknown = append(unknown, k+"."+sk)
				}
			}
			continue
		}
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	return unknown
}

// checkDaemonKeys fails when the file as it will be (content) has a key
// that the host's dockerd does not know, with the closest one it knows.
func checkDaemonKeys(file string, content []byte, c dockerdChecks, settings map[string]any) error {
	if c.validate || c.known == nil {
		return nil
	}
	unknown := unknownDaemonKeys(content, c.known)
	if len(unknown) == 0 {
		return nil
	}
	var names, inSettings, inFile []string
	for _, k := range unknown {
		n := fmt.Sprintf("%q", k)
		leaf := k[strings.LastIndexByte(k, '.')+1:]
		if s := closestKey(leaf, c.known); s != "" {
			n += fmt.Sprintf(" (did you mean %q?)", s)
		}
		names = append(names, n)
		top, _, _ := strings.Cut(k, ".")
		if _, ok := settings[top]; ok {
			inSettings = appendNew(inSettings, top)
		} else {
			inFile = appendNew(inFile, top)
		}
	}
	var fix []string
	if len(inSettings) > 0 {
		fix = append(fix, "correct "+strings.Join(inSettings, ", ")+" in settings")
	}
	if len(inFile) > 0 {
		fix = append(fix, "delete "+strings.Join(inFile, ", ")+" from "+file+" (remove: ["+strings.Join(inFile, ", ")+"])")
	}
	return fmt.Errorf("%s would have %s, which dockerd %s on this host does not know (no such option in its dockerd --help): it would refuse to start (\"the following directives don't match any configuration option\"), so restarting docker with this file would take it down; nothing was written. %s",
		file, strings.Join(names, ", "), c.version, upperFirst(strings.Join(fix, " and ")))
}

// closestKey is the known key nearest to k, when near enough to be a typo.
func closestKey(k string, known map[string]bool) string {
	best, bestD := "", len(k)/3+2
	keys := make([]string, 0, len(known))
	for s := range known {
		keys = append(keys, s)
	}
	slices.Sort(keys)
	for _, s := range keys {
		if d := editDistance(k, s); d < bestD {
			best, bestD = s, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
