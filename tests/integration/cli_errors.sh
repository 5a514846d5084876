# Bad input to otpca-token: a clear message and a non-zero exit, never a
# crash (a crash would exit >= 128 and fail the exit-code check).
. "$(dirname "$0")/lib.sh"

expect_fail "wrong PIN" 1 "PIN incorrect" -- \
    "$T" otp "pkcs11:token=node-000001;object=totp" --pin-fd 3 3< <(echo wrong-pin)
expect_fail "missing token" 1 "no token matches" -- "$T" otp "$(uri no-such-token totp)"
expect_fail "unknown object" 1 "no object in the token matches" -- "$T" otp "$(uri node-000001 nope)"
expect_fail "URI without an object" 1 "names no object" -- "$T" otp "$(uri node-000001)"
expect_fail "malformed URI" 1 "not a valid PKCS#11 URI" -- "$T" otp "pkcs11:token=a;;object=b"
expect_fail "not a URI" 1 "not a valid PKCS#11 URI" -- "$T" otp "node-000001"
expect_fail "repeated attribute" 1 "not a valid PKCS#11 URI" -- "$T" otp "pkcs11:token=a;token=b"
expect_fail "module missing" 1 "module could not be loaded" -- "$T" list --module /nonexistent/module.so
printf 'not a module' >"$WORK/fake.so"
expect_fail "file that is no module" 1 "module could not be loaded" -- "$T" list --module "$WORK/fake.so"
expect_fail "module-path in URI" 1 "module could not be loaded" -- \
    "$T" otp "pkcs11:token=node-000001;object=totp?module-path=$WORK/fake.so"
expect_fail "pin-value on argv" 1 "visible to every user" -- \
    "$T" otp "pkcs11:token=node-000001;object=totp?pin-value=1234"
cp "$RIG/pins/node-000001.pin" "$WORK/open.pin"; chmod 644 "$WORK/open.pin"
expect_fail "world-readable PIN file" 1 "readable by group or others" -- \
    "$T" otp "pkcs11:token=node-000001;object=totp" --pin-file "$WORK/open.pin"
expect_fail "no PIN source without a terminal" 1 "no terminal|PIN could not be read" -- \
    setsid "$T" otp "pkcs11:token=node-000001;object=totp"
expect_fail "seed without a source" 2 "never argv" -- "$T" seed import "$(uri node-000001 x)"
printf 'zz' >"$WORK/seed"
expect_fail "seed not hex" 1 "16 to 64 bytes|not hex" -- "$T" seed import "$(uri node-000001 x)" --seed-file "$WORK/seed"
expect_fail "duplicate key label" 1 "already exists" -- "$T" keygen "$(uri node-000001 device-key)"
expect_fail "unknown verb" 2 "unknown verb" -- "$T" frobnicate
expect_fail "unknown option" 2 "unknown option" -- "$T" list --frob
expect_fail "digits out of range" 2 "out of range" -- "$T" otp "$(uri node-000001 totp)" --digits 9
expect_fail "rig over an existing rig" 1 "already holds a rig|already exists" -- "$T" rig create "$RIG"
expect_fail "issue without issuer" 2 "needs --issuer" -- "$T" cert issue "$(uri otpca-root root-key)" --cn x
echo junk >"$WORK/junk.pem"
expect_fail "garbage public key" 1 "invalid argument|inputs" -- \
    "$T" cert issue "$(uri otpca-root root-key)" --cn x --issuer "$WORK/junk.pem" --pubkey "$WORK/junk.pem"

for verb in list keygen pubkey "seed import" otp sign "cert selfsign" "cert issue" "rig create"; do
    # shellcheck disable=SC2086
    if out=$("$T" $verb --help) && [[ "$out" == usage:* ]]; then ok "--help: $verb"; else bad "--help: $verb"; fi
done
finish
