#!/bin/sh
# install-deps.sh - installs the Debian packages Switchyard builds, tests and runs with.
# Idempotent and quiet when everything is present; runs apt-get update once, then
# one apt-get install for whatever is missing.
set -eu

PKGS="build-essential pkg-config git curl ca-certificates
libnats-dev nats-server libmsgpack-dev libuv1-dev libsodium-dev libpq-dev
libcmocka-dev libhttp-parser-dev libjansson-dev libcurl4-openssl-dev
postgresql postgresql-client prometheus valgrind
yamllint python3-yaml chromium chromium-driver python3-selenium"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
        echo "install-deps: missing packages:$missing (run as root or install sudo)" >&2
        exit 1
    fi
fi
echo "install-deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null

# Only promtool is wanted from `prometheus`: where services start on install
# (systemd, or an init without policy-rc.d), stop and disable the server it
# started on :9090. A prometheus that was installed before is left alone.
case " $missing " in
*" prometheus "*)
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        $SUDO systemctl disable --now prometheus.service >/dev/null 2>&1 || true
    elif [ -x /etc/init.d/prometheus ]; then
        $SUDO /etc/init.d/prometheus stop >/dev/null 2>&1 || true
        $SUDO update-rc.d prometheus disable >/dev/null 2>&1 || true
    fi
    ;;
esac
echo "install-deps: done" >&2
