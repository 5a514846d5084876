# Rotating the cloud's keys (cloud/DEPLOY.md) with the real binaries:
# `otpca-cloud key create` makes a new signing key, CURVE key and seed-wrap
# key beside the old ones (a label already in the token is refused) and
# prints the pins; `key rewrap` moves the store's seed key to the new wrap
# key. The instance started before keeps serving (a manager pinning the
# old keys opens a window, syncs, a node enrolls); an instance started with
# the old wrap label refuses to start and says which label to use; a second
# instance with the new keys on the same store serves the manager moved to
# it with new pins (its delta sync brings devices imported after the
# rewrap, whose seeds open: a node enrolls with its TOTP); a manager still
# pinning the old CURVE key, or the old signing key, is refused by it with
# a clear error; `audit verify` passes. Runs on a private copy of the rig's
# tokens, so the shared rig keeps only its own keys. With
# OTPCA_TEST_STORE_URL_FILE (ctest's pg fixture) both instances share a
# PostgreSQL database of its own on that server instead of a SQLite file.
. "$(dirname "$0")/lib.sh"
M="$OTPCA_BIN/otpca-manager"
C="$OTPCA_BIN/otpca-cloud"
N="$OTPCA_BIN/otpca-node"
cd "$WORK"

mkdir tokens
cp -a "$RIG/tokens/." tokens/
sed "s#^directories.tokendir.*#directories.tokendir = $WORK/tokens#" "$RIG/softhsm2.conf" >softhsm2.conf
export SOFTHSM2_CONF="$WORK/softhsm2.conf"

if [ -n "${OTPCA_TEST_STORE_URL_FILE:-}" ]; then
    base=$(head -1 "$OTPCA_TEST_STORE_URL_FILE")
    db="otpca_keys_$$"
    psql -X -q -v ON_ERROR_STOP=1 "$base" -c "CREATE DATABASE $db" >>cmd.log 2>&1 || { bad "CREATE DATABASE $db"; finish; exit 1; }
    at_exit() { psql -X -q "$base" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1; }
    STORE="${base%/*}/$db"
    echo "store: PostgreSQL database $db"
fi

# ---- the cloud with its first keys; devices 1-4 ----
cloud_conf cloud-a.conf
"$C" --config cloud-a.conf init >init.out 2>>cmd.log || bad "cloud init: $(cat cmd.log)"
old_curve=$(sed -n 's/^cloud_curve_key = //p' init.out)
old_sign=$(sed -n 's/^cloud_sign_key = //p' init.out)
head -5 "$RIG/manifest.csv" >first.csv
{ head -1 "$RIG/manifest.csv"; sed -n '6,9p' "$RIG/manifest.csv"; } >second.csv
"$C" --config cloud-a.conf device import first.csv --approve >>cmd.log 2>&1 || bad "device import 1-4"
awk -F, 'NR == 2 { print $3 }' "$RIG/operators.csv" >op.seed
"$C" --config cloud-a.conf operator add otpca-op-01 --seed-file op.seed >>cmd.log 2>&1 || bad "operator add"
"$M" ca init-root --key "$(uri otpca-root root-key)" --cn "keys test root" --out root >>cmd.log 2>&1 || bad "init-root"
"$M" ca certify --root "$(uri otpca-root root-key)" --root-cert root.pem --key "$(uri otpca-mgr-01 ca-key)" \
    --id mgr-01 --out mgr-01 >certify.out 2>>cmd.log || bad "certify"
mcurve=$(sed -n "s/.*--curve-key '\(.\{40\}\)'.*/\1/p" certify.out)
"$C" --config cloud-a.conf manager add mgr-01 --ca-cert mgr-01.pem --curve-key "$mcurve" >>cmd.log 2>&1 || bad "manager add"
"$C" --config cloud-a.conf operator allow otpca-op-01 --manager mgr-01 >>cmd.log 2>&1 || bad "operator allow"

"$C" --config cloud-a.conf serve >a.out 2>a.log &
pids+=($!)
a_pid=$!
line=$(first_line a.out) || { bad "instance A did not start: $(tail -5 a.log)"; finish; exit 1; }
read -r _ a_listen _ a_notices <<<"$line"

# ---- new keys beside the old ones ----
"$C" --config cloud-a.conf key create --sign cloud-sign-2 >sign.out 2>>cmd.log || bad "key create --sign: $(cat cmd.log)"
"$C" --config cloud-a.conf key create --curve curve-secret-2 >curve.out 2>>cmd.log || bad "key create --curve"
"$C" --config cloud-a.conf key create --wrap seed-wrap-2 >wrap.out 2>>cmd.log || bad "key create --wrap"
new_sign=$(sed -n 's/^cloud_sign_key = //p' sign.out)
new_curve=$(sed -n 's/^cloud_curve_key = //p' curve.out)
[[ "$new_sign" =~ ^04[0-9a-f]{128}$ ]] && [ "$new_sign" != "$old_sign" ] &&
    ok "key create --sign prints a new cloud_sign_key" || bad "new sign pin: '$new_sign' ($(cat sign.out))"
[ ${#new_curve} -eq 40 ] && [ "$new_curve" != "$old_curve" ] &&
    ok "key create --curve prints a new cloud_curve_key" || bad "new curve pin: '$new_curve' ($(cat curve.out))"
grep -q "key rewrap --to seed-wrap-2" wrap.out && ok "key create --wrap says what comes next" || bad "wrap.out: $(cat wrap.out)"
"$T" pubkey "$(uri otpca-cloud cloud-sign-2)" --format sec1 >sign2.hex 2>>cmd.log
expect_eq "the token's cloud-sign-2 is the printed key" "$(tr -d ' \n' <sign2.hex)" "$new_sign"
expect_fail "a label already in the token is refused" 1 "already holds an object labelled 'cloud-sign-2'" -- \
    "$C" --config cloud-a.conf key create --sign cloud-sign-2
expect_fail "... whatever its kind" 1 "already holds an object labelled 'seed-wrap'" -- \
    "$C" --config cloud-a.conf key create --curve seed-wrap
expect_fail "key create wants exactly one kind" 2 "one of --sign, --curve or --wrap" -- \
    "$C" --config cloud-a.conf key create --sign x --wrap y
pkcs11-tool --module "$MODULE" --token-label otpca-cloud --login --pin "$(cat "$RIG/pins/otpca-cloud.pin")" \
    --list-objects >objects.txt 2>>cmd.log
for o in "cloud-sign-2 ^Private Key" "seed-wrap-2 ^Secret Key"; do
    set -- $o
    a=$(awk -v l="label:[ ]+$1\$" -v c="$2" '/ Object;/ {cls=$0} $0 ~ l && cls ~ c {p=1} p && /Access:/ {print; p=0}' objects.txt)
    [[ "$a" == *"sensitive, always sensitive, never extractable"* ]] && ok "$1:$a" || bad "$1 access: '$a'"
done

# ---- the seed key moves to seed-wrap-2 ----
expect_fail "rewrap to an unknown key is refused" 1 "no AES key 'seed-wrap-9'" -- \
    "$C" --config cloud-a.conf key rewrap --to seed-wrap-9
"$C" --config cloud-a.conf key rewrap --to seed-wrap-2 >rewrap.out 2>>cmd.log && grep -q "set wrap_key = seed-wrap-2" rewrap.out &&
    ok "key rewrap --to seed-wrap-2" || bad "key rewrap: $(cat rewrap.out; tail -3 cmd.log)"
expect_fail "a second rewrap from the old key is refused and names the new label" 1 \
    "re-wrapped .* under the token key 'seed-wrap-2'; set wrap_key = seed-wrap-2" -- \
    "$C" --config cloud-a.conf key rewrap --to seed-wrap-2
expect_fail "an instance started with the old wrap label refuses to start" 1 "set wrap_key = seed-wrap-2" -- \
    timeout 60 "$C" --config cloud-a.conf serve

cloud_conf cloud-b.conf "sign_key = cloud-sign-2" "curve_key = curve-secret-2" "wrap_key = seed-wrap-2"

# ---- window 1: instance A, started before the rewrap, still serves ----
# window CONF NAME SERIAL: opens a window, enrolls SERIAL through it, closes it.
window() {
    "$M" window open --config "$1" >"$2.out" 2>"$2.log" &
    local pid=$!
    pids+=($pid)
    local line ep
    line=$(first_line "$2.out") || { bad "$2: no window: $(tail -5 "$2.log")"; return; }
    ep=$(sed -n 's/^serving \([^ ]*\).*/\1/p' <<<"$line")
    [ -n "$ep" ] && ok "$2: window open (lease and sync)" || bad "$2: '$line'"
    if "$N" enroll --rig "$RIG" --serial "$3" --manager "$ep" --root root.pem --state "$2-node" \
        --cert-out "$2-$3.pem" >"$2-enroll.out" 2>"$2-enroll.err"; then
        ok "$2: $3 enrolled with its TOTP"
    else
        bad "$2: enroll $3: $(cat "$2-enroll.out" "$2-enroll.err" | head -c 600)"
    fi
    openssl verify -CAfile root.pem -untrusted mgr-01.pem "$2-$3.pem" >/dev/null 2>&1 &&
        ok "$2: openssl verify $3's certificate" || bad "$2: verify $3"
    "$M" window close --config "$1" >>cmd.log 2>&1
    wait "$pid" && ok "$2: window closes with exit 0" || bad "$2: window exit"
}
manager_conf mgr-old.conf mgr-01 "$a_listen" "$a_notices" "$old_curve" "$old_sign"
window mgr-old.conf window-a node-000001

# ---- devices 5-8 arrive after the rewrap, sealed under the same seed key ----
"$C" --config cloud-b.conf device import second.csv --approve >>cmd.log 2>&1 && ok "device import with wrap_key = seed-wrap-2" ||
    bad "device import 5-8: $(tail -3 cmd.log)"

# ---- instance B with the new keys, on the same store ----
"$C" --config cloud-b.conf serve >b.out 2>b.log &
pids+=($!)
line=$(first_line b.out) || { bad "instance B did not start: $(tail -5 b.log)"; finish; exit 1; }
read -r _ b_listen _ b_notices <<<"$line"
grep -qF "CURVE key 'curve-secret-2' $new_curve, signing key 'cloud-sign-2' kid" b.log &&
    grep -qF "seed-wrap key 'seed-wrap-2'" b.log &&
    ok "instance B serves with the new keys and says which" || bad "instance B's log: $(head -3 b.log)"

manager_conf mgr-stale.conf mgr-01 "$b_listen" "$b_notices" "$old_curve" "$old_sign"
expect_fail "a manager pinning the old CURVE key is refused by instance B" 1 "dropped our CURVE handshake .* the pinned cloud CURVE key is not the key of that instance" -- \
    timeout 60 "$M" window open --config mgr-stale.conf
next_step
manager_conf mgr-half.conf mgr-01 "$b_listen" "$b_notices" "$new_curve" "$old_sign"
expect_fail "a manager pinning the old signing key refuses instance B's lease" 1 "but cloud_sign_key pins kid" -- \
    timeout 60 "$M" window open --config mgr-half.conf

# ---- window 2: the manager moved to B with the new pins ----
next_step
manager_conf mgr-new.conf mgr-01 "$b_listen" "$b_notices" "$new_curve" "$new_sign"
window mgr-new.conf window-b node-000005

# ---- the old instance is stopped when no manager uses it ----
kill "$a_pid"
wait "$a_pid" && ok "instance A stops with exit 0" || bad "instance A exit"
"$C" --config cloud-b.conf audit verify >audit.out 2>&1 && ok "audit verify: $(cat audit.out)" || bad "audit verify: $(cat audit.out)"
finish
