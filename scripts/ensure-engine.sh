#!/usr/bin/env bash
# Make sure a Docker engine answers and the image tools imgforge needs are installed.
#
# Idempotent: when `docker info` already works (DOCKER_HOST is honoured, since the
# docker CLI reads it) it only checks the tools below with dpkg-query and exits.
# Otherwise it installs docker.io if needed and starts dockerd detached, without a
# bridge network: this workplace allows none, so every build and container here uses
# host networking. Either way it installs, when missing, the rootfs tools
# (debootstrap, squashfs) that the NGC stand-in and the SIF builds use, and what the
# registry tests run (docker-registry; htpasswd from apache2-utils and openssl for its
# password file and certificate), and the static busybox the overlay layer tests build
# images FROM scratch with.
set -euo pipefail

readonly LOG=/var/log/imgforge-dockerd.log
readonly PIDFILE=/var/run/docker.pid
readonly WAIT_SECONDS=60
readonly TOOL_PACKAGES=(debootstrap squashfs-tools squashfs-tools-ng siftool docker-registry apache2-utils openssl graphviz busybox-static)

say() { printf 'ensure-engine: %s\n' "$*"; }
die() { printf 'ensure-engine: error: %s\n' "$*" >&2; exit 1; }

# A hung daemon must not hang us: bound every probe.
engine_up() { timeout 10 docker info >/dev/null 2>&1; }

# Installs the given packages with one apt-get call (after one update), if any.
apt_install() {
    (($#)) || return 0
    say "apt-get update"
    apt-get update -qq
    say "installing: $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Prints the tool packages that are not fully installed, one per line.
missing_tools() {
    local pkg
    for pkg in "${TOOL_PACKAGES[@]}"; do
        # dpkg-query prints "install ok installed" only for a fully installed package.
        if [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true) != "install ok installed" ]]; then
            printf '%s\n' "$pkg"
        fi
    done
}

# dockerd listens on the default unix socket unless DOCKER_HOST names another one;
# a remote (tcp/ssh) DOCKER_HOST that does not answer is not ours to start.
dockerd_host_args() {
    case "${DOCKER_HOST:-}" in
        "") ;;
        unix://*) printf '%s\n' "--host=$DOCKER_HOST" ;;
        *) die "DOCKER_HOST=$DOCKER_HOST does not answer and is not a local socket; not starting an engine" ;;
    esac
}

dockerd_running() {
    [[ -s $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

started_pid=""  # set when this run starts dockerd

# $1: extra dockerd arguments (empty or one word).
start_dockerd() {
    local host_args=$1
    if dockerd_running; then
        # Another run (or a person) already started it; starting a second one would
        # fail on the pidfile, so only wait for it.
        say "dockerd already running (pid $(cat "$PIDFILE")), waiting for it"
        return
    fi
    say "starting dockerd (log: $LOG)"
    # setsid + nohup: the daemon must outlive this shell and its session.
    # shellcheck disable=SC2086  # host_args is empty or a single word
    setsid nohup dockerd --bridge=none --iptables=false $host_args \
        >>"$LOG" 2>&1 </dev/null &
    started_pid=$!
}

fail_with_log() {
    printf 'ensure-engine: error: %s; tail of %s:\n' "$1" "$LOG" >&2
    tail -n 30 "$LOG" >&2 || true
    exit 1
}

# Waits (wall clock: a hung probe takes up to 10 s) for the engine to answer.
wait_for_engine() {
    local start=$SECONDS
    until engine_up; do
        # A daemon that died (bad flag, port in use) will never answer: say so now.
        if [[ -n $started_pid ]] && ! kill -0 "$started_pid" 2>/dev/null; then
            fail_with_log "dockerd exited"
        fi
        if ((SECONDS - start >= WAIT_SECONDS)); then
            fail_with_log "docker engine not up after ${WAIT_SECONDS}s"
        fi
        sleep 1
    done
    say "docker engine up after $((SECONDS - start))s"
}

main() {
    local packages=()
    mapfile -t packages < <(missing_tools)
    if engine_up; then
        say "docker engine already up"
        # Only dpkg-query ran so far: when the tools are there, this path stays fast.
        apt_install "${packages[@]}"
        exit 0
    fi
    if [[ $(id -u) -ne 0 ]]; then
        die "docker engine not reachable and not root: cannot install or start dockerd"
    fi
    local host_args
    host_args=$(dockerd_host_args)  # fails before any install on a remote DOCKER_HOST
    if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
        packages=(docker.io "${packages[@]}")
    fi
    apt_install "${packages[@]}"
    start_dockerd "$host_args"
    wait_for_engine
}

main "$@"
