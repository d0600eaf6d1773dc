#!/usr/bin/env bash
# Install Debian's Kannel (bearerbox, smsbox; 1.4.5 on bookworm) for `denpo bench kannel`.
# Idempotent: exits at once when both daemons are there.  Needs root (or sudo) and a Debian mirror.
# The package's init script must not start a system-wide Kannel: while installing, a
# policy-rc.d that forbids service starts is put in place (only when none exists) and removed after.
set -euo pipefail

have() { [ -x /usr/sbin/bearerbox ] && [ -x /usr/sbin/smsbox ]; }
if have; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "bench/kannel/install.sh: no apt-get; install Kannel 1.4.5 (bearerbox, smsbox) by hand" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo -n"
fi
policy=/usr/sbin/policy-rc.d
placed=0
cleanup() { if [ "$placed" = 1 ]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# placed by denpo bench/kannel/install.sh while installing kannel\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    placed=1
fi
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends kannel; then
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends kannel
fi
have || { echo "bench/kannel/install.sh: kannel installed but /usr/sbin/bearerbox or smsbox missing" >&2; exit 1; }
