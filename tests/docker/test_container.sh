#!/usr/bin/env bash
# The container dev loop, for real (`make test-docker`; not part of pytest's suite).
#
# Lints docker/Dockerfile (hadolint) and validates docker/docker-compose.yml (compose-spec), then,
# on a throwaway copy of the repository (tracked files and untracked, not ignored ones, so the
# test never edits the work tree): prepares podman + podman-compose and the stand-in base image
# with ../shared/container-engine.sh, builds docker/Dockerfile through the compose file with
# PYTHON_IMAGE=<stand-in>, brings the compose file up on a free host port, GETs the page through
# the published port, edits demo/greeting.py on the host side of the bind mount, waits for the
# new text to be served, and brings everything down. A trap brings it down on failure too, after
# printing the container's log, and the test fails if a container, pod or network is left.
#
# Environment: CONTAINER_ENGINE_SCRIPT (default ../shared/container-engine.sh), VENV_BIN (where
# hadolint and check-jsonschema are, default .venv/bin), DEADLINE (seconds per wait for the build
# and the start, default 90), RELOAD_DEADLINE (seconds from the save to the new text, default 15:
# period 2 s + delay 0.3 s + a graceful reload of the demo, with room for a loaded machine).
set -euo pipefail

started=$SECONDS
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
engine_script=${CONTAINER_ENGINE_SCRIPT:-../shared/container-engine.sh}
venv_bin=${VENV_BIN:-.venv/bin}
deadline=${DEADLINE:-90}
reload_deadline=${RELOAD_DEADLINE:-15}
project="uwsgi-reload-test-$$"
work=""
container=""
compose=()

step() { printf '\n== [%3ss] %s\n' "$((SECONDS - started))" "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
tool() { if [ -x "$venv_bin/$1" ]; then echo "$venv_bin/$1"; else command -v "$1" || fail "$1 not found (make test-docker installs it into .venv)"; fi; }

# Body of http://127.0.0.1:$port/, or nothing (and status 1) while the server is not answering.
get() {
    python3 -c 'import sys, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode(), end="")
except Exception:
    sys.exit(1)' "http://127.0.0.1:$port/"
}

# Wait until `get` returns text containing $1 (fixed string); fail after $3 (default $deadline)
# seconds.
wait_for_text() {
    local want=$1 what=$2 limit=${3:-$deadline} body=""
    local until=$((SECONDS + limit))
    while [ "$SECONDS" -lt "$until" ]; do
        body=$(get) || body=""
        if [[ $body == *"$want"* ]]; then return 0; fi
        sleep 0.5
    done
    fail "$what: not served within ${limit}s; last body: ${body:-<no answer>}"
}

# The container's log (uWSGI logs to stderr).
container_log() { podman logs "$container" 2>&1; }

# Wait until the container's log has a line matching the extended regex $1.
wait_for_log() {
    local pattern=$1 what=$2 until=$((SECONDS + deadline))
    while [ "$SECONDS" -lt "$until" ]; do
        if container_log | grep -Eq -- "$pattern"; then return 0; fi
        sleep 0.5
    done
    fail "$what: no line matching '$pattern' in the container log within ${deadline}s"
}

# What podman still has of this project (containers, pod, networks), one name per line.
leftovers() {
    podman ps -a --filter "label=io.podman.compose.project=$project" --format '{{.Names}}'
    podman pod ps --filter "name=^pod_${project}\$" --format '{{.Name}}'
    podman network ls --filter "name=^${project}_" --format '{{.Name}}'
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ "${#compose[@]}" -gt 0 ]; then
        if [ "$rc" -ne 0 ]; then
            echo "---- container log ($project) ----" >&2
            container_log >&2 || true
            echo "---- end of container log ----" >&2
        fi
        "${compose[@]}" down --timeout 10 >/dev/null 2>&1 || true
        # by name, in case `down` could not finish (all names carry this run's project name)
        local left
        left=$(leftovers 2>/dev/null || true)
        if [ -n "$left" ]; then
            echo "removing what down left: $left" >&2
            podman ps -a --filter "label=io.podman.compose.project=$project" --format '{{.Names}}' \
                | xargs -r podman rm --force --time 5 >/dev/null 2>&1 || true
            podman pod rm --force --ignore "pod_$project" >/dev/null 2>&1 || true
            podman network ls --filter "name=^${project}_" --format '{{.Name}}' \
                | xargs -r podman network rm --force >/dev/null 2>&1 || true
            [ "$rc" -ne 0 ] || rc=1
            echo "FAIL: down left $left" >&2
        fi
    fi
    [ -z "$work" ] || rm -rf "$work"
    printf '\n== container test %s in %ss\n' "$([ "$rc" -eq 0 ] && echo passed || echo FAILED)" \
        "$((SECONDS - started))"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "hadolint docker/Dockerfile"
"$(tool hadolint)" docker/Dockerfile
echo "no findings"

step "check-jsonschema docker/docker-compose.yml against the compose spec"
"$(tool check-jsonschema)" --builtin-schema vendor.compose-spec docker/docker-compose.yml

step "container engine: $engine_script"
[ -f "$engine_script" ] || fail "$engine_script not found (shared/ should sit beside the repository)"
base=$(bash "$engine_script" | tail -n 1)
echo "base image: $base"

step "throwaway copy of the repository"
work=$(mktemp -d "${TMPDIR:-/tmp}/uwsgi-reload-docker.XXXXXX")
mkdir "$work/src"
chmod 755 "$work/src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # what a clone would hold, plus work not committed yet; not .venv, caches or .git
    git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [ ! -e "$f" ] || printf '%s\0' "$f"; done \
        | tar --null --files-from=- -cf - | tar -C "$work/src" -xf -
else
    tar --exclude=./.venv --exclude=./.git --exclude='__pycache__' -cf - . | tar -C "$work/src" -xf -
fi
echo "$work/src: $(find "$work/src" -type f | wc -l) files"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')
export PYTHON_IMAGE="$base" UWSGI_RELOAD_PORT="$port" UWSGI_RELOAD_PERIOD=2
container="${project}_web_1"
compose=(podman-compose --no-ansi --project-name "$project" --file "$work/src/docker/docker-compose.yml")

step "build docker/Dockerfile through the compose file (PYTHON_IMAGE=$base)"
# --network host: the build reaches the package index only through the host's network here
"${compose[@]}" --podman-build-args=--network=host build

step "up on host port $port (project $project)"
"${compose[@]}" up -d
wait_for_text "Hello from uWSGI" "the demo page"
get
uid=$(podman exec "$container" id -u)
[ "$uid" != 0 ] || fail "uWSGI runs as root in the container"
echo "served as uid $uid"
wait_for_log "uwsgi_reload: reloading on: .*period 2s" "UWSGI_RELOAD_PERIOD=2 reaching uwsgi_reload"
wait_for_log "uwsgi_reload: settings: .*backend=poll" "backend=poll from ini/docker.ini"
echo "uwsgi_reload is on: period 2s from UWSGI_RELOAD_PERIOD, backend=poll"
wait_for_log "detected max file descriptor number: 8192" "max-fd = 8192 from ini/docker.ini"

step "edit demo/greeting.py on the host side of the bind mount"
new_text="Edited on the host, run $$ at $(date +%H:%M:%S)"
printf 'GREETING = "%s"\n' "$new_text" >"$work/src/demo/greeting.py"
edited=$SECONDS
wait_for_text "$new_text" "the edited greeting" "$reload_deadline"
get
echo "new text served $((SECONDS - edited))s after the save"
wait_for_log "uwsgi_reload: .*greeting\.py.* -> graceful reload" "a reload for greeting.py"
container_log | grep -E "uwsgi_reload: .*greeting\.py"

step "down"
"${compose[@]}" down --timeout 10
left=$(leftovers)
[ -z "$left" ] || fail "left after down: $left"
compose=()
echo "no container, pod or network left"
