#!/usr/bin/env bash
# Copy this working tree to a k3s VM over ssh with rsync, leaving out build
# output (target/), node_modules/ and .git/, so the image can be built there.
#
#   scripts/sync-to-vm.sh [options] VM_HOST
#   scripts/sync-to-vm.sh --local-dest DIR      (copy into a local folder)
#
# Options:
#   -u, --user USER          ssh user (default: the ssh configuration's user)
#   -d, --destination DIR    folder on the VM (default:
#                            ~/mini-code-runner/mini-code-runner); a leading
#                            ~/ means the ssh user's home folder
#   -p, --port PORT          ssh port (default: 22, or the ssh configuration's)
#       --local-dest DIR     copy into DIR on this machine instead of a VM
#       --delete             also delete files in the destination that are not
#                            in the tree (excluded folders are kept)
#   -n, --dry-run            list what would be copied, copy nothing
#   -h, --help               print this help
set -euo pipefail

# The ~ stays literal on purpose: it stands for the home folder on the VM.
# shellcheck disable=SC2088
readonly DEFAULT_DESTINATION="~/mini-code-runner/mini-code-runner"
# Patterns with a trailing slash match folders of that name at any depth.
readonly EXCLUDES=(target/ node_modules/ .git/)

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

fail() {
    echo "sync-to-vm: $*" >&2
    exit 2
}

vm_user=""
vm_host=""
vm_port=""
destination="$DEFAULT_DESTINATION"
local_destination=""
rsync_options=(--archive --compress --human-readable --itemize-changes)

while [[ $# -gt 0 ]]; do
    case "$1" in
        -u|--user) [[ $# -ge 2 ]] || fail "$1 needs a value"; vm_user="$2"; shift 2 ;;
        -d|--destination) [[ $# -ge 2 ]] || fail "$1 needs a value"; destination="$2"; shift 2 ;;
        -p|--port) [[ $# -ge 2 ]] || fail "$1 needs a value"; vm_port="$2"; shift 2 ;;
        --local-dest) [[ $# -ge 2 ]] || fail "$1 needs a value"; local_destination="$2"; shift 2 ;;
        --delete) rsync_options+=(--delete); shift ;;
        -n|--dry-run) rsync_options+=(--dry-run); shift ;;
        -h|--help) usage; exit 0 ;;
        -*) fail "unknown option $1 (see --help)" ;;
        *) [[ -z "$vm_host" ]] || fail "unexpected argument $1: only one VM_HOST is allowed"; vm_host="$1"; shift ;;
    esac
done

if [[ -z "$vm_host" && -z "$local_destination" ]]; then
    fail "missing VM_HOST (or --local-dest DIR); see --help"
fi
if [[ -n "$vm_host" && -n "$local_destination" ]]; then
    fail "give either VM_HOST or --local-dest, not both"
fi
command -v rsync >/dev/null || fail "rsync is not installed (Debian and Ubuntu: apt-get install rsync)"

source_dir="$(cd "$(dirname "$0")/.." && pwd)"
for pattern in "${EXCLUDES[@]}"; do
    rsync_options+=(--exclude="$pattern")
done

if [[ -n "$local_destination" ]]; then
    mkdir -p -- "$local_destination"
    echo "sync-to-vm: copying $source_dir to $local_destination"
    rsync "${rsync_options[@]}" -- "$source_dir/" "$local_destination/"
    exit 0
fi

# A remote path without a leading / is relative to the ssh user's home, so
# ~/ is dropped instead of relying on a shell on the VM to expand it.
remote_path="${destination#\~/}"
[[ -n "$remote_path" && "$remote_path" != "~" ]] || fail "invalid destination $destination"
target="${vm_user:+$vm_user@}$vm_host"

ssh_command=(ssh)
[[ -z "$vm_port" ]] || ssh_command+=(-p "$vm_port")

# rsync creates only the last folder of the destination, so the remote rsync
# is started behind a mkdir -p of the whole path.
printf -v quoted_path '%q' "$remote_path"
echo "sync-to-vm: copying $source_dir to $target:$remote_path"
rsync "${rsync_options[@]}" \
    --rsh="${ssh_command[*]}" \
    --rsync-path="mkdir -p -- $quoted_path && rsync" \
    -- "$source_dir/" "$target:$remote_path/"
