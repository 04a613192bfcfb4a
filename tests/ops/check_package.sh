#!/bin/sh
# ops.package: CPack builds the .deb; it holds the binaries, the unit, the
# default config and the YANG modules, depends on the runtime libraries
# (libraft0 >= 0.22.1 among them) and carries the maintainer scripts; the
# default config passes cairnd --check-config.
# usage: check_package.sh BUILD_DIR
set -eu
build=$(cd "$1" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() { echo "check_package: $*" >&2; exit 1; }

(cd "$build" && cpack -G DEB -B "$tmp/pkg" >"$tmp/cpack.log" 2>&1) || { cat "$tmp/cpack.log" >&2; fail "cpack failed"; }
deb=$(ls "$tmp"/pkg/cairn_*.deb)
echo "check_package: built $(basename "$deb")"

dpkg-deb --field "$deb" Depends > "$tmp/depends"
for dep in 'libraft0 (>= 0.22.1)' libuv1 librocksdb libcivetweb1 libjansson4 libsodium23 passwd; do
    grep -qF "$dep" "$tmp/depends" || fail "Depends lacks $dep: $(cat "$tmp/depends")"
done

dpkg-deb --contents "$deb" | awk '{print $6}' > "$tmp/files"
for f in ./usr/bin/cairnd ./usr/bin/cairn-devsim ./usr/bin/cairn-bench \
    ./usr/lib/systemd/system/cairnd.service ./usr/share/cairn/cairnd.conf \
    ./usr/share/cairn/yang/cairn-cpe-system.yang ./usr/share/doc/cairn/operations.md \
    ./usr/share/man/man1/cairnctl.1; do
    grep -qx "$f" "$tmp/files" || fail "the package lacks $f"
done
# Every executable tools/ builds is in the package.
for exe in "$build"/bin/cairn*; do
    name=$(basename "$exe")
    case "$name" in *.so) continue ;; esac
    grep -qx "./usr/bin/$name" "$tmp/files" || fail "the package lacks /usr/bin/$name"
done

dpkg-deb --ctrl-tarfile "$deb" | tar -t > "$tmp/control"
for f in postinst prerm postrm; do
    grep -q "$f\$" "$tmp/control" || fail "the package has no $f"
done

# The default config, with its two absolute paths moved into $tmp.
dpkg-deb -x "$deb" "$tmp/root"
printf 'a-password-of-some-length\n' > "$tmp/admin.pw"
sed -e "s#/etc/cairn/admin.pw#$tmp/admin.pw#" -e "s#/var/lib/cairn#$tmp/data#" \
    "$tmp/root/usr/share/cairn/cairnd.conf" > "$tmp/cairnd.conf"
"$build/bin/cairnd" --check-config -c "$tmp/cairnd.conf" >/dev/null || fail "the default config is invalid"
echo "check_package: ok"
