# otpca-node against the real thing: otpca-cloud (the rig's devices
# imported and approved), the CA ceremony with otpca-manager, a window
# served by `otpca-manager window open`, then `otpca-node sim --count 8`
# enrolls every rig node from its own token in one process and
# `otpca-node enroll` enrolls one node again; `openssl verify` accepts
# root -> manager -> node for every certificate a node committed to its
# flash image; a node pinned to another root refuses the manager; Rejoin
# and KeyUpdate run when the manager serves them; a batch device claims a
# key of its own with its batch's product key (`otpca-node claim`), after
# which the registry holds the new key and refuses a second claim; a node
# given the root's CRL revoking the manager (`otpca-manager ca revoke`,
# `otpca-node --root-crl`) refuses its answers; usage errors exit 2.
. "$(dirname "$0")/lib.sh"
M="$OTPCA_BIN/otpca-manager"
C="$OTPCA_BIN/otpca-cloud"
N="$OTPCA_BIN/otpca-node"
cd "$WORK"

# ---- usage ----
expect_fail "no command: usage, exit 2" 2 "command is required" -- "$N"
expect_fail "unknown command: exit 2" 2 "unknown command 'fly'" -- "$N" fly
expect_fail "enroll without --manager: exit 2" 2 "--manager and --root are required" -- "$N" enroll --rig "$RIG" --serial node-000001
"$N" --help | grep -q "otpca-node COMMAND" && ok "--help" || bad "--help"

# ---- cloud ----
cloud_conf cloud.conf
"$C" --config cloud.conf init >init.out 2>>cmd.log || bad "cloud init: $(cat cmd.log)"
curve=$(sed -n 's/^cloud_curve_key = //p' init.out)
sign=$(sed -n 's/^cloud_sign_key = //p' init.out)
"$C" --config cloud.conf device import "$RIG/manifest.csv" --approve >>cmd.log 2>&1 || bad "device import"
# A batch device (PROTOCOL.md 6.7): claim-01 proves batch-b1's product key,
# which is node-000006's device key here, and that token's TOTP seed.
"$T" pubkey "$(uri node-000006 device-key)" --out product.pem >>cmd.log 2>&1 || bad "product key"
"$C" --config cloud.conf batch add batch-b1 --product-key product.pem >>cmd.log 2>&1 || bad "batch add"
printf 'serial,mac,seed,batch\nclaim-01,02:00:00:00:00:c1,%s,batch-b1\n' "$(seed_of node-000006)" >batch.csv
"$C" --config cloud.conf device import batch.csv --approve >>cmd.log 2>&1 || bad "batch device import"
awk -F, 'NR == 2 { print $3 }' "$RIG/operators.csv" >op.seed
"$C" --config cloud.conf operator add otpca-op-01 --seed-file op.seed >>cmd.log 2>&1 || bad "operator add"

# ---- ceremony ----
"$M" ca init-root --key "$(uri otpca-root root-key)" --cn "node test root" --out root >>cmd.log 2>&1 || bad "init-root"
"$M" ca certify --root "$(uri otpca-root root-key)" --root-cert root.pem --key "$(uri otpca-mgr-01 ca-key)" \
    --id mgr-07 --out mgr-07 >certify.out 2>>cmd.log || bad "certify"
mcurve=$(sed -n "s/.*--curve-key '\(.\{40\}\)'.*/\1/p" certify.out)
"$C" --config cloud.conf manager add mgr-07 --ca-cert mgr-07.pem --curve-key "$mcurve" >>cmd.log 2>&1 || bad "manager add"
"$C" --config cloud.conf operator allow otpca-op-01 --manager mgr-07 >>cmd.log 2>&1 || bad "operator allow"

"$C" --config cloud.conf serve >cloud.out 2>cloud.log &
pids+=($!)
line=$(first_line cloud.out) || { bad "cloud serve did not start: $(tail -5 cloud.log)"; finish; exit 1; }
read -r _ listen _ notices <<<"$line"

# ---- window ----
manager_conf manager.conf mgr-07 "$listen" "$notices" "$curve" "$sign"
"$M" window open --config manager.conf >manager.out 2>manager.log &
mgr_pid=$!
pids+=($mgr_pid)
line=$(first_line manager.out) || { bad "no window: $(tail -5 manager.log)"; finish; exit 1; }
ep=$(sed -n 's/^serving \([^ ]*\).*/\1/p' <<<"$line")
[ -n "$ep" ] && ok "window open: $ep" || bad "window open: '$line'"

# ---- sim: all 8 rig nodes, 4 at a time ----
if "$N" sim --rig "$RIG" --manager "$ep" --root root.pem --count 8 --concurrency 4 --state sim --json \
    >sim.json 2>sim.err; then
    ok "sim: 8 nodes enrolled"
else
    bad "sim: $(cat sim.json sim.err | head -c 600)"
fi
grep -q '"enrolled":8,"failed":0' sim.json && ok "sim summary: 8 enrolled, 0 failed" || bad "sim summary: $(cat sim.json)"
grep -Eq '"p50":[0-9.]+,"p95":[0-9.]+,"p99":[0-9.]+' sim.json && ok "sim summary: latency percentiles" || bad "sim latency"
bytes=$(sed -n 's/.*"wire_bytes_per_enrollment":\([0-9]*\).*/\1/p' sim.json)
[ -n "$bytes" ] && [ "$bytes" -gt 1000 ] && [ "$bytes" -lt 4000 ] && ok "sim: $bytes bytes on the wire per enrollment" ||
    bad "wire bytes: '$bytes'"
echo "sim: $(cat sim.json)"
verified=0
for i in 1 2 3 4 5 6 7 8; do
    s=$(printf 'node-%06d' "$i")
    "$N" show --rig "$RIG" --serial "$s" --state sim --cert-out "$s.pem" >"$s.show" 2>>cmd.log &&
        grep -q "confirmed    yes" "$s.show" &&
        openssl verify -CAfile root.pem -untrusted mgr-07.pem "$s.pem" >/dev/null 2>&1 &&
        openssl x509 -in "$s.pem" -noout -subject | grep -q "CN = $s" && verified=$((verified + 1))
done
expect_eq "openssl verify: root -> manager -> node for every simulated node's committed certificate" "$verified" 8
cmp -s <(openssl x509 -in node-000003.pem -noout -pubkey) <("$T" pubkey "$(uri node-000003 device-key)" 2>/dev/null) &&
    ok "the certificate holds the node token's device key" || bad "node-000003: certificate key differs from the token's"

# ---- a node pinned to another root refuses the manager ----
"$T" cert selfsign "$(uri otpca-cloud cloud-sign)" --cn "node test root" --ca --out evil.pem >>cmd.log 2>&1
expect_fail "a node pinned to another root refuses the manager's answers" 1 "answer dropped: certificate" -- \
    "$N" enroll --rig "$RIG" --serial node-000002 --manager "$ep" --root evil.pem --state evil --timeout 200 --log-level warn
"$N" show --rig "$RIG" --serial node-000002 --state evil | grep -q "none (not enrolled)" &&
    ok "and commits nothing" || bad "the evil-root node committed something"

# A device's TOTP step is good once: what a device does again waits for
# the next 30 s step. So that the checks wait three times, not once each,
# this step does the claim, the next every device's second request
# (node-000004's Rejoin among them), the two after node-000004's KeyUpdate
# and then its old certificate's Rejoin; the revoked manager comes last.

# ---- batch claim: the product key proves, a new key in the token is certified ----
claim_token="pkcs11:token=node-000006?pin-source=file:$RIG/pins/node-000006.pin"
if "$N" claim --token "$claim_token" --serial claim-01 --mac 02:00:00:00:00:c1 --manager "$ep" --root root.pem \
    --state claim --keep-old-key --cert-out claim.pem >claim.out 2>claim.err; then
    ok "claim: $(cat claim.out)"
else
    bad "claim: $(cat claim.out claim.err | head -c 600)"
fi
openssl verify -CAfile root.pem -untrusted mgr-07.pem claim.pem >/dev/null 2>&1 && ok "openssl verify: the claimed certificate" ||
    bad "verify claim.pem"
openssl x509 -in claim.pem -noout -subject 2>/dev/null | grep -q "CN = claim-01" && ok "claim: CN = claim-01" || bad "claim subject"
openssl x509 -in claim.pem -noout -pubkey >claim.pub 2>/dev/null
[ -s claim.pub ] && ! cmp -s claim.pub product.pem && ok "claim: a new key, not the product key" ||
    bad "claim: the certificate holds the product key"

next_step # ---- each device's second request ----

# one node again with `enroll`
if "$N" enroll --rig "$RIG" --serial node-000001 --manager "$ep" --root root.pem --state sim --cert-out again.pem \
    >enroll.out 2>enroll.err; then
    ok "enroll: $(cat enroll.out)"
else
    bad "enroll: $(cat enroll.out enroll.err | head -c 600)"
fi
openssl verify -CAfile root.pem -untrusted mgr-07.pem again.pem >/dev/null 2>&1 && ok "openssl verify: the re-enrolled certificate" ||
    bad "verify again.pem"
"$N" show --rig "$RIG" --serial node-000001 --state sim >show.out 2>&1
grep -q "generation   4" show.out && grep -q "^previous" show.out && ok "show: generation 4, previous credential kept" ||
    bad "show: $(cat show.out)"

# a second claim
expect_fail "a second claim (the device is claimed) is refused" 1 "AUTH_FAILED" -- \
    "$N" claim --token "$claim_token" --serial claim-01 --mac 02:00:00:00:00:c1 --manager "$ep" --root root.pem \
    --state claim2 --keep-old-key --timeout 500

# Rejoin, then KeyUpdate and the old certificate (when the manager serves them)
rc=0
"$N" rejoin --rig "$RIG" --serial node-000004 --manager "$ep" --root root.pem --state sim >rejoin.out 2>rejoin.err || rc=$?
if [ $rc -eq 0 ]; then
    ok "rejoin: $(cat rejoin.out)"
    old_hash=$("$N" show --rig "$RIG" --serial node-000004 --state sim | sed -n 's/^  cert sha256  //p' | head -1)
    cp sim/node-000004.flash old4.flash
    next_step
    if "$N" rotate --rig "$RIG" --serial node-000004 --manager "$ep" --root root.pem --state sim --keep-old-key \
        >rotate.out 2>rotate.err; then
        ok "rotate: $(cat rotate.out)"
        new_hash=$("$N" show --rig "$RIG" --serial node-000004 --state sim | sed -n 's/^  cert sha256  //p' | head -1)
        [ "$new_hash" != "$old_hash" ] && ok "rotate: a new certificate" || bad "rotate: same certificate"
        # The old certificate (old flash image; the old key kept in the token) is no longer accepted for Rejoin.
        mkdir -p old && cp old4.flash old/node-000004.flash
        next_step
        expect_fail "after KeyUpdate the old certificate is refused for Rejoin" 1 "the manager refused \\(wire error 2, AUTH_FAILED\\)" -- \
            "$N" rejoin --rig "$RIG" --serial node-000004 --manager "$ep" --root root.pem --state old --timeout 500
    else
        bad "rotate: $(cat rotate.out rotate.err | head -c 600)"
    fi
elif grep -q "UNSUPPORTED" rejoin.err; then
    echo "skip rejoin/rotate: this manager answers UNSUPPORTED (not served yet)"
else
    bad "rejoin: $(cat rejoin.out rejoin.err | head -c 600)"
fi

# ---- the root revokes the manager: a node with the root's CRL refuses it ----
"$M" ca revoke --root "$(uri otpca-root root-key)" --root-cert root.pem --cert mgr-07.pem --reason keyCompromise \
    --out root-crl >>cmd.log 2>&1 || bad "ca revoke"
expect_fail "a node given the root's CRL refuses the revoked manager's answers" 1 "answer dropped: certificate" -- \
    "$N" enroll --rig "$RIG" --serial node-000003 --manager "$ep" --root root.pem --root-crl root-crl.pem \
    --state revoked --timeout 300 --log-level warn
"$N" show --rig "$RIG" --serial node-000003 --state revoked | grep -q "none (not enrolled)" &&
    ok "and commits nothing" || bad "a node committed a revoked manager's certificate"
expect_fail "a CRL the root did not sign is refused" 1 "not a CRL signed by the pinned root" -- \
    "$N" enroll --rig "$RIG" --serial node-000003 --manager "$ep" --root root.pem --root-crl mgr-07.pem --state revoked

"$M" window close --config manager.conf >>cmd.log 2>&1
wait "$mgr_pid" && ok "window closes with exit 0" || bad "window exit"
# The registry binds the claimed key to the serial (the product key is gone from it).
newhex=$(openssl pkey -pubin -in claim.pub -outform DER 2>/dev/null | tail -c 65 | od -An -tx1 | tr -d ' \n')
"$C" --config cloud.conf device show claim-01 >claim.show 2>&1
grep -q "^public key *$newhex" claim.show && grep -q "^state *enrolled" claim.show &&
    ok "the cloud holds claim-01 enrolled with its new key" || bad "cloud after the claim: $(cat claim.show)"
grep -q "confirmed" manager.out && ok "manager summary: $(grep 'window closed' manager.out)" || bad "manager summary: $(cat manager.out)"
finish
