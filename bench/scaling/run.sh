#!/usr/bin/env bash
# The scaling rig: the coordinator on the host, N Deno workers each in its own
# network namespace on a shaped veth link and a cpu-capped cgroup.
#
#   bench/scaling/run.sh [--quick] [--profiles lan,home,mobile] [--workers 1,2,4,8] [--cpu 0.4]
#                        [--seconds S] [--churn K] [--job FILE] [--modes sync,...] [--target E]
#   bench/scaling/run.sh --cleanup     # removes what a run killed with SIGKILL left behind
#   bench/scaling/run.sh --help
#
# Needs root. The driver is bench/scaling/rig.ts (tsx); this wrapper picks the
# run's tag and, whatever happens to the driver, removes every namespace,
# link and cgroup carrying that tag on the way out.
set -euo pipefail
cd "$(dirname "$0")/../.."

clean_tag() { # tag: kill what is left in the run's cgroups and namespaces, delete them
  local tag=$1 cg=/sys/fs/cgroup/cpu/tessera-rig-$1 ns pid link
  if [ -d "$cg" ]; then
    for pid in $(cat "$cg"/cgroup.procs "$cg"/*/cgroup.procs 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  fi
  for ns in $(ip netns list | awk '{print $1}' | grep "^tessera-rig-$tag-" || true); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  for link in $(ip -o link | sed -n "s/^[0-9]*: \(tr$tag[bh][0-9]*\)[@:].*/\1/p"); do ip link del "$link" 2>/dev/null || true; done
  if [ -d "$cg" ]; then
    for _ in $(seq 50); do
      rmdir "$cg"/*/ 2>/dev/null || true
      rmdir "$cg" 2>/dev/null && break
      sleep 0.1
    done
  fi
}

leftover_tags() {
  { ip netns list | sed -n 's/^tessera-rig-\([0-9a-f]\{4\}\)-.*/\1/p'
    ip -o link | sed -n 's/^[0-9]*: tr\([0-9a-f]\{4\}\)[bh][0-9]*[@:].*/\1/p'
    ls /sys/fs/cgroup/cpu/ | sed -n 's/^tessera-rig-\([0-9a-f]\{4\}\)$/\1/p'; } | sort -u
}

if [ "$(id -u)" != 0 ]; then
  echo "run.sh: needs root (ip netns, tc, cgroups)" >&2
  exit 1
fi

if [ "${1:-}" = "--cleanup" ]; then
  for t in $(leftover_tags); do echo "removing run $t"; clean_tag "$t"; done
  left=$(leftover_tags)
  [ -z "$left" ] && echo "nothing of the rig is left" || { echo "still there: $left" >&2; exit 1; }
  exit 0
fi

RIG_TAG=$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
export RIG_TAG
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "$XDG_RUNTIME_DIR" ]; then
  XDG_RUNTIME_DIR=$(mktemp -d)
  chmod 700 "$XDG_RUNTIME_DIR"
  export XDG_RUNTIME_DIR
  own_xdg=1
fi

driver=
on_exit() {
  local rc=$?
  if [ -n "$driver" ] && kill -0 "$driver" 2>/dev/null; then
    kill -TERM "$driver" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$driver" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$driver" 2>/dev/null || true
  fi
  clean_tag "$RIG_TAG"
  if [ -n "$(leftover_tags | grep -x "$RIG_TAG" || true)" ]; then echo "run.sh: could not remove everything of run $RIG_TAG" >&2; fi
  [ -n "${own_xdg:-}" ] && rm -rf "$XDG_RUNTIME_DIR"
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

node_modules/.bin/tsx bench/scaling/rig.ts "$@" &
driver=$!
wait "$driver"
