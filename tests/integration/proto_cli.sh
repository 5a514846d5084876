# otpca-proto: decode names and checks messages (exit 1 with a reason for
# anything the strict decoder refuses), sizes meets the protocol's targets.
. "$(dirname "$0")/lib.sh"
P="$OTPCA_BIN/otpca-proto"

nonce=000102030405060708090a0b0c0d0e0f
printf 'a2 00 01 01 50 %s\n' "$nonce" >"$WORK/treq.hex"
if "$P" decode --hex "$WORK/treq.hex" >"$WORK/out" 2>"$WORK/err" && grep -q "TimeRequest (type 1), 21 bytes" "$WORK/out" \
    && grep -q "h'$nonce'" "$WORK/out"; then
    ok "decode TimeRequest from hex"
else
    bad "decode TimeRequest from hex: $(cat "$WORK/out" "$WORK/err" | head -c 300)"
fi

# The same message as binary on stdin.
hex2bin() { printf '%b' "$(tr -dc '0-9a-f' <"$1" | sed 's/\(..\)/\\x\1/g')"; }
hex2bin "$WORK/treq.hex" >"$WORK/treq.bin"
if "$P" decode <"$WORK/treq.bin" | grep -q "TimeRequest"; then ok "decode binary from stdin"; else bad "decode binary from stdin"; fi

# Every golden encoding of the unit tests decodes and names its type.
for g in "$(dirname "$0")"/../golden/*.hex; do
    if "$P" decode --hex "$g" >"$WORK/out" 2>"$WORK/err" && ! grep -q "unknown message" "$WORK/out"; then
        ok "decode golden $(basename "$g")"
    else
        bad "decode golden $(basename "$g"): $(head -c 300 "$WORK/err")"
    fi
done

check_refused() { # check_refused WHAT HEX REGEX
    printf '%s\n' "$2" >"$WORK/m.hex"
    expect_fail "$1" 1 "$3" -- "$P" decode --hex "$WORK/m.hex"
}
check_refused "non-shortest length" "a2 00 01 01 58 10 $nonce" "not deterministic CBOR"
check_refused "indefinite map" "bf 00 01 01 50 $nonce ff" "not deterministic CBOR"
check_refused "unsorted keys" "a2 01 50 $nonce 00 01" "not deterministic CBOR"
check_refused "trailing byte" "a2 00 01 01 50 $nonce 00" "not deterministic CBOR"
check_refused "unknown type" "a1 00 18 63" "unknown message type 99"
check_refused "missing nonce" "a1 00 01" "required message field missing"
check_refused "short nonce" "a2 00 01 01 4f 000102030405060708090a0b0c0d0e" "exceeds a size"
check_refused "bad COSE header" "d2 84 43 a1 01 27 a1 04 48 0000000000000000 40 5840 $nonce$nonce$nonce$nonce" "COSE header"
check_refused "odd hex" "a2 0" "odd number of hex digits"
check_refused "not hex" "zz" "not hex"
expect_fail "unknown verb" 2 "unknown verb" -- "$P" frobnicate
expect_fail "missing file" 1 "No such file" -- "$P" decode "$WORK/nope"

if "$P" sizes >"$WORK/sizes"; then
    req=$(awk '$1 == "EnrollRequest" { print $2; exit }' "$WORK/sizes")
    resp=$(awk '$1 == "EnrollResponse" { print $2; exit }' "$WORK/sizes")
    if [ -n "$req" ] && [ "$req" -le 200 ]; then ok "EnrollRequest $req <= 200 bytes"; else bad "EnrollRequest size '$req'"; fi
    if [ -n "$resp" ] && [ "$resp" -le 900 ]; then ok "EnrollResponse $resp <= 900 bytes"; else bad "EnrollResponse size '$resp'"; fi
else
    bad "sizes failed"
fi
finish
