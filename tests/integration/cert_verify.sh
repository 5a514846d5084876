# Certificates and signatures made with token keys through the wolfCrypt
# bridge are accepted by OpenSSL.
. "$(dirname "$0")/lib.sh"

"$T" cert selfsign "$(uri otpca-root root-key)" --cn "otpca test root" --ca --path-len 1 --days 30 --out "$WORK/root.pem"
"$T" pubkey "$(uri otpca-mgr-01 ca-key)" --out "$WORK/mgr.pub"
"$T" cert issue "$(uri otpca-root root-key)" --issuer "$WORK/root.pem" --pubkey "$WORK/mgr.pub" \
    --cn "otpca-mgr-01" --ca --path-len 0 --days 30 --out "$WORK/mgr.pem"
"$T" pubkey "$(uri node-000001 device-key)" --out "$WORK/node.pub"
"$T" cert issue "$(uri otpca-mgr-01 ca-key)" --issuer "$WORK/mgr.pem" --pubkey "$WORK/node.pub" \
    --cn "node-000001" --days 30 --out "$WORK/node.pem"

if openssl verify -CAfile "$WORK/root.pem" "$WORK/root.pem" >/dev/null; then ok "root verifies"; else bad "root"; fi
if openssl verify -CAfile "$WORK/root.pem" -untrusted "$WORK/mgr.pem" "$WORK/node.pem" >/dev/null; then
    ok "root -> manager -> node chain verifies"
else
    bad "chain does not verify"
fi
expect_eq "node certificate carries the node's token key" \
    "$(openssl x509 -in "$WORK/node.pem" -noout -pubkey | openssl pkey -pubin -outform DER | od -An -tx1 | tr -d ' \n')" \
    "$(openssl pkey -pubin -in "$WORK/node.pub" -outform DER | od -An -tx1 | tr -d ' \n')"
case "$(openssl x509 -in "$WORK/mgr.pem" -noout -ext basicConstraints,keyUsage)" in
    *"CA:TRUE, pathlen:0"*"Certificate Sign, CRL Sign"*) ok "manager is a CA with pathlen 0" ;;
    *) bad "manager extensions: $(openssl x509 -in "$WORK/mgr.pem" -noout -ext basicConstraints,keyUsage)" ;;
esac
# A certificate from an unrelated key must not verify against this root.
"$T" cert selfsign "$(uri otpca-cloud cloud-sign)" --cn "otpca test root" --ca --days 30 --out "$WORK/other.pem"
if openssl verify -CAfile "$WORK/other.pem" -untrusted "$WORK/mgr.pem" "$WORK/node.pem" >/dev/null 2>&1; then
    bad "chain verified against the wrong root"
else
    ok "chain rejected under the wrong root"
fi

# Detached signature over a file, DER, checked by openssl dgst.
head -c 10000 /dev/urandom >"$WORK/data"
"$T" sign "$(uri node-000001 device-key)" --in "$WORK/data" --der --out "$WORK/data.sig"
if openssl dgst -sha256 -verify "$WORK/node.pub" -signature "$WORK/data.sig" "$WORK/data" >/dev/null; then
    ok "token signature verifies with openssl"
else
    bad "token signature rejected by openssl"
fi
printf x >>"$WORK/data"
if openssl dgst -sha256 -verify "$WORK/node.pub" -signature "$WORK/data.sig" "$WORK/data" >/dev/null 2>&1; then
    bad "signature verified over changed data"
else
    ok "signature rejected over changed data"
fi
finish
