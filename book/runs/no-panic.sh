#!/usr/bin/env bash
# Can the linker prove that chapter 06's broker cannot panic? Tries the `no-panic` crate's
# attribute for real, on a scratch copy of chapters/06-limits (the repository is not touched).
#
#   bash book/runs/no-panic.sh [SCRATCH_DIR]      # default: /tmp/nopanic
#   ONLY=lookup bash book/runs/no-panic.sh         # one experiment (names below)
#
# What it printed when it was last run is kept in book/runs/no-panic.log (chapter 06's page
# includes it): `bash book/runs/no-panic.sh | tee book/runs/no-panic.log` records it again.
#
# How `#[no_panic]` works: it wraps the function's body so that, should a panic unwind out of it,
# a guard's destructor calls an extern function that does not exist. If the optimiser proves that
# no unwind can leave the function, that call is deleted and the program links; otherwise the
# link fails and names the function. So it needs an optimised build that links a binary calling
# the function, and `panic = "unwind"` (with `abort` there is no unwinding and every check passes).
#
# What it tries, one release build each (the dependencies are built once, by the first):
#   handle     `Broker::handle`, the broker's whole event handling;
#   forward    `Broker::forward`, the fan-out with `try_send`;
#   stats      `Broker::stats`, a function that only copies counters;
#   display    `ConnId::fmt` (`Display`), a `write!` into a formatter;
#   count      a new function that only does a `saturating_add` on a counter;
#   forget     a new function that removes a client from the map (dropping its outbox);
#   lookup     a new function that only looks a client up in the map;
#   take       a new function that removes a client and hands it back (the caller drops it);
#   unused     a new function that panics, which nothing calls;
#   handle_fat_lto  `handle` again, with fat LTO and one codegen unit;
#   lookup_fat_lto, forget_fat_lto, take_fat_lto: those three again, with fat LTO.
# Each outcome is printed as "linked" or "link failed", with the lines of the error that name
# the function. It needs network access to crates.io once, to fetch `no-panic`.
set -uo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
scratch="${1:-/tmp/nopanic}"
no_panic_version="0.1"
if [ ! -d "$repo/chapters/06-limits" ]; then
    echo "error: run this script from the repository (book/runs/no-panic.sh): no $repo/chapters/06-limits" >&2
    exit 2
fi

# Everything but the build directory goes, so a second run does not rebuild the dependencies.
mkdir -p "$scratch"
find "$scratch" -mindepth 1 -maxdepth 1 ! -name target -exec rm -rf {} +
cp -r "$repo/chapters/06-limits" "$scratch/ch06"
cp -r "$repo/kit" "$scratch/kit"
rm -rf "$scratch/ch06/tests"
cp "$repo/Cargo.lock" "$scratch/Cargo.lock"

# One workspace of two crates, with the dependency versions of the repository's workspace.
deps="$(sed -n '/^\[workspace.dependencies\]/,/^\[/p' "$repo/Cargo.toml" | grep -v '^\[' | grep -v '^#' | grep -v 'path = ')"
cat >"$scratch/Cargo.toml" <<EOF
[workspace]
resolver = "3"
members = ["ch06", "kit"]

[workspace.package]
edition = "2024"
rust-version = "1.88"
license = "MIT OR Apache-2.0"
publish = false

[workspace.dependencies]
$deps
no-panic = "$no_panic_version"
fanout-kit = { path = "kit" }

[workspace.lints.rust]
unsafe_code = "forbid"

[profile.release]
panic = "unwind"
EOF
# The chapter's dev-dependencies are not needed for a release build of its binary.
sed -i '/^\[dev-dependencies\]/,/^$/d; /^\[\[test\]\]/,/^$/d' "$scratch/ch06/Cargo.toml"
sed -i 's/^\[dependencies\]/[dependencies]\nno-panic.workspace = true/' "$scratch/ch06/Cargo.toml"

broker="$scratch/ch06/src/broker.rs"
cp "$broker" "$broker.orig"

# Builds the scratch copy as it is now and reports; $1 names the experiment, $2.. are extra env.
build_and_report() {
    local label="$1"
    shift
    local log="$scratch/$label.log"
    (cd "$scratch" && env "$@" cargo build --release -p ch06-limits >"$log" 2>&1)
    if grep -q "Finished" "$log"; then
        echo "   linked: no reference to the no-panic guard was left in the binary"
    else
        echo "   link failed:"
        grep -E "ERROR\[no-panic\]|referenced by|>>> .*\(" "$log" | sed 's/^ *//' | sort -u | head -6 | cut -c1-160 |
            sed 's/^/     /'
    fi
}

# Puts `#[no_panic::no_panic]` on the line before the first line matching $2, builds, reports.
try() {
    local label="$1" pattern="$2"
    shift 2
    cp "$broker.orig" "$broker"
    if ! grep -q "$pattern" "$broker"; then
        echo "== $label: pattern not found in broker.rs: $pattern"
        return
    fi
    [ -n "${ONLY:-}" ] && [ "$ONLY" != "$label" ] && return
    sed -i "0,/$pattern/s//#[no_panic::no_panic]\n&/" "$broker"
    echo "== $label: #[no_panic] on the line before: $pattern${*:+ (with $*)}"
    build_and_report "$label" "$@"
}

# Applies the Perl substitution $2 to broker.rs (a small change that adds a checked function and
# calls it where the binary runs it), builds, reports.
try_edit() {
    local label="$1" edit="$2" what="$3"
    shift 3
    [ -n "${ONLY:-}" ] && [ "$ONLY" != "$label" ] && return
    cp "$broker.orig" "$broker"
    perl -0pi -e "$edit" "$broker"
    echo "== $label: $what${*:+ (with $*)}"
    build_and_report "$label" "$@"
}

rustc --version
echo "chapters/06-limits, no-panic $no_panic_version, release profile, panic = \"unwind\", in $scratch"
try handle 'pub fn handle(&mut self, event: Event)'
try forward '    fn forward(&mut self'
try stats '    pub fn stats(&self) -> Stats {'
try display '    fn fmt(&self, f: &mut fmt::Formatter'
try_edit count \
    's/Event::Refused => self\.counts\.refused = self\.counts\.refused\.saturating_add\(1\),/Event::Refused => self.count_refused(),/; s/(    pub fn stats\(&self\) -> Stats \{)/    #[no_panic::no_panic]\n    fn count_refused(&mut self) {\n        self.counts.refused = self.counts.refused.saturating_add(1);\n    }\n\n$1/' \
    'a new `count_refused` (one saturating_add), called for Event::Refused'
try_edit forget \
    's/if self\.clients\.remove\(&id\)\.is_some\(\)/if self.forget(id)/; s/(    pub fn stats\(&self\) -> Stats \{)/    #[no_panic::no_panic]\n    fn forget(&mut self, id: ConnId) -> bool {\n        self.clients.remove(&id).is_some()\n    }\n\n$1/' \
    'a new `forget` (HashMap::remove, which drops the outbox), called for Event::Leave'
try_edit lookup \
    's/if self\.clients\.remove\(&id\)\.is_some\(\)/if self.knows(id) \&\& self.clients.remove(\&id).is_some()/; s/(    pub fn stats\(&self\) -> Stats \{)/    #[no_panic::no_panic]\n    fn knows(&self, id: ConnId) -> bool {\n        self.clients.contains_key(&id)\n    }\n\n$1/' \
    'a new `knows` (HashMap::contains_key, nothing dropped), called for Event::Leave'
try_edit take \
    's/if self\.clients\.remove\(&id\)\.is_some\(\)/if self.take(id).is_some()/; s/(    pub fn stats\(&self\) -> Stats \{)/    #[no_panic::no_panic]\n    fn take(&mut self, id: ConnId) -> Option<Client> {\n        self.clients.remove(&id)\n    }\n\n$1/' \
    'a new `take` (HashMap::remove, the outbox handed back and dropped by the caller), called for Event::Leave'
try_edit unused \
    's/(    pub fn stats\(&self\) -> Stats \{)/    #[no_panic::no_panic]\n    pub fn never_called(n: u64) -> u64 {\n        if n == 7 {\n            panic!("seven")\n        }\n        n\n    }\n\n$1/' \
    'a new `never_called` that panics on 7, which nothing calls'
try handle_fat_lto 'pub fn handle(&mut self, event: Event)' CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
try_edit lookup_fat_lto \
    's/if self\.clients\.remove\(&id\)\.is_some\(\)/if self.knows(id) \&\& self.clients.remove(\&id).is_some()/; s/(    pub fn stats\(&self\) -> Stats \{)/    #[no_panic::no_panic]\n    fn knows(&self, id: ConnId) -> bool {\n        self.clients.contains_key(&id)\n    }\n\n$1/' \
    'a new `knows` (HashMap::contains_key, nothing dropped), called for Event::Leave' \
    CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
try_edit forget_fat_lto \
    's/if self\.clients\.remove\(&id\)\.is_some\(\)/if self.forget(id)/; s/(    pub fn stats\(&self\) -> Stats \{)/    #[no_panic::no_panic]\n    fn forget(&mut self, id: ConnId) -> bool {\n        self.clients.remove(&id).is_some()\n    }\n\n$1/' \
    'a new `forget` (HashMap::remove, which drops the outbox), called for Event::Leave' \
    CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
try_edit take_fat_lto \
    's/if self\.clients\.remove\(&id\)\.is_some\(\)/if self.take(id).is_some()/; s/(    pub fn stats\(&self\) -> Stats \{)/    #[no_panic::no_panic]\n    fn take(&mut self, id: ConnId) -> Option<Client> {\n        self.clients.remove(&id)\n    }\n\n$1/' \
    'a new `take` (HashMap::remove, the outbox handed back and dropped by the caller), called for Event::Leave' \
    CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
