#!/usr/bin/env bash
# Installs one Debian package for the test servers, unless FILE already exists:
#
#   bash scripts/apt-install.sh <package> <file the package provides>
#
# Test files start their servers concurrently (ZooKeeper, etcd and Redis, several instances of
# each), and two apt-get runs at once fail on dpkg's lock: every install in this repository goes
# through one lock (.tmp/apt.lock), re-checks FILE once it holds it, and waits for dpkg's own lock
# (an apt-get started by something else) for up to 5 minutes. Prints nothing on success when FILE
# was there; logs to .tmp/apt-<package>.log.
set -euo pipefail

package="${1:?usage: apt-install.sh <package> <file>}"
file="${2:?usage: apt-install.sh <package> <file>}"
[[ "$package" =~ ^[a-z0-9][a-z0-9.+-]*$ ]] || { echo "apt-install.sh: bad package name '$package'" >&2; exit 2; }
[[ -e "$file" ]] && exit 0

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state_dir="$root/.tmp"
mkdir -p "$state_dir"
exec 6>"$state_dir/apt.lock"
flock -w 900 6 || { echo "apt-install.sh: another install holds $state_dir/apt.lock for 15 minutes" >&2; exit 1; }
[[ -e "$file" ]] && exit 0
[[ "$(id -u)" == 0 ]] || { echo "apt-install.sh: $file is missing and this is not root: run 'apt-get update && apt-get install -y $package'" >&2; exit 1; }

t0=$SECONDS
echo "apt-install.sh: installing Debian's $package package" >&2
log="$state_dir/apt-$package.log"
if ! { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -q &&
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "$package"; } >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "apt-install.sh: installing $package failed (whole log: $log)" >&2
  exit 1
fi
[[ -e "$file" ]] || { echo "apt-install.sh: apt-get installed $package but $file is missing" >&2; exit 1; }
echo "apt-install.sh: installed $package in $((SECONDS - t0)) s" >&2
