#!/usr/bin/env bash
# Prepares a local Docker engine for agent/collectors/containers/docker.test.ts (and stops it again).
#
#   sudo scripts/docker-test-engine.sh          # install if missing, start if not answering, import the image
#   sudo scripts/docker-test-engine.sh --stop   # stop the dockerd this script started (nothing else)
#
# What it does, idempotently and bounded in time (every step has a timeout):
#   1. installs Debian's `docker.io` and `busybox-static` when missing (`apt-get update` only when apt has no
#      candidate for them), without recommends and without letting the package scripts start a daemon;
#   2. starts `dockerd --bridge=none --iptables=false --ip6tables=false` in the background when no engine answers:
#      no bridge, no firewall rules, so containers (run with `--network none`) send nothing anywhere;
#   3. waits for `docker info`;
#   4. imports `spectra-test/busybox` once: the static busybox with its applet symlinks, as a one-layer image
#      (no registry is reachable: nothing can be pulled).
#
# Environment: SPECTRA_DOCKER_WAIT_SECONDS (default 60) bounds the wait for the engine; SPECTRA_DOCKER_DATA_ROOT
# (default /var/lib/docker) is the engine's data root; SPECTRA_DOCKER_LOG (default /var/log/spectra-dockerd.log).
set -euo pipefail

IMAGE="spectra-test/busybox"
WAIT_SECONDS="${SPECTRA_DOCKER_WAIT_SECONDS:-60}"
DATA_ROOT="${SPECTRA_DOCKER_DATA_ROOT:-/var/lib/docker}"
LOG_FILE="${SPECTRA_DOCKER_LOG:-/var/log/spectra-dockerd.log}"
# Our own pid file, so --stop only ever stops the daemon this script started.
PID_FILE="/run/spectra-dockerd.pid"
APT_TIMEOUT=900

log() { printf 'docker-test-engine: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (sudo $0)"

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

stop_engine() {
  if [ ! -s "$PID_FILE" ]; then
    log "no dockerd started by this script (no $PID_FILE)"
    return 0
  fi
  local pid
  pid="$(cat "$PID_FILE")"
  if kill -0 "$pid" 2>/dev/null && grep -q dockerd "/proc/$pid/comm" 2>/dev/null; then
    log "stopping dockerd (pid $pid)"
    kill -TERM "$pid"
    # dockerd stops its containers (10 s grace each, in parallel) and its containerd child.
    for _ in $(seq 1 60); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "dockerd did not stop in 30 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$PID_FILE"
}

if [ "${1:-}" = "--stop" ]; then
  stop_engine
  exit 0
fi
[ $# -eq 0 ] || die "usage: $0 [--stop]"

# --- 1. packages -------------------------------------------------------------------------------------------------
# Output captured first: `grep -q` closing the pipe early would fail the pipeline under pipefail (SIGPIPE).
pkg_installed() {
  local out
  out="$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" || return 1
  [[ "$out" == *"install ok installed"* ]]
}
has_candidate() {
  local out
  out="$(apt-cache policy "$1" 2>/dev/null)" || return 1
  [[ "$out" =~ Candidate:\ [^\(] ]]
}

missing=()
pkg_installed docker.io || command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
pkg_installed busybox-static || missing+=(busybox-static)

if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get: install them by hand"
  need_update=0
  for p in "${missing[@]}"; do has_candidate "$p" || need_update=1; done
  if [ "$need_update" -eq 1 ]; then
    log "apt-get update (no candidate for ${missing[*]})"
    timeout "$APT_TIMEOUT" apt-get -o DPkg::Lock::Timeout=120 update -qq
  fi
  # Package scripts must not start a daemon with the default bridge and iptables rules: a policy-rc.d that
  # refuses every start (exit 101) does that; keep one that already exists.
  policy_created=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy_created=1
  fi
  log "installing ${missing[*]}"
  status=0
  timeout "$APT_TIMEOUT" apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends "${missing[@]}" \
    >/dev/null || status=$?
  [ "$policy_created" -eq 0 ] || rm -f /usr/sbin/policy-rc.d
  [ "$status" -eq 0 ] || die "apt-get install ${missing[*]} failed (exit $status)"
fi

BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || die "$BUSYBOX missing after installing busybox-static"

# --- 2./3. the engine --------------------------------------------------------------------------------------------
if engine_answers; then
  log "a Docker engine already answers"
else
  command -v dockerd >/dev/null 2>&1 || die "dockerd not found"
  if [ -S /var/run/docker.sock ] && ! pgrep -x dockerd >/dev/null 2>&1; then
    # A socket left behind by a daemon that died: dockerd refuses to start on it.
    rm -f /var/run/docker.sock
  fi
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    log "starting dockerd (log: $LOG_FILE)"
    mkdir -p "$DATA_ROOT" "$(dirname "$LOG_FILE")"
    # setsid + nohup: the daemon outlives this script and the CI step's process group.
    setsid nohup dockerd \
      --bridge=none --iptables=false --ip6tables=false \
      --data-root "$DATA_ROOT" \
      --host unix:///var/run/docker.sock \
      >>"$LOG_FILE" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
  fi
  deadline=$((SECONDS + WAIT_SECONDS))
  until engine_answers; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 30 "$LOG_FILE" >&2 2>/dev/null || true
      die "no Docker engine answered 'docker info' within ${WAIT_SECONDS} s"
    fi
    if [ -s "$PID_FILE" ] && ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
      tail -n 30 "$LOG_FILE" >&2 2>/dev/null || true
      rm -f "$PID_FILE"
      die "dockerd exited during start-up"
    fi
    sleep 1
  done
  log "engine ready"
fi

# --- 4. the image ------------------------------------------------------------------------------------------------
if timeout 30 docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "image $IMAGE already present"
else
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/bin" "$tmp/tmp" "$tmp/proc" "$tmp/sys" "$tmp/dev" "$tmp/etc"
  cp "$BUSYBOX" "$tmp/bin/busybox"
  # One symlink per applet (sh, sleep, yes, …), relative so they resolve inside the image.
  for applet in $("$BUSYBOX" --list); do
    [ -e "$tmp/bin/$applet" ] || ln -s busybox "$tmp/bin/$applet"
  done
  chmod 1777 "$tmp/tmp"
  timeout 120 sh -c "tar -C '$tmp' -c . | docker import -c 'ENV PATH=/bin' - '$IMAGE'" >/dev/null
  log "imported $IMAGE"
fi
