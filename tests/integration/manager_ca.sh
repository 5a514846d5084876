# otpca-manager's CA ceremony and certificate profile against the rig, all
# checked with openssl: the root self-signs in the root token (CA, pathLen
# 1), certifies the manager token's key as an intermediate (CA, pathLen 0,
# keyCertSign|cRLSign) and the manager gets its CURVE key in its token;
# a node certificate carries CN = serial, the RFC 9039 device URNs,
# clientAuth, digitalSignature + keyAgreement, SKI/AKI and a 128-bit
# serial, and `openssl verify` accepts root -> manager -> node; the root's
# CRL (`ca crl`, `ca revoke`), signed in the root token, is accepted by
# `openssl crl -verify` and makes `openssl verify -crl_check_all` refuse
# the revoked manager's node certificates; ceremony output never
# overwrites a file, and bad input exits with a clear message.
. "$(dirname "$0")/lib.sh"
M="$OTPCA_BIN/otpca-manager"
cd "$WORK"

if "$M" ca init-root --key "$(uri otpca-root root-key)" --cn "otpca test root" --out root >out 2>err &&
    [ -s root.pem ] && [ -s root.der ]; then
    ok "ca init-root writes PEM and DER"
else
    bad "ca init-root: $(cat out err | head -c 400)"
fi
openssl x509 -in root.pem -noout -text >root.txt 2>&1
grep -q "CA:TRUE, pathlen:1" root.txt && ok "root: CA, pathLen 1" || bad "root constraints: $(grep -A1 'Basic Constraints' root.txt)"
cmp -s <(openssl x509 -in root.der -inform DER -outform PEM) <(openssl x509 -in root.pem) && ok "DER and PEM agree" || bad "DER vs PEM"
expect_fail "ceremony output never overwrites" 1 "root.pem: File exists" -- "$M" ca init-root --key "$(uri otpca-root root-key)" --cn again --out root

if "$M" ca certify --root "$(uri otpca-root root-key)" --root-cert root.pem --key "$(uri otpca-mgr-01 ca-key)" \
    --id mgr-01 --days 400 --out mgr-01 >out 2>err && grep -q "otpca-cloud manager add mgr-01 --ca-cert mgr-01.pem --curve-key '.\{40\}'" out; then
    ok "ca certify prints the cloud registration line"
else
    bad "ca certify: $(cat out err | head -c 400)"
fi
curve=$(sed -n "s/.*--curve-key '\(.\{40\}\)'.*/\1/p" out)
openssl x509 -in mgr-01.pem -noout -text >mgr.txt 2>&1
grep -q "CA:TRUE, pathlen:0" mgr.txt && ok "manager: CA, pathLen 0" || bad "manager constraints"
grep -A1 "X509v3 Key Usage" mgr.txt | grep -q "Certificate Sign, CRL Sign" && ok "manager: keyCertSign, cRLSign" || bad "manager key usage: $(grep -A1 'Key Usage' mgr.txt)"
grep -q "Subject: CN = mgr-01" mgr.txt && ok "manager: CN = id" || bad "manager subject: $(grep Subject: mgr.txt)"
openssl verify -CAfile root.pem mgr-01.pem >/dev/null 2>&1 && ok "openssl verify: root -> manager" || bad "verify manager"
"$T" pubkey "$(uri otpca-mgr-01 ca-key)" --out mgr-key.pem >/dev/null 2>&1
cmp -s <(openssl x509 -in mgr-01.pem -noout -pubkey) mgr-key.pem && ok "the certificate holds the manager token's key" || bad "manager key differs"
# Certifying again keeps the CURVE key the token already holds.
"$M" ca certify --root "$(uri otpca-root root-key)" --root-cert root.pem --key "$(uri otpca-mgr-01 ca-key)" \
    --id mgr-01 --out mgr-01b >out2 2>&1
curve2=$(sed -n "s/.*--curve-key '\(.\{40\}\)'.*/\1/p" out2)
expect_eq "the manager's CURVE key is kept in its token" "$curve2" "$curve"
pkcs11-tool --module "$MODULE" --token-label otpca-mgr-01 --list-objects --type data 2>/dev/null | grep -q "curve-secret" &&
    bad "the CURVE secret is visible without login" || ok "the CURVE secret is a private object (invisible without login)"

# A node certificate of the manager's profile, for the node token's key.
"$T" pubkey "$(uri node-000001 device-key)" --out node.pub >/dev/null 2>&1
if "$M" cert issue --ca "$(uri otpca-mgr-01 ca-key)" --ca-cert mgr-01.pem --serial node-000001 --mac 02:00:00:00:00:01 \
    --pubkey node.pub --days 30 --out node >out 2>err; then
    ok "cert issue"
else
    bad "cert issue: $(cat out err | head -c 400)"
fi
openssl x509 -in node.pem -noout -text >node.txt 2>&1
openssl verify -CAfile root.pem -untrusted mgr-01.pem node.pem >/dev/null 2>&1 && ok "openssl verify: root -> manager -> node" || bad "verify node: $(openssl verify -CAfile root.pem -untrusted mgr-01.pem node.pem 2>&1)"
openssl verify -CAfile root.pem -untrusted mgr-01.pem -purpose sslclient node.pem >/dev/null 2>&1 && ok "node certificate is good for TLS clients" || bad "purpose sslclient"
openssl verify -CAfile root.pem -untrusted mgr-01.pem -purpose sslserver node.pem >/dev/null 2>&1 && bad "node certificate must not serve TLS" || ok "not a TLS server certificate"
grep -q "Subject: CN = node-000001" node.txt && ok "node: CN = serial" || bad "node subject"
grep -q "URI:urn:dev:os:32473-node-000001" node.txt && grep -q "URI:urn:dev:mac:020000000001" node.txt &&
    ok "node: RFC 9039 device URNs in subjectAltName" || bad "node SAN: $(grep -A1 'Alternative Name' node.txt)"
grep -A1 "X509v3 Key Usage" node.txt | grep -q "Digital Signature, Key Agreement" && ok "node: digitalSignature, keyAgreement" || bad "node key usage"
grep -A1 "Extended Key Usage" node.txt | grep -q "TLS Web Client Authentication" && ok "node: clientAuth" || bad "node EKU"
grep -q "CA:FALSE" node.txt || ! grep -q "CA:TRUE" node.txt && ok "node: not a CA" || bad "node is a CA"
grep -q "X509v3 Subject Key Identifier" node.txt && grep -q "X509v3 Authority Key Identifier" node.txt && ok "node: SKI and AKI" || bad "SKI/AKI"
serial=$(openssl x509 -in node.pem -noout -serial | cut -d= -f2)
[ ${#serial} -eq 32 ] && ok "node: 128-bit serial" || bad "serial $serial"
cmp -s <(openssl x509 -in node.pem -noout -pubkey) node.pub && ok "node: the token's device key" || bad "node key"
# A serial with ':' is percent-encoded in its URN (RFC 9039: unreserved only).
"$M" cert issue --ca "$(uri otpca-mgr-01 ca-key)" --ca-cert mgr-01.pem --serial "lot:7" --mac 0200000000000001 \
    --pubkey node.pub --pen 99999 --out colon >/dev/null 2>&1
openssl x509 -in colon.pem -noout -ext subjectAltName 2>/dev/null | grep -q "URI:urn:dev:os:99999-lot%3A7, URI:urn:dev:mac:0200000000000001" &&
    ok "':' percent-encoded; EUI-64; own PEN" || bad "colon SAN: $(openssl x509 -in colon.pem -noout -ext subjectAltName 2>&1)"

# The root's CRL: first empty, then with the manager revoked.
R="$(uri otpca-root root-key)"
"$M" ca crl --root "$R" --root-cert root.pem --out crl-1 >out 2>err && grep -q "root CRL number 1, 0 entries" out &&
    ok "ca crl: an empty root CRL, number 1" || bad "ca crl: $(cat out err | head -c 400)"
openssl crl -in crl-1.pem -CAfile root.pem -noout 2>&1 | grep -q "verify OK" && ok "openssl crl -verify: the root's CRL" ||
    bad "crl-1 verify: $(openssl crl -in crl-1.pem -CAfile root.pem -noout 2>&1)"
out=$(openssl verify -crl_check_all -CAfile root.pem -CRLfile crl-1.pem -untrusted mgr-01.pem node.pem 2>&1 || true)
echo "$out" | grep -q "unable to get certificate CRL" && ok "without the manager's own CRL, -crl_check_all cannot decide" ||
    bad "crl_check_all without the manager CRL: $out"
openssl verify -crl_check -CAfile root.pem -CRLfile crl-1.pem mgr-01.pem >/dev/null 2>&1 &&
    ok "openssl verify -crl_check: the manager is good on the empty CRL" || bad "manager refused on the empty CRL"
if "$M" ca revoke --root "$R" --root-cert root.pem --crl crl-1.pem --cert mgr-01.pem --reason 1 --days 30 --out crl-2 \
    >out 2>err && grep -q "root CRL number 2, 1 entry" out; then
    ok "ca revoke: CRL number 2 with one entry"
else
    bad "ca revoke: $(cat out err | head -c 400)"
fi
openssl crl -in crl-2.der -inform DER -CAfile root.pem -noout -text >crl2.txt 2>&1
grep -q "verify OK" crl2.txt && ok "openssl crl -verify: the new CRL (DER)" || bad "crl-2: $(head -c 400 crl2.txt)"
mserial=$(openssl x509 -in mgr-01.pem -noout -serial | cut -d= -f2)
grep -q "Serial Number: $mserial" crl2.txt && grep -A4 "Serial Number: $mserial" crl2.txt | grep -q "Key Compromise" &&
    ok "the manager's serial is listed with its reason" || bad "crl-2 entry: $(grep -A3 'Serial Number' crl2.txt)"
grep -A1 "X509v3 CRL Number" crl2.txt | grep -q "^ *2$" &&
    grep -q "X509v3 Authority Key Identifier" crl2.txt && ok "cRLNumber 2 and AKI" || bad "crl-2 extensions: $(grep -A1 X509v3 crl2.txt)"
grep -q "Version 2" crl2.txt && ok "a v2 CRL" || bad "crl version"
out=$(openssl verify -crl_check -CAfile root.pem -CRLfile crl-2.pem mgr-01.pem 2>&1 || true)
echo "$out" | grep -q "certificate revoked" && ok "openssl verify -crl_check refuses the revoked manager" || bad "revoked manager accepted: $out"
# The root CRL and an empty CRL of the manager: the node certificate chains
# through a revoked CA.
"$M" ca crl --root "$(uri otpca-mgr-01 ca-key)" --root-cert mgr-01.pem --out mgr-crl >/dev/null 2>&1 ||
    bad "the manager key signs a CRL of its own"
out=$(openssl verify -crl_check_all -CAfile root.pem -CRLfile crl-2.pem -CRLfile mgr-crl.pem -untrusted mgr-01.pem node.pem 2>&1 || true)
echo "$out" | grep -q "certificate revoked" && ok "openssl verify -crl_check_all refuses a node under the revoked manager" ||
    bad "node under a revoked manager accepted: $out"
out=$(openssl verify -crl_check_all -CAfile root.pem -CRLfile crl-1.pem -CRLfile mgr-crl.pem -untrusted mgr-01.pem node.pem 2>&1 || true)
echo "$out" | grep -q ": OK" && ok "...and accepts it with the root CRL before the revocation" || bad "node with crl-1: $out"
expect_fail "revoking twice" 1 "already revoked" -- "$M" ca revoke --root "$R" --root-cert root.pem --crl crl-2.pem --cert mgr-01.pem --out crl-3
expect_fail "a CRL of another issuer" 1 "is not a CRL of this root" -- "$M" ca revoke --root "$R" --root-cert root.pem --crl mgr-crl.pem --cert mgr-01.pem --out crl-3
expect_fail "a certificate the root did not issue" 1 "not a certificate issued by this root" -- "$M" ca revoke --root "$R" --root-cert root.pem --crl crl-2.pem --cert node.pem --out crl-3
expect_fail "reason 7 does not exist" 2 "CRLReason" -- "$M" ca revoke --root "$R" --root-cert root.pem --cert mgr-01.pem --reason 7 --out crl-3
expect_fail "the wrong key for the certificate" 1 "signature invalid" -- "$M" ca crl --root "$(uri otpca-mgr-01 ca-key)" --root-cert root.pem --out crl-3
expect_fail "CRL output never overwrites" 1 "crl-2.pem: File exists" -- "$M" ca crl --root "$R" --root-cert root.pem --crl crl-2.pem --out crl-2
[ ! -e crl-3.pem ] && ok "no CRL from a refused command" || bad "a refused command left a CRL"

# Bad input.
expect_fail "init-root without --cn" 2 "--key, --cn and --out are required" -- "$M" ca init-root --key "$(uri otpca-root root-key)" --out x
expect_fail "bad MAC" 2 "--mac must be 6 or 8 hex bytes" -- "$M" cert issue --ca "$(uri otpca-mgr-01 ca-key)" --ca-cert mgr-01.pem --serial n1 --mac 02:00 --pubkey node.pub --out y
expect_fail "bad serial" 2 "1-64 characters" -- "$M" cert issue --ca "$(uri otpca-mgr-01 ca-key)" --ca-cert mgr-01.pem --serial "a b" --mac 02:00:00:00:00:01 --pubkey node.pub --out y
printf '04%0128d\n' 1 >offcurve.hex
expect_fail "public key off the curve" 1 "not a P-256 public key" -- "$M" cert issue --ca "$(uri otpca-mgr-01 ca-key)" --ca-cert mgr-01.pem --serial n1 --mac 02:00:00:00:00:01 --pubkey offcurve.hex --out y
expect_fail "issuer file that is no certificate" 1 "not a certificate" -- "$M" cert issue --ca "$(uri otpca-mgr-01 ca-key)" --ca-cert node.pub --serial n1 --mac 02:00:00:00:00:01 --pubkey node.pub --out y
printf 'wrong\n' >wrong.pin && chmod 600 wrong.pin
expect_fail "wrong PIN" 1 "PIN incorrect" -- "$M" ca init-root --key "pkcs11:token=otpca-root;object=root-key?pin-source=file:$WORK/wrong.pin" --cn x --out z
expect_fail "PIN on the command line" 1 "pin-value on the command line" -- "$M" ca init-root --key "pkcs11:token=otpca-root;object=root-key?pin-value=1234" --cn x --out z
expect_fail "unknown key object" 1 "no object in the token matches" -- "$M" ca init-root --key "$(uri otpca-root nope)" --cn x --out z
expect_fail "window open without a configuration" 2 "--config is required" -- "$M" window open
expect_fail "unknown verb" 2 "unknown verb" -- "$M" frob nicate
[ ! -e y.pem ] && [ ! -e z.pem ] && ok "no file from a refused command" || bad "a refused command left a file"
finish
