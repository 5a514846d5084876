#!/usr/bin/env bash
# Size of the node firmware core on a Cortex-M4 (issue #6, "Size (report,
# not a test)"): cross-compiles the core (node-fw/src), libotpca-proto,
# libcbor's encoder and streaming decoder and wolfCrypt (Debian's wolfSSL
# source, configured by user_settings.h here) with arm-none-eabi-gcc -Os,
# links them with fw_main.c (vector table, HAL entries that touch only a
# volatile "device", a main loop over every flow) with --gc-sections, and
# reports text/data/bss per component (from the link map), the largest
# symbols, and the stack the core's entry points need (-fcallgraph-info).
#
#   node-fw/cortexm/size.sh            # report on stdout and in $OUT/report.md
#
# Environment:
#   OUT=dir          work and output directory (default build/cortexm)
#   ASN=template|original   wolfCrypt's certificate parser (default template;
#                    Debian's package is built with the original one)
#   FLOAT_ABI=soft|hard     (default soft; the core has no floating point)
#   SP=cortexm|c32   wolfCrypt's P-256: the Cortex-M assembly (sp_cortexm.c,
#                    default) or the portable C of sp_c32.c
#   LIBCBOR_SUITE=s  the Debian suite tried for libcbor's upstream tarball
#                    when the installed version's source is not on the
#                    mirror (default trixie)
#   LIBCBOR_SRC=dir  a libcbor source tree (its src/ directory or the tree
#                    above it), if Debian's source package cannot be fetched
#
# Sources: wolfSSL from .deps/src (deploy/wolfssl.sh fetched it; unpacked
# again under $OUT, .deps is only read); libcbor's Debian source package
# through apt with a private configuration under $OUT/apt (deb-src lines
# made the way deploy/wolfssl.sh makes them; the system's apt state is not
# touched); if the mirror lacks the installed version's files, the
# upstream tarball of LIBCBOR_SUITE's source package ($OUT/apt-SUITE).
# If no libcbor source can be had, cbor_standin.c takes its place and the
# report says so. Fetch results are remembered ($OUT/src/*.failed,
# .unpacked): delete $OUT/src to try again.
#
# Exit status: 0 report written; 1 a source or build step failed; 2 the
# cross toolchain is missing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${OUT:-$root/build/cortexm}
asn=${ASN:-template}
float_abi=${FLOAT_ABI:-soft}
sp=${SP:-cortexm}
case "$asn" in template | original) ;; *) echo "size.sh: ASN must be template or original" >&2; exit 1 ;; esac
case "$float_abi" in soft | hard) ;; *) echo "size.sh: FLOAT_ABI must be soft or hard" >&2; exit 1 ;; esac
case "$sp" in cortexm | c32) ;; *) echo "size.sh: SP must be cortexm or c32" >&2; exit 1 ;; esac

die() { echo "size.sh: $*" >&2; exit 1; }

# ---- toolchain -------------------------------------------------------------
missing=()
for t in arm-none-eabi-gcc arm-none-eabi-size arm-none-eabi-nm python3 dpkg-source dpkg-query; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
if [ ${#missing[@]} -eq 0 ] && [ ! -f "$(arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb --specs=nano.specs \
    -print-file-name=libc_nano.a)" ]; then
    missing+=("newlib (libc_nano.a)")
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "size.sh: the cross toolchain is missing: ${missing[*]}" >&2
    echo "size.sh: install it with: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi" \
        "(python3, dpkg-dev for the others)" >&2
    exit 2
fi

mkdir -p "$out"
log="$out/build.log"
: >"$log"

# ---- wolfSSL source (Debian's, as deploy/wolfssl.sh fetched it) ------------
wolf_version=$(dpkg-query -W -f='${Version}' libwolfssl-dev 2>/dev/null || true)
[ -n "$wolf_version" ] || die "libwolfssl-dev is not installed; run deploy/deps.sh"
wolf_dsc=$(ls "$root/.deps/src/wolfssl_$wolf_version"/*.dsc 2>/dev/null | head -n 1 || true)
[ -n "$wolf_dsc" ] || die "no wolfSSL source package in .deps/src/wolfssl_$wolf_version; run deploy/wolfssl.sh"
wolf="$out/src/wolfssl-$wolf_version"
if [ ! -f "$wolf/.unpacked" ]; then
    rm -rf "$wolf"
    mkdir -p "$out/src"
    dpkg-source -x "$wolf_dsc" "$wolf" >>"$log" 2>&1 || die "could not unpack $wolf_dsc (see $log)"
    touch "$wolf/.unpacked"
fi
[ -f "$wolf/wolfcrypt/src/sp_$sp.c" ] || die "wolfSSL $wolf_version has no sp_$sp.c"

# ---- libcbor source ----------------------------------------------------------
# In this order: LIBCBOR_SRC; Debian's source package of the installed
# libcbor-dev; the upstream tarball of the next Debian release's libcbor
# source package (LIBCBOR_SUITE, default trixie: Debian's mirror may hold
# it when the installed version's files are gone); else the stand-in.
cbor_src=""
cbor_note=""
find_cbor() { # $1: a tree; prints the directory holding cbor.h and cbor/
    local d
    for d in "$1/src" "$1"; do
        [ -f "$d/cbor/streaming.c" ] && { echo "$d"; return 0; }
    done
    return 1
}
# apt_private DIR [SUITE]: a private apt configuration in DIR: the deb-src
# twins of this machine's Debian sources (as deploy/wolfssl.sh makes them
# under .deps/apt), or with SUITE one deb-src entry for that suite of the
# same main archive. Sets apt_opts; fails if no source index can be read.
apt_private() {
    local dir=$1 suite=${2:-} f uri key
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/sources.list.d"
    if [ -z "$(ls "$dir/sources.list.d" 2>/dev/null)" ]; then
        if [ -z "$suite" ]; then
            for f in /etc/apt/sources.list.d/*.sources; do
                grep -Eq '^Types:.*\bdeb\b' "$f" 2>/dev/null || continue
                sed 's/^Types:.*$/Types: deb-src/' "$f" >"$dir/sources.list.d/$(basename "$f")"
            done
            for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
                [ -f "$f" ] || continue
                grep -E '^deb ' "$f" | sed 's/^deb /deb-src /' >>"$dir/sources.list.d/src.list" || true
            done
        else
            uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs: *//p' | tr ' ' '\n' |
                  grep -v security | head -n 1 || true)
            [ -n "$uri" ] || uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
                                   awk '$1 == "deb" && $2 !~ /security/ { print $2; exit }' || true)
            [ -n "$uri" ] || return 1 # this machine's apt names no archive to ask
            key=/usr/share/keyrings/debian-archive-keyring.gpg
            { echo "Types: deb-src"; echo "URIs: $uri"; echo "Suites: $suite"; echo "Components: main"
              [ -f "$key" ] && echo "Signed-By: $key"; } >"$dir/sources.list.d/$suite.sources"
        fi
    fi
    apt_opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$dir/sources.list.d"
              -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache"
              -o "APT::Sandbox::User=root" -q)
    ls "$dir/lists/"*Sources* >/dev/null 2>&1 || apt-get "${apt_opts[@]}" update >>"$log" 2>&1 || true
    ls "$dir/lists/"*Sources* >/dev/null 2>&1
}
if [ -n "${LIBCBOR_SRC:-}" ]; then
    cbor_src=$(find_cbor "$LIBCBOR_SRC") || die "LIBCBOR_SRC=$LIBCBOR_SRC holds no src/cbor/streaming.c"
    cbor_note="libcbor from LIBCBOR_SRC=$LIBCBOR_SRC"
else
    cbor_version=$(dpkg-query -W -f='${Version}' libcbor-dev 2>/dev/null || true)
    cbor_version=${cbor_version%%+b*} # a binNMU suffix: the source version
    [ -n "$cbor_version" ] || die "libcbor-dev is not installed; run deploy/deps.sh"
    tree="$out/src/libcbor-$cbor_version"
    if [ ! -f "$tree/.unpacked" ] && [ ! -f "$out/src/libcbor-$cbor_version.failed" ]; then
        echo "size.sh: fetching Debian's source package libcbor=$cbor_version" >&2
        dl="$tree.dl"
        rm -rf "$dl" "$tree"
        mkdir -p "$dl"
        if apt_private "$out/apt" &&
            (cd "$dl" && apt-get "${apt_opts[@]}" source --download-only "libcbor=$cbor_version") >>"$log" 2>&1 &&
            dpkg-source -x "$(ls "$dl"/*.dsc | head -n 1)" "$tree" >>"$log" 2>&1; then
            touch "$tree/.unpacked"
        else
            grep -E '^E:' "$log" | tail -2 | sed 's/^/size.sh:   /' >&2
            rm -rf "$tree"
            touch "$out/src/libcbor-$cbor_version.failed" # not again; rm it to retry
        fi
        rm -rf "$dl"
    fi
    if [ -f "$tree/.unpacked" ]; then
        cbor_src=$(find_cbor "$tree") || die "libcbor $cbor_version's source has no src/cbor/streaming.c"
        cbor_note="libcbor $cbor_version (Debian's source package, the installed version)"
    else
        suite=${LIBCBOR_SUITE:-trixie}
        next=$(ls -d "$out/src/libcbor-$suite-"*/.unpacked 2>/dev/null | head -n 1 || true)
        if [ -z "$next" ] && [ ! -f "$out/src/libcbor-$suite.failed" ]; then
            echo "size.sh: the installed libcbor's source is not on the mirror; trying Debian $suite's" >&2
            dl="$out/src/libcbor-$suite.dl"
            rm -rf "$dl"
            mkdir -p "$dl"
            if apt_private "$out/apt-$suite" "$suite"; then
                (cd "$dl" && apt-get "${apt_opts[@]}" source --download-only libcbor) >>"$log" 2>&1 || true
            fi
            orig=$(ls "$dl"/libcbor_*.orig.tar.* 2>/dev/null | head -n 1 || true)
            if [ -n "$orig" ]; then
                v=$(basename "$orig")
                v=${v#libcbor_}
                v=${v%.orig.tar.*}
                mkdir -p "$out/src/libcbor-$suite-$v"
                tar -xf "$orig" -C "$out/src/libcbor-$suite-$v" --strip-components=1 &&
                    touch "$out/src/libcbor-$suite-$v/.unpacked"
                next="$out/src/libcbor-$suite-$v/.unpacked"
            else
                grep -E '^E:' "$log" | tail -2 | sed 's/^/size.sh:   /' >&2
                touch "$out/src/libcbor-$suite.failed"
            fi
            rm -rf "$dl"
        fi
        if [ -n "$next" ]; then
            d=$(dirname "$next")
            cbor_src=$(find_cbor "$d") || die "$d has no src/cbor/streaming.c"
            v=${d##*/libcbor-$suite-}
            echo "size.sh: NOTE: measuring libcbor $v (upstream tarball of Debian $suite's source package)" \
                "in place of the installed $cbor_version" >&2
            cbor_note="libcbor $v, the upstream tarball of Debian $suite's source package (the installed $cbor_version's source was not on the mirror; the streaming decoder and encoder are the same design)"
        fi
    fi
    if [ -z "$cbor_src" ]; then
        echo "size.sh: WARNING: no libcbor source could be fetched; cbor_standin.c stands in for it" \
            "(set LIBCBOR_SRC to a libcbor tree to measure the real one)" >&2
        cbor_note="STAND-IN: no libcbor source was available; node-fw/cortexm/cbor_standin.c measured instead"
    fi
fi

# ---- compile -----------------------------------------------------------------
gen="$out/include"
mkdir -p "$gen/wolfssl"
: >"$gen/wolfssl/options.h" # WOLFSSL_USER_SETTINGS: user_settings.h says it all
# libcbor's headers as the project compiles against them (libcbor-dev),
# copied so that no host include directory is on the cross compiler's
# path; libcbor's own sources see their tree first (and take the generated
# configuration.h and cbor_export.h from here).
[ -f /usr/include/cbor.h ] || die "libcbor-dev's headers are missing (/usr/include/cbor.h)"
cp /usr/include/cbor.h "$gen/"
rm -rf "$gen/cbor"
cp -r /usr/include/cbor "$gen/cbor"

arch=(-mcpu=cortex-m4 -mthumb -mfloat-abi="$float_abi")
[ "$float_abi" = hard ] && arch+=(-mfpu=fpv4-sp-d16)
cflags=("${arch[@]}" -Os -g -ffunction-sections -fdata-sections -fno-common -fstack-usage
        -fcallgraph-info=su --specs=nano.specs)
asn_def=()
[ "$asn" = template ] && asn_def=(-DWOLFSSL_ASN_TEMPLATE)
[ "$sp" = c32 ] && asn_def+=(-DOTPCA_CORTEXM_SP_C32)
wolf_inc=(-DWOLFSSL_USER_SETTINGS "${asn_def[@]}" -I"$here" -I"$gen" -I"$wolf")
cbor_inc=(-I"$gen")
otpca_inc=(-I"$root/node-fw/include" -I"$root/node-fw/src" -I"$root/proto/include" -I"$root/proto/src"
           -I"$root/common/include")

obj="$out/obj"
rm -rf "$obj"
mkdir -p "$obj"/{core,proto,libcbor,wolfcrypt,fw}
compile() { # group std source flags...
    local group=$1 std=$2 src=$3
    shift 3
    local o="$obj/$group/$(basename "${src%.c}").o"
    if ! (cd "$obj/$group" && arm-none-eabi-gcc "${cflags[@]}" -std="$std" "$@" -c "$src" -o "$o") >>"$log" 2>&1; then
        tail -20 "$log" >&2
        die "compiling $src failed (log: $log)"
    fi
}
echo "size.sh: compiling (wolfSSL $wolf_version, ASN $asn, SP $sp, float ABI $float_abi)" >&2
for f in node slots x509; do
    compile core c99 "$root/node-fw/src/$f.c" -Wall -Wextra -Wpedantic "${otpca_inc[@]}" "${wolf_inc[@]}" "${cbor_inc[@]}"
done
for f in cbor_codec cose ecies hkdf_gcm seedbox p256 msg; do
    compile proto c99 "$root/proto/src/$f.c" -Wall -Wextra -Wpedantic "${otpca_inc[@]}" "${wolf_inc[@]}" "${cbor_inc[@]}"
done
if [ -n "$cbor_src" ]; then
    for f in cbor/encoding.c cbor/streaming.c cbor/internal/encoders.c cbor/internal/loaders.c; do
        compile libcbor c99 "$cbor_src/$f" -I"$cbor_src" "${cbor_inc[@]}"
    done
else
    compile libcbor c99 "$here/cbor_standin.c" -Wall -Wextra "${cbor_inc[@]}"
fi
for f in ecc sp_int "sp_$sp" asn sha256 hmac aes hash wolfmath wc_port memory random; do
    compile wolfcrypt gnu99 "$wolf/wolfcrypt/src/$f.c" "${wolf_inc[@]}"
done
for f in fw_main secmem_fw; do
    compile fw c99 "$here/$f.c" -Wall -Wextra "${otpca_inc[@]}"
done

# ---- link --------------------------------------------------------------------
elf="$out/otpca-node-fw.elf"
objs=("$obj"/fw/*.o "$obj"/core/*.o "$obj"/proto/*.o "$obj"/libcbor/*.o "$obj"/wolfcrypt/*.o)
if ! arm-none-eabi-gcc "${arch[@]}" --specs=nano.specs -nostartfiles -T "$here/link.ld" \
    -Wl,--gc-sections -Wl,-Map="$out/otpca-node-fw.map" -Wl,--cref "${objs[@]}" -lc -lgcc -o "$elf" >>"$log" 2>&1; then
    tail -30 "$log" >&2
    die "link failed (log: $log)"
fi

# ---- report ------------------------------------------------------------------
python3 "$here/size_report.py" --elf "$elf" --map "$out/otpca-node-fw.map" --obj "$obj" \
    --cbor-note "$cbor_note" --config "wolfSSL $wolf_version (ASN $asn, SP $sp), -mfloat-abi=$float_abi, $(arm-none-eabi-gcc --version | head -n 1)" \
    >"$out/report.md"
cat "$out/report.md"
echo "size.sh: report in $out/report.md, image $elf" >&2
