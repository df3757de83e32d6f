package tasks

// docker_prune, part 3: the same prune as a shell script on the host, for
// a schedule (cron, a systemd timer) to run between dindops runs. It uses
// the docker CLI inside the container (docker:dind has it) and the
// host's df, and decides as selectPrune does.

import (
	"fmt"
	"strings"
	"time"
)

// goDuration writes d as docker's CLI reads an `until` filter (a Go
// duration): whole hours as "168h", else seconds.
func goDuration(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// pruneScript is the script that prunes the daemon in container as the
// rules say. Its output says what each step removed; it exits 1 when a
// step failed (the others still run) and 0 when the container does not
// run.
func pruneScript(container string, r pruneRules) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("#!/bin/sh")
	w("# Prunes the Docker daemon in container %s as dindops's docker_prune", container)
	w("# task does: written by dindops, and the next apply replaces any edit.")
	w("# Run by its schedule; safe to run by hand at any time.")
	w("set -u")
	w("c=%s", shellQuote(container))
	w("until=%s", goDuration(r.Until))
	w("until_s=%d", int64(r.Until/time.Second))
	w("min_free=%d", int(r.MinFree))
	w("status=0")
	w(`in_c() { docker exec "$c" docker "$@"; }`)
	w(`step() { echo "$1:"; shift; "$@" || status=1; }`)
	w(`if [ "$(docker inspect --format '{{.State.Running}}' "$c" 2>/dev/null)" != true ]; then`)
	w(`	echo "container $c does not run: nothing to prune"`)
	w(`	exit 0`)
	w(`fi`)
	if r.Kinds.Containers {
		w(`step "stopped containers" in_c container prune --force`)
	}
	if r.Kinds.Volumes {
		w(`# Volumes no container uses: anonymous ones (labelled since Docker 23,`)
		w(`# before a 64-hex-digit name without labels) and gitlab-runner's.`)
		w(`# gitlab-runner's (its cache, which its next jobs reuse) only once`)
		w(`# made over until ago.`)
		w(`unused_volumes() {`)
		w(`	cutoff=$(( $(date +%%s) - until_s ))`)
		w(`	for v in $(in_c volume ls --quiet --filter dangling=true --filter label=%s=true); do`, labelRunnerManaged)
		w(`		created=$(in_c volume inspect --format '{{.CreatedAt}}' "$v")`)
		w(`		t=$(date -d "$created" +%%s 2>/dev/null) && [ "$t" -lt "$cutoff" ] && echo "$v"`)
		w(`	done`)
		w(`	in_c volume ls --quiet --filter dangling=true --filter label=%s`, labelAnonymousVolume)
		w(`	for v in $(in_c volume ls --quiet --filter dangling=true | grep -E '^[0-9a-f]{64}$'); do`)
		w(`		[ "$(in_c volume inspect --format '{{len .Labels}}' "$v")" = 0 ] && echo "$v"`)
		w(`	done`)
		w(`}`)
		w(`remove_volumes() {`)
		w(`	for v in $(unused_volumes | sort -u); do`)
		w(`		in_c volume rm "$v" || echo "kept $v"`)
		w(`	done`)
		w(`}`)
		w(`step "unused volumes" remove_volumes`)
	}
	if r.Kinds.Images {
		w(`# Below min_free percent free on dind's data root, every unused image`)
		w(`# goes, whatever its age.`)
		w(`root=$(in_c info --format '{{.DockerRootDir}}')`)
		w(`src=$(docker inspect --format "{{range .Mounts}}{{if eq .Destination \"$root\"}}{{.Source}}{{end}}{{end}}" "$c")`)
		w(`free=$(df -P -k "${src:-/var/lib/docker}" | awk 'NR == 2 { if ($2 > 0) print int($4 * 100 / $2); else print 100 }')`)
		w(`if [ "${free:-100}" -lt "$min_free" ]; then`)
		w(`	step "every unused image ($free%% free, below $min_free%%)" in_c image prune --all --force`)
		w(`else`)
		w(`	step "unused images created over $until ago" in_c image prune --all --force --filter "until=$until"`)
		w(`fi`)
	}
	if r.Kinds.Networks {
		w(`step "unused networks" in_c network prune --force --filter "until=$until"`)
	}
	if r.Kinds.BuildCache {
		w(`step "build cache" in_c builder prune --all --force --filter "until=$until"`)
	}
	w(`exit "$status"`)
	return b.String()
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
