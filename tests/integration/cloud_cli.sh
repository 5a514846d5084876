# otpca-cloud admin CLI against the test rig: init, importing the factory
# manifest (seeds sealed in the otpca-cloud token: no plaintext seed in the
# store, checked on the raw file and with the sqlite3 shell), device
# approve/revoke/unlock state rules, batch add, manager add|revoke|list,
# operator add (its seed sealed too), the audit chain (and its detection of
# an entry changed behind its back), and bad input with clear exits.
. "$(dirname "$0")/lib.sh"
C="$OTPCA_BIN/otpca-cloud"
DB="$WORK/cloud.db"
cat >"$WORK/cloud.conf" <<CONF
# test configuration
store = $DB
token = pkcs11:token=otpca-cloud?pin-source=file:$RIG/pins/otpca-cloud.pin
CONF
cc() { "$C" --config "$WORK/cloud.conf" "$@"; }

if cc init >"$WORK/out" 2>"$WORK/err" && grep -q "schema version" "$WORK/out" && grep -q "signing key 'cloud-sign' kid" "$WORK/out"; then
    ok "init"
else
    bad "init: $(cat "$WORK/out" "$WORK/err" | head -c 400)"
fi
[ "$(stat -c %a "$DB" 2>/dev/null)" = "600" ] && ok "store file is 0600" || bad "store file mode $(stat -c %a "$DB" 2>/dev/null)"

nodes=$(($(wc -l <"$RIG/manifest.csv") - 1))
if cc device import "$RIG/manifest.csv" >"$WORK/out" 2>"$WORK/err" && grep -q "imported $nodes devices" "$WORK/out"; then
    ok "import $nodes devices"
else
    bad "import: $(cat "$WORK/out" "$WORK/err" | head -c 400)"
fi
if cc device import "$RIG/manifest.csv" >"$WORK/out" 2>&1 && grep -q "imported 0 devices.*$nodes already present" "$WORK/out"; then
    ok "re-import is a no-op"
else
    bad "re-import: $(head -c 300 "$WORK/out")"
fi

# JSON manifests (an array, and JSON Lines) import the same devices as the
# CSV: each into a store of its own, compared by `device list`.
awk -F, 'NR > 1 { printf "%s{\"serial\": \"%s\", \"mac\": \"%s\", \"public_key\": \"%s\", \"seed\": \"%s\", \"algorithm\": \"%s\", \"digits\": %s, \"period\": %s}", (NR > 2 ? ",\n" : "[\n"), $1, $2, $3, $4, $5, $6, $7 } END { print "\n]" }' "$RIG/manifest.csv" >"$WORK/manifest.json"
awk -F, 'NR > 1 { printf "{\"serial\": \"%s\", \"mac\": \"%s\", \"public_key\": \"%s\", \"seed\": \"%s\"}\n", $1, $2, $3, $4 }' "$RIG/manifest.csv" >"$WORK/manifest.jsonl"
cc device list >"$WORK/list.csv" 2>/dev/null
for kind in json jsonl; do
    if env OTPCA_CLOUD_STORE="$WORK/$kind.db" "$C" --config "$WORK/cloud.conf" device import "$WORK/manifest.$kind" >"$WORK/out" 2>"$WORK/err" &&
        grep -q "imported $nodes devices" "$WORK/out" &&
        env OTPCA_CLOUD_STORE="$WORK/$kind.db" "$C" --config "$WORK/cloud.conf" device list >"$WORK/list.$kind" 2>/dev/null &&
        cmp -s "$WORK/list.csv" "$WORK/list.$kind"; then
        ok "import $kind manifest: same devices as the CSV"
    else
        bad "import $kind: $(cat "$WORK/out" "$WORK/err" | head -c 400)"
    fi
done
printf '[{"serial": "node-j1", "mac": "02:00:00:00:00:0a", "seed": "00112233445566778899aabbccddeeff"},\n {"serial": 7, "mac": "02:00:00:00:00:0b", "seed": "00112233445566778899aabbccddeeff"},\n {"serial": "node-j3", "mac": "02:00:00:00:00:0c", "seed": "0011"}]\n' >"$WORK/bad.json"
expect_fail "JSON rows with bad fields named by object" 1 "bad.json: object 2: fields must be strings" -- env OTPCA_CLOUD_STORE="$WORK/bad-json.db" "$C" --config "$WORK/cloud.conf" device import "$WORK/bad.json"
grep -q "bad.json: object 3: seed" "$WORK/err" && ok "JSON bad seed named" || bad "JSON bad seed: $(head -c 300 "$WORK/err")"
printf '[{"serial": "node-j1", "mac": "02:00:00:00:00:0a", "seed": "00112233445566778899aabbccddeeff"} {"serial": "x"}]\n' >"$WORK/broken.json"
expect_fail "JSON array without a comma" 1 "broken.json: object 2: expected ',' or ']'" -- env OTPCA_CLOUD_STORE="$WORK/broken-json.db" "$C" --config "$WORK/cloud.conf" device import "$WORK/broken.json"
printf '{"serial": "node-j1", "mac": \n' >"$WORK/trunc.jsonl"
expect_fail "truncated JSON" 1 "trunc.jsonl: object 1:" -- env OTPCA_CLOUD_STORE="$WORK/trunc.db" "$C" --config "$WORK/cloud.conf" device import "$WORK/trunc.jsonl"

# No seed in the clear: neither its hex text nor its bytes (searched as hex
# in a hex dump of the files) appear in the store.
{ cat "$DB"; cat "$DB-wal" 2>/dev/null || true; } >"$WORK/db.raw"
od -An -v -tx1 "$WORK/db.raw" | tr -d ' \n' >"$WORK/db.hex"
leaks=0
while IFS=, read -r serial _ _ seed _; do
    [ "$serial" = serial ] && continue
    if LC_ALL=C grep -qaF "$seed" "$WORK/db.raw"; then leaks=$((leaks + 1)); fi
    if grep -qF "$seed" "$WORK/db.hex"; then leaks=$((leaks + 1)); fi
done <"$RIG/manifest.csv"
expect_eq "no plaintext seed in the store" "$leaks" 0
sealed=$(sqlite3 "$DB" "select count(*) from devices where length(seed_env) >= 48" 2>/dev/null || echo "?")
expect_eq "every device has a sealed seed (sqlite3 shell)" "$sealed" "$nodes"

pending=$(cc device list 2>/dev/null | grep -c " pending ")
expect_eq "all pending after import" "$pending" "$nodes"
cc device approve node-000001 >/dev/null && ok "approve one" || bad "approve one"
expect_fail "approve twice" 1 "node-000001 is approved" -- cc device approve node-000001
out=$(cc device approve --all)
expect_eq "approve --all" "$out" "approved $((nodes - 1)) devices"
cc device revoke node-000002 --reason 1 >/dev/null && ok "revoke" || bad "revoke"
state=$(cc device show node-000002 | awk '$1 == "state" { print $2 }')
expect_eq "revoked state shown" "$state" "revoked"
expect_fail "approve a revoked device" 1 "node-000002 is revoked" -- cc device approve node-000002
expect_fail "unlock a device that is not locked" 1 "is approved" -- cc device unlock node-000003
expect_fail "show unknown device" 1 "not found" -- cc device show node-999999
kid=$(cc device show node-000001 | awk '$1 == "key" && $2 == "id" { print $3 }')
[ ${#kid} -eq 16 ] && ok "key id shown" || bad "key id '$kid'"

# Batches: a product key as PEM SubjectPublicKeyInfo (any rig key will do).
"$T" pubkey "$(uri otpca-root root-key)" --out "$WORK/product.pem" >/dev/null 2>"$WORK/err" || bad "export a public key: $(cat "$WORK/err")"
if cc batch add batch-01 --product-key "$WORK/product.pem" >"$WORK/out" 2>"$WORK/err" && grep -q "batch batch-01 added, product key [0-9a-f]\{16\}" "$WORK/out"; then
    ok "batch add (PEM product key)"
else
    bad "batch add: $(cat "$WORK/out" "$WORK/err" | head -c 400)"
fi
expect_fail "batch added twice" 1 "batch batch-01 is already registered" -- cc batch add batch-01 --product-key "$WORK/product.pem"
printf '04%0128d\n' 1 >"$WORK/offcurve.hex"
expect_fail "batch key not on the curve" 1 "not a P-256 public key" -- cc batch add batch-02 --product-key "$WORK/offcurve.hex"
expect_fail "batch add without a key" 2 "--product-key is required" -- cc batch add batch-02

# Managers: the intermediate CA certificate and the CURVE public key (Z85;
# this one is the server key of the ZeroMQ CURVE documentation).
curve='rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7'
"$T" cert selfsign "$(uri otpca-mgr-01 ca-key)" --cn mgr --ca --out "$WORK/mgr-ca.pem" >/dev/null 2>"$WORK/err" || bad "CA certificate: $(cat "$WORK/err")"
"$T" cert selfsign "$(uri otpca-mgr-01 ca-key)" --cn mgr --out "$WORK/mgr-leaf.pem" >/dev/null 2>"$WORK/err" || bad "leaf certificate: $(cat "$WORK/err")"
if cc manager add mgr-01 --ca-cert "$WORK/mgr-ca.pem" --curve-key "$curve" >"$WORK/out" 2>"$WORK/err" && grep -q "manager mgr-01 added, ca key [0-9a-f]\{16\}, curve key $curve" "$WORK/out"; then
    ok "manager add"
else
    bad "manager add: $(cat "$WORK/out" "$WORK/err" | head -c 400)"
fi
expect_fail "manager added twice" 1 "already registered" -- cc manager add mgr-01 --ca-cert "$WORK/mgr-ca.pem" --curve-key "$curve"
expect_fail "CURVE key of another manager" 1 "already registered" -- cc manager add mgr-02 --ca-cert "$WORK/mgr-ca.pem" --curve-key "$curve"
expect_fail "bad CURVE key" 1 "not a CURVE public key" -- cc manager add mgr-02 --ca-cert "$WORK/mgr-ca.pem" --curve-key "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf~"
expect_fail "short CURVE key" 1 "not a CURVE public key" -- cc manager add mgr-02 --ca-cert "$WORK/mgr-ca.pem" --curve-key "rq:rM>}U?@"
expect_fail "certificate that is not a CA" 1 "not a CA certificate" -- cc manager add mgr-02 --ca-cert "$WORK/mgr-leaf.pem" --curve-key "$curve"
expect_fail "a public key is not a certificate" 1 "not a certificate" -- cc manager add mgr-02 --ca-cert "$WORK/product.pem" --curve-key "$curve"
line=$(cc manager list 2>/dev/null | awk '$1 == "mgr-01" { print $2, $6 }')
expect_eq "manager list shows it active" "$line" "active $curve"
mgr_kid=$(cc manager list 2>/dev/null | awk '$1 == "mgr-01" { print $4 }')
[ ${#mgr_kid} -eq 16 ] && ok "manager CA key id shown" || bad "manager CA key id '$mgr_kid'"
cc manager revoke mgr-01 >/dev/null && ok "manager revoke" || bad "manager revoke"
state=$(cc manager list 2>/dev/null | awk '$1 == "mgr-01" { print $2 }')
expect_eq "manager list shows it revoked" "$state" "revoked"
expect_fail "manager revoked twice" 1 "mgr-01 is already revoked" -- cc manager revoke mgr-01
expect_fail "revoke an unknown manager" 1 "not found" -- cc manager revoke mgr-99

# Operators: the rig operator's TOTP seed, sealed like a device's.
IFS=, read -r op _ op_seed _ < <(sed -n 2p "$RIG/operators.csv")
printf '%s\n' "$op_seed" >"$WORK/op.seed" && chmod 600 "$WORK/op.seed"
if cc operator add "$op" --seed-file "$WORK/op.seed" >"$WORK/out" 2>"$WORK/err" && grep -q "operator $op added (SHA1, 6 digits, 30 s)" "$WORK/out"; then
    ok "operator add"
else
    bad "operator add: $(cat "$WORK/out" "$WORK/err" | head -c 400)"
fi
expect_fail "operator added twice" 1 "already registered" -- cc operator add "$op" --seed-file "$WORK/op.seed"
printf '0011\n' >"$WORK/short.seed"
expect_fail "operator seed too short" 1 "16-64 bytes in hex" -- cc operator add op-02 --seed-file "$WORK/short.seed"
expect_fail "operator digits out of range" 2 "--digits must be 6 to 8" -- cc operator add op-02 --seed-file "$WORK/op.seed" --digits 9
{ cat "$DB"; cat "$DB-wal" 2>/dev/null || true; } >"$WORK/db.raw"
od -An -v -tx1 "$WORK/db.raw" | tr -d ' \n' >"$WORK/db.hex"
leaks=0
if LC_ALL=C grep -qaF "$op_seed" "$WORK/db.raw"; then leaks=$((leaks + 1)); fi
if grep -qF "$op_seed" "$WORK/db.hex"; then leaks=$((leaks + 1)); fi
expect_eq "no plaintext operator seed in the store" "$leaks" 0
sealed=$(sqlite3 "$DB" "select count(*) from operators where id = '$op' and length(seed_env) >= 36" 2>/dev/null || echo "?")
expect_eq "operator seed sealed (sqlite3 shell)" "$sealed" 1
events=$(sqlite3 "$DB" "select group_concat(event, ' ') from (select event from audit where event in (12, 13, 17, 18) order by seq)" 2>/dev/null || echo "?")
expect_eq "audit events for batch, manager and operator" "$events" "18 12 13 17"

# Offline leases: signed by the cloud key, recorded, never over a file.
expect_fail "lease for a revoked manager" 1 "manager mgr-01 is revoked" -- cc lease issue --manager mgr-01 --operator "$op" --duration 3600 --out "$WORK/lease0.cbor"
curve3='Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID'
cc manager add mgr-03 --ca-cert "$WORK/mgr-ca.pem" --curve-key "$curve3" >/dev/null 2>&1 || bad "manager add mgr-03"
out=$(cc operator allow "$op" --manager mgr-03 2>&1)
expect_eq "operator allow" "$out" "operator $op may open windows on mgr-03"
expect_fail "operator allowed twice" 1 "may already open windows on mgr-03" -- cc operator allow "$op" --manager mgr-03
expect_fail "operator allowed an unknown manager" 1 "is not registered" -- cc operator allow "$op" --manager mgr-99
expect_fail "operator allow without --manager" 2 "and --manager" -- cc operator allow "$op"
if cc lease issue --manager mgr-03 --operator "$op" --duration 7200 --max-enroll 50 --scope batch-01 --out "$WORK/lease.cbor" >"$WORK/out" 2>"$WORK/err" &&
    grep -q "offline lease for mgr-03 written to" "$WORK/out"; then
    ok "lease issue"
else
    bad "lease issue: $(cat "$WORK/out" "$WORK/err" | head -c 400)"
fi
if "$OTPCA_BIN/otpca-proto" decode "$WORK/lease.cbor" >"$WORK/dec" 2>&1 && grep -q "WindowLease" "$WORK/dec" && grep -q "9: true" "$WORK/dec" &&
    grep -q '"batch-01"' "$WORK/dec" && grep -q "7: 50" "$WORK/dec"; then
    ok "the lease file decodes: offline, scope and limit"
else
    bad "lease decode: $(head -c 600 "$WORK/dec")"
fi
offline=$(sqlite3 "$DB" "select count(*) from leases where manager = 'mgr-03' and offline = 1 and max_enroll = 50" 2>/dev/null || echo "?")
expect_eq "the lease is on record" "$offline" 1
expect_fail "lease never overwrites a file" 1 "File exists" -- cc lease issue --manager mgr-03 --operator "$op" --duration 60 --out "$WORK/lease.cbor"
expect_fail "lease for an unknown operator" 1 "operator op-99 is not registered" -- cc lease issue --manager mgr-03 --operator op-99 --duration 60 --out "$WORK/lease2.cbor"
expect_fail "lease scope naming an unknown batch" 1 "batch-77 is not a registered batch" -- cc lease issue --manager mgr-03 --operator "$op" --duration 60 --scope batch-77 --out "$WORK/lease2.cbor"
expect_fail "lease without a duration" 2 "--duration and --out are required" -- cc lease issue --manager mgr-03 --operator "$op" --out "$WORK/lease2.cbor"
expect_fail "lease longer than 30 days" 2 "--duration must be 1 to 2592000" -- cc lease issue --manager mgr-03 --operator "$op" --duration 2592001 --out "$WORK/lease2.cbor"
[ ! -e "$WORK/lease2.cbor" ] && ok "no file from a refused lease" || bad "a refused lease left a file"

if cc audit verify >"$WORK/out" 2>&1 && grep -q "audit chain intact" "$WORK/out"; then ok "audit chain verifies"; else bad "audit verify: $(cat "$WORK/out")"; fi
sqlite3 "$DB" "update audit set detail = 'forged' where seq = 2" 2>"$WORK/err" || bad "sqlite3 update: $(cat "$WORK/err")"
expect_fail "changed audit entry detected" 1 "audit chain broken at entry 2" -- cc audit verify

# Bad input: clear messages, non-zero exits, nothing half-imported.
goodkey=$(awk -F, 'NR == 2 { print $3 }' "$RIG/manifest.csv")
printf 'serial,mac,public_key,seed\nbad serial!,02:00:00:00:00:01,,00112233445566778899aabbccddeeff\nnode-x1,zz,,00112233445566778899aabbccddeeff\nnode-x2,02:00:00:00:00:02,04ff,00112233445566778899aabbccddeeff\nnode-x3,02:00:00:00:00:03,,0011\nnode-x4,02:00:00:00:00:04,%s,00112233445566778899aabbccddeeff\nnode-x5,02:00:00:00:00:05,,00112233445566778899aabbccddeeff\n' "$goodkey" >"$WORK/bad.csv"
expect_fail "bad rows rejected with line numbers" 1 "bad.csv:2: serial must be" -- cc device import "$WORK/bad.csv"
grep -q "bad.csv:3: MAC" "$WORK/err" && grep -q "bad.csv:4: public key" "$WORK/err" && grep -q "bad.csv:5: seed" "$WORK/err" &&
    grep -q "bad.csv:7: a device needs a public_key, or a batch" "$WORK/err" &&
    ok "each bad row named (a row with neither a key nor a batch too)" || bad "bad rows: $(head -c 600 "$WORK/err")"
state=$(cc device show node-x4 2>/dev/null | awk '$1 == "state" { print $2 }')
expect_eq "good row of a bad file still imported" "$state" "pending"
# A row naming a batch never registered: rejected by line, the rest imported.
printf 'serial,mac,public_key,seed,batch\nnode-y1,02:00:00:00:00:11,,00112233445566778899aabbccddeeff,no-such-batch\nnode-y2,02:00:00:00:00:12,%s,00112233445566778899aabbccddeeff,\n' "$goodkey" >"$WORK/nobatch.csv"
expect_fail "a row of an unknown batch is rejected by line" 1 "nobatch.csv:2: unknown batch" -- cc device import "$WORK/nobatch.csv"
state=$(cc device show node-y2 2>/dev/null | awk '$1 == "state" { print $2 }')
expect_eq "the other rows of that file are imported" "$state" "pending"
printf 'name,mac\n' >"$WORK/nohdr.csv"
expect_fail "manifest without the needed columns" 1 "header naming serial, mac and seed" -- cc device import "$WORK/nohdr.csv"
expect_fail "missing manifest" 1 "No such file" -- cc device import "$WORK/none.csv"
printf 'store = x\nfrobnicate = 1\n' >"$WORK/badkey.conf"
expect_fail "unknown config key" 1 "badkey.conf:2: unknown key 'frobnicate'" -- "$C" --config "$WORK/badkey.conf" device list
expect_fail "missing config file" 1 "nope.conf" -- "$C" --config "$WORK/nope.conf" device list
printf 'wrong-pin\n' >"$WORK/wrong.pin" && chmod 600 "$WORK/wrong.pin"
expect_fail "wrong token PIN" 1 "PIN incorrect" -- env OTPCA_CLOUD_TOKEN="pkcs11:token=otpca-cloud?pin-source=file:$WORK/wrong.pin" "$C" --config "$WORK/cloud.conf" init
expect_fail "postgresql store that does not answer" 1 "cannot connect to PostgreSQL at postgresql://otpca:\\*\\*\\*@127.0.0.1:1/otpca" -- env OTPCA_CLOUD_STORE=postgresql://otpca:pw@127.0.0.1:1/otpca "$C" --config "$WORK/cloud.conf" device list
grep -q ':pw@' "$WORK/err" && bad "the store password is in the log" || ok "the store password stays out of the log"
expect_fail "serve on an endpoint it cannot bind" 1 "cannot listen on tcp://256.0.0.1:1" -- env OTPCA_CLOUD_LISTEN=tcp://256.0.0.1:1 "$C" --config "$WORK/cloud.conf" serve
expect_fail "serve with 0 workers" 1 "workers must be a number" -- env OTPCA_CLOUD_WORKERS=0 "$C" --config "$WORK/cloud.conf" serve
printf 'serial,mac,seed\nop:x,02:00:00:00:00:09,00112233445566778899aabbccddeeff\n' >"$WORK/opserial.csv"
expect_fail "device serial in the operators' namespace" 1 "must not begin with 'op:'" -- cc device import "$WORK/opserial.csv"
expect_fail "unknown verb" 2 "unknown verb" -- cc frobnicate
expect_fail "device show without serial" 2 "which device" -- cc device show
finish
