#!/usr/bin/env bash
# Install every Debian package otpca needs to build, test and demo.
# Idempotent: when everything is already installed it touches nothing;
# otherwise it runs `apt-get update` once, then one `apt-get install`.
set -euo pipefail

packages=(
    build-essential cmake pkg-config          # toolchain
    libwolfssl-dev                            # X.509, ECC, ECIES, HKDF, AES-GCM
    liboath-dev oathtool                      # TOTP validation; oathtool as a checker
    libp11-dev libp11-kit-dev                 # PKCS#11 module/slots; the PKCS#11 header
    softhsm2 opensc                           # the rig's tokens; pkcs11-tool as a checker
    libssl-dev openssl                        # OpenSSL beside libp11; openssl as a checker
    libengine-pkcs11-openssl                  # openssl s_client with a token key (deploy/demo.sh)
    libzmq3-dev libcbor-dev                   # transport and wire encoding
    libsqlite3-dev libpq-dev                  # cloud and manager stores
    postgresql                                # the cloud store's PostgreSQL tests (deploy/postgres.sh)
    libjansson-dev                            # JSON factory manifests (otpca-cloud device import)
    sqlite3                                   # the sqlite3 shell as a checker in tests
    libcriterion-dev                          # unit tests
    clang libclang-rt-14-dev                  # libFuzzer targets (tests/fuzz)
    dpkg-dev autoconf automake libtool        # wolfSSL with SP ECC from source (wolfssl.sh)
    util-linux procps iproute2                # setsid, pgrep, ss in scripts
)

missing=()
for p in "${packages[@]}"; do
    if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" != "installed" ]; then
        missing+=("$p")
    fi
done
# node and npm run the COSE interop test (cose-js); the image may carry a
# node of its own, so look for the commands rather than the packages.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    missing+=(nodejs npm)
fi
if [ ${#missing[@]} -eq 0 ]; then
    echo "deps: all ${#packages[@]} packages present"
else
    if [ "$(id -u)" -ne 0 ]; then
        sudo=sudo
    else
        sudo=
    fi
    echo "deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    echo "deps: done"
fi

root=$(cd "$(dirname "$0")/.." && pwd)

# wolfSSL with SP ECC, built from Debian's source package (cached). Without
# it everything still works on the packaged library, only slower.
if ! "$root/deploy/wolfssl.sh"; then
    echo "deps: WARNING: no SP ECC build of wolfSSL; the build falls back to the packaged library" >&2
fi

# JavaScript packages of the COSE interop test, pinned by its lock file.
if [ -x "$root/tests/interop/setup.sh" ]; then
    "$root/tests/interop/setup.sh"
fi
