#!/bin/sh
# ops.unit: the installed systemd unit is valid (systemd-analyze verify, with
# ExecStart pointed at this build's cairnd) and keeps its hardening.
# usage: check_unit.sh BUILD_DIR
set -eu
build=$(cd "$1" && pwd)
unit=$build/cairnd.service
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() { echo "check_unit: $*" >&2; exit 1; }

for line in 'User=cairn' 'Group=cairn' 'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' \
    'NoNewPrivileges=yes' 'CapabilityBoundingSet=' 'ReadWritePaths=/var/lib/cairn' \
    'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' 'SystemCallFilter=@system-service' \
    'LimitNOFILE=65536' 'RestartPreventExitStatus=2' 'CPUSchedulingPolicy=batch'; do
    grep -qx "$line" "$unit" || fail "$unit lacks the line \"$line\""
done

if command -v systemd-analyze >/dev/null 2>&1; then
    sed "s#^\(ExecStart[A-Za-z]*=\)/usr/bin/cairnd#\1$build/bin/cairnd#" "$unit" > "$tmp/cairnd.service"
    # Only the unit's own problems count (not the host's other units).
    out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$tmp/cairnd.service" 2>&1 || true)
    echo "$out" | grep 'cairnd.service' && fail "systemd-analyze verify found problems in the unit"
    echo "check_unit: systemd-analyze verify: ok"
else
    echo "check_unit: systemd-analyze not installed; checked the directives only"
fi
echo "check_unit: ok"
