#!/usr/bin/env bash
# The README's demo command. Today it shows the foundation: a SoftHSM rig,
# TOTP computed inside a node token (checked with oathtool), and a
# root -> manager -> node certificate chain signed by token-held keys
# (checked with openssl). Later issues grow it into the full enrollment
# story (cloud, manager window, simulated nodes).
#
# usage: deploy/demo.sh [--nodes N] [--keep]
#   --nodes N   node tokens in the rig (default 10)
#   --keep      leave the rig in place and print how to use it
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
nodes=10
keep=0
while [ $# -gt 0 ]; do
    case "$1" in
        --nodes) nodes=${2:?--nodes needs a number}; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "demo: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$nodes" in ''|*[!0-9]*) echo "demo: --nodes needs a number" >&2; exit 2 ;; esac
[ "$nodes" -ge 1 ] || { echo "demo: --nodes must be at least 1" >&2; exit 2; }

cd "$top"
deploy/deps.sh
echo "== build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >build.configure.log 2>&1 || { cat build.configure.log; exit 1; }
cmake --build build -j"$(nproc)" >/dev/null
T="$top/build/bin/otpca-token"

demo="$top/build/demo"
rig="$demo/rig"
out="$demo/out"
rm -rf "$demo"
mkdir -p "$out"
cleanup() { [ "$keep" -eq 1 ] || rm -rf "$demo"; }
trap cleanup EXIT

uri() { printf 'pkcs11:token=%s;object=%s?pin-source=file:%s/pins/%s.pin' "$1" "$2" "$rig" "$1"; }

echo "== 1. SoftHSM rig: root, cloud, one manager + operator, $nodes nodes"
"$T" rig create "$rig" --nodes "$nodes" --managers 1
export SOFTHSM2_CONF="$rig/softhsm2.conf"

echo "== 2. tokens in the rig"
"$T" list | head -n 8
echo "   ... $("$T" list | grep -c ' ready ') tokens ready (and SoftHSM's one free slot)"

echo "== 3. TOTP computed inside node-000001's token, checked with oathtool"
now=$(date +%s)
ours=$("$T" otp "$(uri node-000001 totp)" --time "$now")
seed=$(awk -F, '$1 == "node-000001" { print $4 }' "$rig/manifest.csv")
theirs=$(oathtool --totp -N "@$now" "$seed")
echo "   token: $ours   oathtool: $theirs"
[ "$ours" == "$theirs" ] || { echo "demo: TOTP mismatch" >&2; exit 1; }

echo "== 4. certificates signed inside tokens (wolfCrypt bridge), checked with openssl"
"$T" cert selfsign "$(uri otpca-root root-key)" --cn "otpca demo root" --ca --path-len 1 --days 3650 --out "$out/root.pem"
"$T" pubkey "$(uri otpca-mgr-01 ca-key)" --out "$out/mgr.pub"
"$T" cert issue "$(uri otpca-root root-key)" --issuer "$out/root.pem" --pubkey "$out/mgr.pub" \
    --cn otpca-mgr-01 --ca --path-len 0 --days 365 --out "$out/mgr.pem"
"$T" pubkey "$(uri node-000001 device-key)" --out "$out/node.pub"
"$T" cert issue "$(uri otpca-mgr-01 ca-key)" --issuer "$out/mgr.pem" --pubkey "$out/node.pub" \
    --cn node-000001 --days 90 --out "$out/node-000001.pem"
openssl x509 -in "$out/node-000001.pem" -noout -subject -issuer -dates | sed 's/^/   /'
openssl verify -CAfile "$out/root.pem" -untrusted "$out/mgr.pem" "$out/node-000001.pem" | sed 's/^/   /'

echo "== 5. the wire protocol (proto/PROTOCOL.md): one of each message, sizes on the wire"
"$top/build/bin/otpca-proto" sizes >"$out/sizes.txt"
req=$(awk '$1 == "EnrollRequest" { print $2; exit }' "$out/sizes.txt")
resp=$(awk '$1 == "EnrollResponse" { print $2; exit }' "$out/sizes.txt")
sed -n '1,5p' "$out/sizes.txt" | sed 's/^/   /'
echo "   ... (all messages: build/bin/otpca-proto sizes)"

echo
echo "== summary"
echo "   rig:           $nodes node tokens, keys and seeds non-extractable"
echo "   TOTP in token: matches oathtool ($ours)"
echo "   chain:         root -> otpca-mgr-01 -> node-000001 verified by openssl"
echo "   protocol:      signed EnrollRequest $req bytes, EnrollResponse with certificate $resp bytes"
echo "   not yet:       cloud, manager windows, node enrollment (issues #4-#7)"
if [ "$keep" -eq 1 ]; then
    echo
    echo "   rig kept in $rig; try:"
    echo "     export SOFTHSM2_CONF=$rig/softhsm2.conf"
    echo "     $T list"
    echo "     $T otp '$(uri node-000002 totp)'"
    echo "     openssl x509 -in $out/node-000001.pem -noout -text"
fi
