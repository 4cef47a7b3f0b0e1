#!/usr/bin/env bash
# Builds cutover's packages into dist/, for machines without a Rust toolchain:
#   - cutover-VERSION-linux-ARCH: the binary, stripped (glibc; the minimum
#     glibc it needs is printed and written into the package's Depends);
#   - cutover_VERSION_ARCH.deb: the binary, a man page per command, bash, zsh
#     and fish completions, and the copyright notice (Apache-2.0), built by
#     dpkg-deb with every file's time set to SOURCE_DATE_EPOCH (default: the
#     last commit's time) and root ownership, so that the same binary gives
#     the same package;
#   - SHA256SUMS for both.
# Install with: sudo dpkg -i dist/cutover_*.deb   (upgrading keeps your files:
# the package holds only the binary and its documentation).
#
# Usage: scripts/package.sh [--profile PROFILE]   (default: dist, the release
# profile with symbols stripped, one codegen unit and whole-program LTO; CI
# packages its dev build to test the package)
set -euo pipefail
cd "$(dirname "$0")/.."
profile=dist
if [ "${1:-}" = --profile ]; then profile=${2:?a profile}; fi
target_dir=${CARGO_TARGET_DIR:-target}
if [ "$profile" != dev ] && [ "$profile" != test ]; then
  # Paths in the binary (panic locations) name neither this checkout nor
  # the cargo home, so that a build anywhere gives the same bytes
  # (scripts/reproducible.sh checks it). Not for dev: it would rebuild
  # everything the tests built.
  cargo_home=${CARGO_HOME:-$HOME/.cargo}
  export RUSTFLAGS="${RUSTFLAGS:-} --remap-path-prefix=$PWD=/cutover --remap-path-prefix=$cargo_home=/cargo"
fi
cargo build --locked --quiet --profile "$profile" -p cutover-cli
case $profile in dev | test) built=debug ;; *) built=$profile ;; esac
binary=$target_dir/$built/cutover
version=$("$binary" --version | awk '{print $2}')
arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
out=dist
root=$out/root
rm -rf "$root"
mkdir -p "$out" "$root/DEBIAN"

install -D -m 755 "$binary" "$root/usr/bin/cutover"
strip --strip-all "$root/usr/bin/cutover"
# The newest glibc symbol version the binary uses is the oldest glibc it runs on.
glibc=$(objdump -T "$root/usr/bin/cutover" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -Vu | tail -n 1)
"$root/usr/bin/cutover" man --out "$root/usr/share/man/man1" >/dev/null
gzip -9n "$root/usr/share/man/man1/"*.1
install -d "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
  "$root/usr/share/fish/vendor_completions.d" "$root/usr/share/doc/cutover"
"$root/usr/bin/cutover" completions bash >"$root/usr/share/bash-completion/completions/cutover"
"$root/usr/bin/cutover" completions zsh >"$root/usr/share/zsh/vendor-completions/_cutover"
"$root/usr/bin/cutover" completions fish >"$root/usr/share/fish/vendor_completions.d/cutover.fish"
cat >"$root/usr/share/doc/cutover/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: cutover
Files: *
License: Apache-2.0
 On Debian systems the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
COPYRIGHT
installed_kb=$(du -sk --apparent-size "$root/usr" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: cutover
Version: $version
Architecture: $arch
Maintainer: cutover maintainers <cutover@localhost>
Depends: libc6 (>= $glibc)
Installed-Size: $installed_kb
Section: utils
Priority: optional
Description: move health data between systems and prove that it moved right
 Reconciles tables and exports exactly, refreshes lower environments from
 production with fail-closed sanitization, delivers files with independent
 proof of persistence, drains old versions, and runs journaled runbooks
 with approvals and evidence reports. One binary; SQLite is the embedded
 default, so cutover quickstart runs with no server at all.
CONTROL
find "$root" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +
deb=$out/cutover_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
plain=$out/cutover-$version-linux-$arch
cp "$root/usr/bin/cutover" "$plain"
touch --date="@$SOURCE_DATE_EPOCH" "$plain"
rm -rf "$root"
(cd "$out" && sha256sum "$(basename "$plain")" "$(basename "$deb")" >SHA256SUMS)
echo "binary:  $plain ($(du -m "$plain" | cut -f1) MB, needs glibc $glibc or newer)"
echo "package: $deb"
cat "$out/SHA256SUMS"
