# Keys and seeds made by otpca are sensitive and never extractable, as
# pkcs11-tool (OpenSC) sees them, and their values cannot be read.
. "$(dirname "$0")/lib.sh"

pin=$(cat "$RIG/pins/node-000002.pin")
p11() { pkcs11-tool --module "$MODULE" --token-label node-000002 --login --pin "$pin" "$@"; }

p11 --list-objects >"$WORK/objects" 2>&1
access() { # access LABEL CLASS-REGEX -> the object's "Access:" line
    awk -v l="label:[ ]+$1\$" -v c="$2" '/ Object;/ {cls=$0} $0 ~ l && cls ~ c {p=1} p && /Access:/ {print; p=0}' "$WORK/objects"
}
# Generated in the token: sensitive, always sensitive, never extractable.
a=$(access device-key '^Private Key')
case "$a" in
    *"sensitive, always sensitive, never extractable"*) ok "device key:$a" ;;
    *) bad "device key access: '$a'" ;;
esac
# Imported (the seed existed outside once, so not "never extractable" in
# PKCS#11 terms), but sensitive and not extractable.
a=$(access totp '^Secret Key')
if [[ "$a" == *sensitive* && ! "$a" =~ (:|,)[[:space:]]*extractable ]]; then
    ok "seed:$a"
else
    bad "seed access: '$a'"
fi
for obj in "privkey device-key" "secrkey totp"; do
    set -- $obj
    rm -f "$WORK/value"
    p11 --read-object --type "$1" --label "$2" -o "$WORK/value" >"$WORK/err" 2>&1 || true
    if [ -s "$WORK/value" ]; then
        bad "pkcs11-tool read the value of $2"
    elif grep -q CKR_ATTRIBUTE_SENSITIVE "$WORK/err"; then
        ok "pkcs11-tool is refused the value of $2 (CKR_ATTRIBUTE_SENSITIVE)"
    elif [ "$1" == privkey ] && grep -q "reading private keys not" "$WORK/err"; then
        # OpenSC 0.23 never reads private keys; the unit test asks the token
        # for CKA_VALUE directly and expects CKR_ATTRIBUTE_SENSITIVE.
        ok "pkcs11-tool exports no private key"
    else
        bad "pkcs11-tool got no value of $2, but not for sensitivity: $(head -c 300 "$WORK/err")"
    fi
done
# The public key pkcs11-tool exports is the one otpca reports.
p11 --read-object --type pubkey --label device-key -o "$WORK/pub.der" >/dev/null 2>&1
ours=$("$T" pubkey "$(uri node-000002 device-key)" --format der | od -An -tx1 | tr -d ' \n')
theirs=$(openssl pkey -pubin -inform DER -in "$WORK/pub.der" -outform DER | od -An -tx1 | tr -d ' \n')
expect_eq "public key matches pkcs11-tool's" "$ours" "$theirs"
expect_eq "public key matches the manifest" "$("$T" pubkey "$(uri node-000002 device-key)" --format sec1)" \
    "$(awk -F, '$1 == "node-000002" { print $3 }' "$RIG/manifest.csv")"
finish
