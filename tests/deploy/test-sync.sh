#!/usr/bin/env bash
# Tests for scripts/sync-to-vm.sh, with no network: a local destination, and
# a stand-in ssh on PATH that runs the remote command in a local "home".
# Prints "N passed, N failed" and exits 1 when a check failed.
set -uo pipefail

REPO_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

passed=0
failed=0

# Runs a check quietly, and prints its output only when it fails.
check() {
    local description="$1"
    shift
    if "$@" >"$WORK/check.log" 2>&1; then
        passed=$((passed + 1))
        echo "ok   $description"
    else
        failed=$((failed + 1))
        echo "FAIL $description"
        sed 's/^/     /' "$WORK/check.log"
    fi
}

# Returns success when the command exits with the given status.
exits_with() {
    local expected="$1"
    shift
    "$@"
    test $? -eq "$expected"
}

# A small tree with the script in it, since the script copies the tree it
# lives in.
SOURCE="$WORK/source"
mkdir -p "$SOURCE/scripts" "$SOURCE/src" "$SOURCE/target/release" "$SOURCE/node_modules/pkg" \
    "$SOURCE/ui/node_modules/pkg" "$SOURCE/.git/objects" "$SOURCE/docs/with space"
cp "$REPO_ROOT/scripts/sync-to-vm.sh" "$SOURCE/scripts/"
echo 'fn main() {}' > "$SOURCE/src/main.rs"
echo '[package]' > "$SOURCE/Cargo.toml"
echo 'binary' > "$SOURCE/target/release/code-runner"
echo '{}' > "$SOURCE/node_modules/pkg/index.js"
echo '{}' > "$SOURCE/ui/node_modules/pkg/index.js"
echo 'ref: refs/heads/main' > "$SOURCE/.git/HEAD"
echo '<p>ui</p>' > "$SOURCE/ui/index.html"
echo 'notes' > "$SOURCE/docs/with space/file name.md"
SYNC="$SOURCE/scripts/sync-to-vm.sh"

# Local destination

LOCAL="$WORK/local/nested/destination"
check "local sync exits 0" bash "$SYNC" --local-dest "$LOCAL"
check "copies top-level files" cmp -s "$SOURCE/Cargo.toml" "$LOCAL/Cargo.toml"
check "copies nested files" cmp -s "$SOURCE/src/main.rs" "$LOCAL/src/main.rs"
check "copies names with spaces" test -f "$LOCAL/docs/with space/file name.md"
check "copies the script itself" test -x "$LOCAL/scripts/sync-to-vm.sh"
check "copies ui files" test -f "$LOCAL/ui/index.html"
check "leaves out target/" test ! -e "$LOCAL/target"
check "leaves out node_modules/" test ! -e "$LOCAL/node_modules"
check "leaves out nested node_modules/" test ! -e "$LOCAL/ui/node_modules"
check "leaves out .git/" test ! -e "$LOCAL/.git"

# --delete removes files gone from the source but keeps excluded folders.
rm "$SOURCE/docs/with space/file name.md"
mkdir -p "$LOCAL/target" && echo 'cache' > "$LOCAL/target/keep"
check "sync without --delete exits 0" bash "$SYNC" --local-dest "$LOCAL"
check "keeps removed files without --delete" test -f "$LOCAL/docs/with space/file name.md"
check "sync with --delete exits 0" bash "$SYNC" --delete --local-dest "$LOCAL"
check "--delete removes files gone from the source" test ! -e "$LOCAL/docs/with space/file name.md"
check "--delete keeps the excluded target/" test -f "$LOCAL/target/keep"

DRY="$WORK/dry"
check "dry run exits 0" bash "$SYNC" --dry-run --local-dest "$DRY"
check "dry run copies nothing" test ! -e "$DRY/Cargo.toml"

# Usage errors

check "no host is a usage error" exits_with 2 bash "$SYNC"
check "unknown option is a usage error" exits_with 2 bash "$SYNC" --bogus host
check "host and --local-dest together is a usage error" exits_with 2 bash "$SYNC" --local-dest "$WORK/x" host
bash "$SYNC" --help > "$WORK/help.txt"
check "--help prints usage" grep -q -- "--local-dest DIR" "$WORK/help.txt"

# Remote destination, through a stand-in ssh that records its arguments and
# runs the remote command in a local folder playing the VM user's home.
FAKE_BIN="$WORK/bin"
FAKE_HOME="$WORK/vm-home"
mkdir -p "$FAKE_BIN" "$FAKE_HOME"
cat > "$FAKE_BIN/ssh" <<'EOF'
#!/usr/bin/env bash
# Stand-in for ssh. It skips options, records the target and runs the command here.
while [[ "$1" == -* ]]; do
    case "$1" in
        -p|-l|-i|-o) echo "option $1 $2" >> "$FAKE_SSH_LOG"; shift 2 ;;
        *) shift ;;
    esac
done
echo "target $1" >> "$FAKE_SSH_LOG"
shift
cd "$FAKE_HOME" && exec sh -c "$*"
EOF
chmod +x "$FAKE_BIN/ssh"
export FAKE_HOME
export FAKE_SSH_LOG="$WORK/ssh.log"

check "remote sync exits 0" env PATH="$FAKE_BIN:$PATH" bash "$SYNC" --user alice --port 2222 vm.example
REMOTE="$FAKE_HOME/mini-code-runner/mini-code-runner"
check "default destination is under the user's home" cmp -s "$SOURCE/src/main.rs" "$REMOTE/src/main.rs"
check "remote leaves out target/" test ! -e "$REMOTE/target"
check "remote leaves out .git/" test ! -e "$REMOTE/.git"
# rsync passes the user either inside the target or as "-l USER".
check "ssh gets the host" grep -qE "^target (alice@)?vm.example$" "$FAKE_SSH_LOG"
check "ssh gets the user" grep -qE "^(option -l alice|target alice@vm.example)$" "$FAKE_SSH_LOG"
check "ssh gets the port" grep -qx "option -p 2222" "$FAKE_SSH_LOG"

# shellcheck disable=SC2088 # the literal ~ is the case under test
check "custom destination exits 0" \
    env PATH="$FAKE_BIN:$PATH" bash "$SYNC" --destination "~/work/code runner" vm.example
check "custom destination is created" test -f "$FAKE_HOME/work/code runner/Cargo.toml"

# The real tree: the script copies this repository without its .git.
REAL="$WORK/real"
check "real tree sync exits 0" bash "$REPO_ROOT/scripts/sync-to-vm.sh" --local-dest "$REAL"
check "real tree copies deploy/" test -f "$REAL/deploy/kustomization.yaml"
check "real tree leaves out .git/" test ! -e "$REAL/.git"
check "real tree leaves out target/" test ! -e "$REAL/target"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
