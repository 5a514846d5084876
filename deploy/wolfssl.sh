#!/usr/bin/env bash
# Build wolfSSL with SP ECC (x86-64 assembly) from Debian's own source
# package, the same version as the installed libwolfssl-dev, into
# .deps/wolfssl-<key>/ (static library, headers, pkg-config file), and point
# .deps/wolfssl at it. Debian's binary package lacks SP ECC, which makes
# ECDSA verify and ECDH several times slower (bench/crypto.sh measures it).
#
# - The source comes through apt with a private configuration under
#   .deps/apt: the deb lines of this machine's own sources turned into
#   deb-src; the system's apt sources and lists are never touched.
# - The configure options are Debian's (debian/rules) plus the SP ones, so
#   the feature set is the packaged one; the compiler flags are Debian's
#   (dpkg-buildflags: -O2, hardening).
# - Cached by version and flags: a second run with the same key does
#   nothing. --force rebuilds.
# Exits non-zero (with the reason) if the source cannot be fetched or
# built; deploy/deps.sh then goes on and CMake falls back to the packaged
# library with a warning.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
deps="$root/.deps"
force=0
[ "${1:-}" = "--force" ] && force=1

debian_flags=(--enable-distro --enable-pkcs11 --disable-examples --disable-silent-rules)
sp_flags=(--enable-sp --enable-sp-asm --enable-intelasm)
# --disable-fpecc: --enable-distro turns on FP_ECC, a cache that builds a
# table for a point on its second use. A manager uses each device key two
# or three times (verify the request, ECDH for the envelope, verify the
# confirm) and never again, so it pays the table every time: measured with
# bench/enroll.sh, enrollments ran 1.45x faster without it (engine/crypto
# bound 0.55 -> 0.79-0.84).
our_flags=(--enable-static --disable-shared --with-pic --disable-fpecc)
case "$(uname -m)" in
    x86_64) ;;
    *) sp_flags=(--enable-sp --enable-sp-asm) ;; # no Intel assembly elsewhere
esac

version=$(dpkg-query -W -f='${Version}' libwolfssl-dev 2>/dev/null || true)
if [ -z "$version" ]; then
    echo "wolfssl: libwolfssl-dev is not installed; run deploy/deps.sh" >&2
    exit 1
fi
flags="${debian_flags[*]} ${sp_flags[*]} ${our_flags[*]}"
# Debian's compiler flags too (optimisation, hardening), as dpkg-buildpackage
# would pass them: configure alone would build the C parts at -O0.
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
# (minus the file-prefix map, which depends on the directory it is run in)
build_cflags=$(dpkg-buildflags --get CFLAGS | sed 's/-ffile-prefix-map=[^ ]* *//')
build_cppflags=$(dpkg-buildflags --get CPPFLAGS)
build_ldflags=$(dpkg-buildflags --get LDFLAGS)
key=$(printf '%s\n%s\n%s\n%s\n%s\n' "$version" "$flags" "$build_cflags" "$build_cppflags" "$build_ldflags" |
      sha256sum | cut -c1-12)
prefix="$deps/wolfssl-$key"

if [ $force -eq 0 ] && [ -f "$prefix/.complete" ]; then
    ln -sfn "wolfssl-$key" "$deps/wolfssl"
    echo "wolfssl: SP build of $version cached (.deps/wolfssl-$key)"
    exit 0
fi

work="$deps/build-$key"
rm -rf "$work" "$prefix"
mkdir -p "$work" "$deps/apt/lists/partial" "$deps/apt/cache/archives/partial" "$deps/apt/sources.list.d"
trap 'rm -rf "$work"' EXIT

# deb-src twins of this machine's enabled Debian sources (deb822 and
# one-line formats), in the private apt directory only.
rm -f "$deps/apt/sources.list.d/"*
for f in /etc/apt/sources.list.d/*.sources; do
    grep -Eq '^Types:.*\bdeb\b' "$f" 2>/dev/null || continue
    sed 's/^Types:.*$/Types: deb-src/' "$f" >"$deps/apt/sources.list.d/$(basename "$f")"
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    grep -E '^deb ' "$f" | sed 's/^deb /deb-src /' >>"$deps/apt/sources.list.d/src.list" || true
done
apt_opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$deps/apt/sources.list.d"
          -o "Dir::State::Lists=$deps/apt/lists" -o "Dir::Cache=$deps/apt/cache"
          -o "APT::Sandbox::User=root" -q)

# The fetched source package stays in .deps/src: later builds (other
# flags, node-fw's cross build) unpack it again without fetching.
srcpkg="$deps/src/wolfssl_$version"
if ! ls "$srcpkg"/*.dsc >/dev/null 2>&1; then
    echo "wolfssl: fetching Debian's source package wolfssl=$version"
    mkdir -p "$srcpkg.tmp"
    # apt-get update exits 0 when it reaches nothing: look for the index.
    if ! apt-get "${apt_opts[@]}" update >"$work/apt-update.log" 2>&1 ||
        ! ls "$deps/apt/lists/"*Sources* >/dev/null 2>&1; then
        tail -5 "$work/apt-update.log" >&2
        echo "wolfssl: could not read the source package index" >&2
        exit 1
    fi
    if ! (cd "$srcpkg.tmp" && apt-get "${apt_opts[@]}" source --download-only "wolfssl=$version") \
        >"$work/apt-source.log" 2>&1; then
        tail -5 "$work/apt-source.log" >&2
        echo "wolfssl: could not fetch the source of wolfssl $version" >&2
        rm -rf "$srcpkg.tmp"
        exit 1
    fi
    rm -rf "$srcpkg"
    mv "$srcpkg.tmp" "$srcpkg"
fi
src="$work/wolfssl"
if ! dpkg-source -x "$(ls "$srcpkg"/*.dsc | head -n 1)" "$src" >"$work/unpack.log" 2>&1; then
    tail -5 "$work/unpack.log" >&2
    echo "wolfssl: could not unpack the source package" >&2
    exit 1
fi

echo "wolfssl: building $version with SP ECC (${sp_flags[*]}); about a minute on 2 cores"
cd "$src"
log="$work/build.log"
if ! { ./autogen.sh &&
        ./configure --prefix="$prefix" $flags CFLAGS="$build_cflags" CPPFLAGS="$build_cppflags" \
            LDFLAGS="$build_ldflags" &&
        make -j"$(nproc)" && make install; } >"$log" 2>&1; then
    tail -20 "$log" >&2
    echo "wolfssl: the source build failed (log above)" >&2
    rm -rf "$prefix"
    exit 1
fi
# Debian installs the generated options.h itself (libwolfssl-dev.install).
cp wolfssl/options.h "$prefix/include/wolfssl/options.h"
if ! grep -q '^#define WOLFSSL_HAVE_SP_ECC' "$prefix/include/wolfssl/options.h"; then
    echo "wolfssl: built, but without SP ECC; not using it" >&2
    rm -rf "$prefix"
    exit 1
fi
# Static only: otpca's binaries must never pick up the packaged shared
# library at run time with headers from this build (different options,
# different structure layouts).
rm -f "$prefix"/lib/libwolfssl.so* "$prefix"/lib/libwolfssl.la
printf '%s\n%s\n%s\n' "$version" "$flags" "$build_cflags" >"$prefix/.complete"
ln -sfn "wolfssl-$key" "$deps/wolfssl"
echo "wolfssl: SP build of $version installed in .deps/wolfssl-$key"
