#!/usr/bin/env bash
# Install the system packages the tests use: the AOSP device daemon `adbd` and the `adb` client (Debian
# bookworm-backports 34.0.5, trixie main; the same version for both), util-linux (unshare/nsenter) and iproute2
# (loopback inside the test's network namespace) for the adb tests, and `kotlin` (kotlinc 1.3 on the JDK) to
# compile and run the Kotlin preprocessor ftk deploy generates, on the JVM, with `default-jdk-headless` for `javac`
# (the kotlin package may pull only a JRE; the tests javac the Android stubs the app's Kotlin compiles against).
# Idempotent: once everything is there it only checks. Never fails the setup: without apt (or without the network)
# it prints a warning and the adb tests skip with a reason.
set -u

need_pkgs=()
command -v adbd >/dev/null 2>&1 || [ -x /usr/lib/android-sdk/platform-tools/adbd ] || need_pkgs+=(adbd)
# The adb client (tests of --adb-client adb). bookworm main has an older adb (29); take the backports one.
command -v adb >/dev/null 2>&1 || [ -x /usr/lib/android-sdk/platform-tools/adb ] || need_pkgs+=(adb)
command -v unshare >/dev/null 2>&1 || need_pkgs+=(util-linux)
command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
command -v kotlinc >/dev/null 2>&1 || need_pkgs+=(kotlin)
command -v javac >/dev/null 2>&1 || need_pkgs+=(default-jdk-headless)
if [ ${#need_pkgs[@]} -eq 0 ]; then
  exit 0
fi

warn() { echo "setup-system: $*; the adb and Kotlin tests will be skipped" >&2; exit 0; }

command -v apt-get >/dev/null 2>&1 || warn "apt-get not found (need: ${need_pkgs[*]})"
[ "$(id -u)" -eq 0 ] || warn "not root, cannot apt-get install ${need_pkgs[*]}"

codename=""
if [ -r /etc/os-release ]; then
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
fi
# adbd is in bookworm-backports only (adb 34 too); add that suite (same mirror as the main sources) when missing.
if [ "$codename" = "bookworm" ] && ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  mirror=$(grep -rhs -m1 -E '^URIs: .*/debian/?$' /etc/apt/sources.list.d/*.sources | awk '{print $2}')
  mirror=${mirror:-http://deb.debian.org/debian}
  cat > /etc/apt/sources.list.d/ftk-bookworm-backports.sources <<SRC || warn "cannot write the backports source"
Types: deb
URIs: ${mirror}
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || echo "setup-system: apt-get update reported errors; trying the install anyway" >&2
target=""
[ "$codename" = "bookworm" ] && target="-t bookworm-backports"
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $target "${need_pkgs[@]}" >/dev/null 2>&1 \
  || apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null 2>&1 \
  || warn "apt-get install ${need_pkgs[*]} failed"
echo "setup-system: installed ${need_pkgs[*]}"
