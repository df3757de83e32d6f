package suite

import (
	"path/filepath"

	"github.com/dindops/dindops/bench/internal/tools"
)

// resetEngine removes everything the engine playbooks make.
const resetEngine = `rm -f /etc/dindops-bench.json /etc/dindops-bench.conf /var/tmp/dindops-bench.done /var/tmp/dindops-bench.reloaded`

// resetDocker undoes the main job on a host: the containers, the network,
// dind's storage volume, the runner's config directory, the module's
// boot-time file and its directory when the fleet had none (both tools
// create it), and daemon.json as the fleet made it (what the fleet made is
// recorded on the first reset of a fresh host, where neither tool has run
// yet; without that, a tool's first run would depend on which ran before
// it). docker keeps
// running: with or without the storage-driver key it runs overlay2. The
// images stay pulled: a pull costs both tools the same and would dwarf the
// rest.
const resetDocker = `
docker rm -f gitlab-runner gitlab-dind >/dev/null 2>&1 || true
docker network rm gitlab-runner-net >/dev/null 2>&1 || true
docker volume rm -f gitlab-dind-storage >/dev/null
rm -rf /srv/gitlab-runner
if [ ! -e /var/lib/dindops-bench/daemon.json ]; then
  mkdir -p /var/lib/dindops-bench
  [ -d /etc/modules-load.d ] || touch /var/lib/dindops-bench/no-modules-load.d
  cp -p /etc/docker/daemon.json /var/lib/dindops-bench/daemon.json
fi
rm -f /etc/modules-load.d/overlay.conf /etc/modprobe.d/overlay.conf
[ ! -e /var/lib/dindops-bench/no-modules-load.d ] || rmdir /etc/modules-load.d 2>/dev/null || true
cp -p /var/lib/dindops-bench/daemon.json /etc/docker/daemon.json
`

// pullImages pulls the images of the main job into every host (through the
// host's registry mirror), so that no tool's first run pays for a pull the
// others do not: the resets keep the images.
const pullImages = `docker pull -q docker:27-dind >/dev/null && docker pull -q gitlab/gitlab-runner:alpine-v17.11.0 >/dev/null`

// engineScenario is the small playbook that measures the engine.
func engineScenario(benchDir string) tools.Scenario {
	return tools.Scenario{
		Name:    "engine",
		Dindops: filepath.Join(benchDir, "playbooks", "engine.yml"),
		Ansible: filepath.Join(benchDir, "playbooks", "engine.ansible.yml"),
		Reset:   resetEngine,
	}
}

// dockerScenario is the main job: the shipped playbook against its Ansible
// equivalent with the community.docker modules.
func dockerScenario(benchDir, runnerToken string) tools.Scenario {
	return tools.Scenario{
		Name:    "docker",
		Ansible: filepath.Join(benchDir, "playbooks", "dind-runner.ansible.yml"),
		Prepare: pullImages,
		Reset:   resetDocker,
		Env:     []string{"GITLAB_RUNNER_TOKEN=" + runnerToken},
	}
}
