# bench/lib.sh: what bench/crypto.sh and bench/enroll.sh share, sourced by
# both (it runs nothing by itself): their command line and its limits, the
# temporary directory and the traps, running a child the traps can stop,
# the SP ECC build of wolfSSL, configuring and building one benchmark
# target against both wolfSSL builds (each binary must report the wolfSSL
# it is meant to have), the runs in ABBA order, the top-level fields of a
# run's JSON, the awk median and the runs' JSON for --json. At the end,
# the window rig that bench/window.sh and bench/faults.sh share (wrig_*:
# rig, devices, cloud, ceremony, starting and stopping the daemons).
#
# The sourcing script sets prog (its name in messages), root (the tree),
# seconds, rounds, runs and json (the defaults), usage_lines and help_lines
# (sed ranges of its own header) and script (its own path), then calls the
# functions below; exit statuses: 2 bad usage, 3 wolfSSL SP build,
# configure or build failed, 1 a run failed, 130 interrupted.

usage() { sed -n "${usage_lines}p" "$script" | sed 's/^# *//'; }
help() { sed -n "${help_lines}p" "$script" | sed 's/^# \{0,1\}//'; }
say() { echo "$prog: $*" >&2; }

# bench_args ARGS...: --seconds, --rounds, --runs, --json, --help, checked
# against the benchmark's own limits (bench/benchutil.h) before building.
bench_args() {
    while [ $# -gt 0 ]; do
        case $1 in
        --seconds) seconds=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
        --rounds) rounds=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
        --runs) runs=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
        --json) json=1; shift ;;
        -h | --help) help; exit 0 ;;
        *) say "unknown argument: $1"; usage >&2; exit 2 ;;
        esac
    done
    if ! [[ $seconds =~ ^[0-9]+([.][0-9]+)?$ ]] ||
        ! awk -v s="$seconds" 'BEGIN { exit !(s >= 0.05 && s <= 3600) }'; then
        say "--seconds wants 0.05..3600"
        exit 2
    fi
    if ! [[ $rounds =~ ^[1-9][0-9]{0,3}$ ]] || [ "$rounds" -gt 1000 ]; then
        say "--rounds wants 1..1000"
        exit 2
    fi
    if ! [[ $runs =~ ^[1-9][0-9]?$ ]] || [ "$runs" -gt 20 ]; then
        say "--runs wants 1..20"
        exit 2
    fi
}

# bench_tmp NAME: $tmp, a new directory otpca-NAME.XXXXXX removed at the
# end, and the traps.
bench_tmp() {
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/otpca-$1.XXXXXX")
    child=
    trap bench_cleanup EXIT
    trap 'say interrupted; exit 130' INT TERM
}
bench_cleanup() {
    if [ -n "$child" ]; then # a benchmark still running: stop it, it removes its rig
        kill -TERM "$child" 2>/dev/null
        wait "$child" 2>/dev/null
    fi
    rm -rf "$tmp"
}

# run_child OUT ERR CMD...: run CMD as a child the traps can stop, its
# stdout to OUT and stderr to ERR; its exit status in $rc. (Redirecting the
# call instead would also redirect the traps' own messages.)
run_child() {
    local out=$1 err=$2
    shift 2
    # exec: the child is CMD itself, not a subshell around it, so that the
    # traps' kill reaches it.
    if [ "$out" = "$err" ]; then
        exec "$@" >"$out" 2>&1 &
    else
        exec "$@" >"$out" 2>"$err" &
    fi
    child=$!
    wait "$child"
    rc=$?
    child=
}

# bench_sp_wolfssl: the SP build of wolfSSL in .deps/wolfssl, made by
# deploy/wolfssl.sh when it is missing.
bench_sp_wolfssl() {
    local sp_prefix="$root/.deps/wolfssl" busy
    # deploy/wolfssl.sh works in .deps/build-KEY and removes it when done;
    # two of them at once would remove each other's files.
    busy=$(find "$root/.deps" -mindepth 1 -maxdepth 1 -type d -name 'build-*' 2>/dev/null | head -1)
    if [ -n "$busy" ]; then
        say "a wolfSSL build is under way ($busy exists: deploy/wolfssl.sh is running, or was"
        say "killed; then remove that directory); try again when it is done"
        exit 3
    fi
    if [ ! -f "$sp_prefix/lib/libwolfssl.a" ] || [ ! -f "$sp_prefix/include/wolfssl/options.h" ]; then
        say "no SP ECC build of wolfSSL in .deps/wolfssl; running deploy/wolfssl.sh" \
            "(Debian's source package, about a minute)"
        run_child /dev/stderr /dev/stderr "$root/deploy/wolfssl.sh"
        if [ "$rc" -ne 0 ] || [ ! -f "$sp_prefix/lib/libwolfssl.a" ]; then
            say "deploy/wolfssl.sh failed (exit $rc): there is no SP ECC build to compare with;" \
                "see its messages above"
            exit 3
        fi
    fi
}

# bench_build_both TARGET DIR_PREFIX JOBS: configure and build TARGET with
# -jJOBS in DIR_PREFIX-pkg (OTPCA_WOLFSSL_PACKAGED=ON) and DIR_PREFIX-sp,
# and check that each binary reports the wolfSSL it should; sets the
# arrays dir, bin and want (keys pkg and sp).
bench_build_both() {
    local target=$1 prefix=$2 b got
    jobs=$3
    declare -gA dir bin want
    dir[pkg]="$prefix-pkg"
    dir[sp]="$prefix-sp"
    want[pkg]="packaged, SP ECC off"
    want[sp]="source build, SP ECC on"
    for b in pkg sp; do bin[$b]="${dir[$b]}/bin/$target"; done
    # Configure every time: the SP prefix is looked for (and its real path,
    # .deps/wolfssl-KEY, fixed) at configure time only, and deploy/wolfssl.sh
    # may have moved .deps/wolfssl since the last run. With nothing changed
    # it takes about a second and the build then only checks its files.
    for b in pkg sp; do
        bench_configure "$b"
        bench_build "$b" "$target"
        # What the binary says it was built against (from CMake, see --help).
        got=$("${bin[$b]}" --help 2>/dev/null | sed -n 's/^ *Built against wolfSSL [^,]*, \(.*\)\.$/\1/p')
        if [ "$got" != "${want[$b]}" ]; then
            say "${bin[$b]} is built with '${got:-?}', not '${want[$b]}'"
            exit 3
        fi
    done
}
bench_configure() { # $1 = pkg | sp
    local packaged=OFF
    [ "$1" = pkg ] && packaged=ON
    say "configuring ${dir[$1]} (OTPCA_WOLFSSL_PACKAGED=$packaged)"
    run_child "$tmp/configure-$1.log" "$tmp/configure-$1.log" \
        cmake -S "$root" -B "${dir[$1]}" -DOTPCA_BUILD_TESTS=OFF -DOTPCA_WOLFSSL_PACKAGED=$packaged
    if [ "$rc" -ne 0 ]; then
        cat "$tmp/configure-$1.log" >&2
        say "configure of ${dir[$1]} failed"
        exit 3
    fi
}
bench_build() { # $1 = pkg | sp, $2 = target
    say "building $2 in ${dir[$1]} (-j$jobs)"
    run_child "$tmp/build-$1.log" "$tmp/build-$1.log" \
        cmake --build "${dir[$1]}" -j"$jobs" --target "$2"
    if [ "$rc" -ne 0 ]; then
        tail -40 "$tmp/build-$1.log" >&2
        say "build in ${dir[$1]} failed"
        exit 3
    fi
}

# bench_run_all LIMIT: each binary $runs times with --json --seconds
# --rounds, in ABBA order (pkg sp, sp pkg, ...), each stopped after LIMIT
# seconds; run k of build b in $tmp/b-k.json. Sets the array order. Each
# run is bounded by the benchmark itself; LIMIT is only the safety net.
bench_run_all() {
    local limit=$1 p b n=0 out
    order=()
    for ((p = 1; p <= runs; p++)); do
        if ((p % 2)); then order+=(pkg sp); else order+=(sp pkg); fi
    done
    local -A count=([pkg]=0 [sp]=0)
    for b in "${order[@]}"; do
        n=$((n + 1))
        count[$b]=$((count[$b] + 1))
        out="$tmp/$b-${count[$b]}.json"
        say "run $n/${#order[@]}: $b (${want[$b]}), --seconds $seconds --rounds $rounds"
        run_child "$out" "$tmp/$b-${count[$b]}.err" timeout --signal=TERM --kill-after=30 "$limit" \
            "${bin[$b]}" --json --seconds "$seconds" --rounds "$rounds"
        if [ "$rc" -ne 0 ]; then
            cat "$tmp/$b-${count[$b]}.err" >&2
            [ "$rc" -eq 124 ] && say "run $n ($b) took longer than ${limit}s and was stopped"
            [ "$rc" -eq 2 ] && exit 2
            [ "$rc" -eq 130 ] && exit 130
            say "run $n ($b) failed (exit $rc)"
            exit 1
        fi
        local sp_flag=false
        [ "$b" = sp ] && sp_flag=true
        if ! grep -q "\"sp_ecc\":$sp_flag" "$out"; then
            say "run $n ($b) did not report SP ECC $sp_flag"
            exit 1
        fi
    done
}

# bench_limit FACTOR BASE: the safety net of one run, FACTOR x (S + the
# warm-up) x 4 + BASE seconds, as a whole number.
bench_limit() {
    awk -v s="$seconds" -v f="$1" -v c="$2" \
        'BEGIN { w = s / 4; if (w > 0.5) w = 0.5; printf "%d", f * (s + w) * 4 + c }'
}

field() { # a top-level string field of a run's JSON
    sed -n "s/.*\"$2\":\"\([^\"]*\)\".*/\1/p" "$1" | head -1
}

# bench_facts: the machine and the two wolfSSL builds, from the first run of
# each: cpu os cores ver_pkg ver_sp ecc_pkg ecc_sp; order_json.
bench_facts() {
    local first_pkg="$tmp/pkg-1.json" first_sp="$tmp/sp-1.json"
    cpu=$(field "$first_sp" cpu)
    os=$(field "$first_sp" os)
    cores=$(sed -n 's/.*"cores":\([0-9]*\).*/\1/p' "$first_sp" | head -1)
    ver_pkg=$(field "$first_pkg" version)
    ver_sp=$(field "$first_sp" version)
    ecc_pkg=$(field "$first_pkg" ecc)
    ecc_sp=$(field "$first_sp" ecc)
    order_json=$(printf '"%s",' "${order[@]}")
}

# awk functions for the reports: median(s) of a comma-separated list (also
# setting lo and hi), append(a, key, x) to such a list.
bench_awk_lib='
    function median(s,    c, i, j, t, v) {
        c = split(s, v, ",")
        for (i = 2; i <= c; i++)         # insertion sort, c <= 20
            for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
        lo = v[1]; hi = v[c]
        return (c % 2) ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
    }
    function append(a, key, x) { a[key] = a[key] (a[key] == "" ? "" : ",") x }
'

# bench_json_runs: the end of the --json object, every run's own JSON:
# ],"runs":{"packaged":[...],"sp":[...]}}
bench_json_runs() {
    local k sep=
    printf '],"runs":{"packaged":['
    for ((k = 1; k <= runs; k++)); do printf '%s' "$sep"; tr -d '\n' <"$tmp/pkg-$k.json"; sep=,; done
    printf '],"sp":['
    sep=
    for ((k = 1; k <= runs; k++)); do printf '%s' "$sep"; tr -d '\n' <"$tmp/sp-$k.json"; sep=,; done
    printf ']}}\n'
}

# ---- the window rig: what bench/window.sh and bench/faults.sh share ------
#
# A SoftHSM rig (root, cloud, manager mgr-01 and its operator token; no
# node tokens), N devices with software keys (otpca-bench-window gen)
# imported into a real cloud and approved, the root ceremony, the manager
# registered, `otpca-cloud serve` and `otpca-manager window open` on
# loopback. The sourcing script sets bin (the binaries), tmp (a directory
# of its own), an array pids (what its EXIT trap kills) and a function
# fail (says why and exits); everything below writes in $tmp and logs
# there.

# wrig_setup N: rig, N devices, cloud store, import, ceremony, registration;
# sets rig, M, curve, sign and exports SOFTHSM2_CONF.
wrig_setup() {
    local devices=$1 mcurve
    rig=$tmp/rig
    M=$bin/otpca-manager
    export SOFTHSM2_CONF=$rig/softhsm2.conf
    "$bin/otpca-token" rig create "$rig" --nodes 0 --managers 1 >"$tmp/rig.log" 2>&1 || fail "rig create failed"
    "$bin/otpca-bench-window" gen --count "$devices" --out "$tmp" || fail "gen failed"
    cat >"$tmp/cloud.conf" <<END
store = $tmp/cloud.db
token = pkcs11:token=otpca-cloud?$(wrig_pin otpca-cloud)
listen = tcp://127.0.0.1:*
notices = tcp://127.0.0.1:*
workers = 2
log_level = warn
END
    wrig_cloud init >"$tmp/init.out" 2>"$tmp/init.log" || fail "cloud init failed"
    curve=$(sed -n 's/^cloud_curve_key *= *//p' "$tmp/init.out")
    sign=$(sed -n 's/^cloud_sign_key *= *//p' "$tmp/init.out")
    wrig_cloud device import "$tmp/manifest.csv" --approve >"$tmp/import.log" 2>&1 || fail "import failed"
    "$M" ca init-root --key "pkcs11:token=otpca-root;object=root-key?$(wrig_pin otpca-root)" --cn "bench root" \
        --out "$tmp/root" >"$tmp/ceremony.log" 2>&1 || fail "ca init-root failed"
    "$M" ca certify --root "pkcs11:token=otpca-root;object=root-key?$(wrig_pin otpca-root)" \
        --root-cert "$tmp/root.pem" --key "pkcs11:token=otpca-mgr-01;object=ca-key?$(wrig_pin otpca-mgr-01)" \
        --id mgr-01 --out "$tmp/mgr-01" >"$tmp/certify.out" 2>>"$tmp/ceremony.log" || fail "ca certify failed"
    mcurve=$(sed -n "s/.*--curve-key '\(.\{40\}\)'.*/\1/p" "$tmp/certify.out")
    wrig_cloud manager add mgr-01 --ca-cert "$tmp/mgr-01.pem" --curve-key "$mcurve" >>"$tmp/ceremony.log" 2>&1 ||
        fail "manager add failed"
    awk -F, 'NR == 2 { print $3 }' "$rig/operators.csv" >"$tmp/op.seed"
    wrig_cloud operator add otpca-op-01 --seed-file "$tmp/op.seed" >>"$tmp/ceremony.log" 2>&1 ||
        fail "operator add failed"
    wrig_cloud operator allow otpca-op-01 --manager mgr-01 >>"$tmp/ceremony.log" 2>&1 || fail "operator allow failed"
}
wrig_pin() { printf 'pin-source=file:%s/pins/%s.pin' "$rig" "$1"; }
wrig_cloud() { "$bin/otpca-cloud" --config "$tmp/cloud.conf" "$@"; }

# wrig_cloud_start: `otpca-cloud serve` on the endpoints of the last start
# (new loopback ports the first time); sets cloudpid, listen, notices.
wrig_cloud_start() {
    local i line=
    : >"$tmp/cloud.out"
    OTPCA_CLOUD_LISTEN=${listen:-tcp://127.0.0.1:*} OTPCA_CLOUD_NOTICES=${notices:-tcp://127.0.0.1:*} \
        "$bin/otpca-cloud" --config "$tmp/cloud.conf" serve >"$tmp/cloud.out" 2>>"$tmp/cloud.log" &
    cloudpid=$!
    pids+=("$cloudpid")
    for ((i = 0; i < 6000; i++)); do # 30 s
        read -r line <"$tmp/cloud.out" && [ -n "$line" ] && break
        kill -0 "$cloudpid" 2>/dev/null || break
        sleep 0.005
    done
    read -r _ listen _ notices <<<"$line"
    [ -n "$notices" ] || fail "the cloud did not start"
}
# wrig_cloud_stop: SIGTERM, bounded wait (20 s), then SIGKILL; its exit
# status in $cloud_rc.
wrig_cloud_stop() {
    wrig_stop "$cloudpid" 20
    cloud_rc=$stop_rc
}

# wrig_manager_conf [STORE]: manager.conf for mgr-01 against the running
# cloud, journal in STORE (default $tmp/manager.db), nodes on a new port.
wrig_manager_conf() {
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/netkey.hex"
    chmod 600 "$tmp/netkey.hex"
    cat >"$tmp/manager.conf" <<END
id = mgr-01
token = pkcs11:token=otpca-mgr-01?$(wrig_pin otpca-mgr-01)
ca_cert = $tmp/mgr-01.pem
store = ${1:-$tmp/manager.db}
cloud = $listen
cloud_notices = $notices
cloud_curve_key = $curve
cloud_sign_key = $sign
listen = tcp://127.0.0.1:*
operator = otpca-op-01
operator_token = pkcs11:token=otpca-op-01;object=op-totp?$(wrig_pin otpca-op-01)
netkey_file = $tmp/netkey.hex
window_seconds = 3600
workers = ${OTPCA_BENCH_WORKERS:-2}
log_level = warn
END
}

# wrig_open N [OPERATOR CODE]: window N (`window open`, stdout to
# $tmp/manager-N.out, stderr to .log); with CODE, as OPERATOR with the code
# typed (--totp-stdin), else with otpca-op-01's code computed in its token.
# Waits (60 s at most) until it serves; sets mpid, endpoint and open_ms.
wrig_open() {
    local n=$1 t0 i line=
    local out=$tmp/manager-$n.out log=$tmp/manager-$n.log
    : >"$out"
    t0=$(date +%s%3N)
    if [ -n "${3:-}" ]; then
        OTPCA_MANAGER_OPERATOR=$2 "$M" window open --config "$tmp/manager.conf" --totp-stdin \
            <<<"$3" >"$out" 2>"$log" &
    else
        "$M" window open --config "$tmp/manager.conf" </dev/null >"$out" 2>"$log" &
    fi
    mpid=$!
    pids+=("$mpid")
    for ((i = 0; i < 12000; i++)); do # 60 s
        read -r line <"$out" && [ -n "$line" ] && break
        kill -0 "$mpid" 2>/dev/null || break
        sleep 0.005
    done
    open_ms=$(($(date +%s%3N) - t0))
    read -r _ endpoint <<<"$line"
    [ -n "$endpoint" ] || fail "window $n did not open: $(tail -3 "$log")"
}
# wrig_close: SIGTERM to the window, timed until it has exited (30 s at
# most, then SIGKILL and a failure); close_ms, close_rc (its exit status).
wrig_close() {
    local t0
    t0=$(date +%s%3N)
    wrig_stop "$mpid" 30
    close_ms=$(($(date +%s%3N) - t0))
    close_rc=$stop_rc
    [ "$close_rc" -ne 137 ] || fail "the window did not close within 30 s"
}

# wrig_stop PID SECONDS: SIGTERM, wait up to SECONDS, then SIGKILL; the
# exit status in stop_rc (137 if it had to be killed).
wrig_stop() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < $2 * 200 && $(kill -0 "$pid" 2>/dev/null && echo 1 || echo 0); i++)); do sleep 0.005; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    stop_rc=$?
}

# wrig_vmhwm PID: the process's peak resident set so far (VmHWM, KiB).
wrig_vmhwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

# wrig_operators K: K more operators (bench-op-01..K) with software seeds
# in $tmp/ops/, allowed on mgr-01: each may open one window per TOTP step
# (the cloud takes a step once per operator), so K of them allow K
# restarts in the same 30 s. Needs oathtool.
wrig_operators() {
    local i id
    command -v oathtool >/dev/null || fail "oathtool is needed (Debian: oathtool)"
    mkdir -p "$tmp/ops"
    for ((i = 1; i <= $1; i++)); do
        printf -v id 'bench-op-%02d' "$i"
        head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/ops/$id.seed"
        wrig_cloud operator add "$id" --seed-file "$tmp/ops/$id.seed" >>"$tmp/ceremony.log" 2>&1 ||
            fail "operator add $id failed"
        wrig_cloud operator allow "$id" --manager mgr-01 >>"$tmp/ceremony.log" 2>&1 || fail "operator allow $id failed"
        op_last[$i]=0
    done
    op_count=$1
}
# wrig_op_code: an operator and a code the cloud has not taken yet: the
# first operator whose last step is below the current step + 1 types the
# code of the smallest step it may still use (now - 0 .. now + 1); sets
# op_id and op_code; returns 1 when every operator has used up its steps
# (the next step brings new ones).
wrig_op_code() {
    local i now step
    now=$(($(date +%s) / 30))
    for ((i = 1; i <= op_count; i++)); do
        step=$((op_last[i] + 1 > now ? op_last[i] + 1 : now))
        if [ "$step" -le $((now + 1)) ]; then
            op_last[$i]=$step
            printf -v op_id 'bench-op-%02d' "$i"
            op_code=$(oathtool --totp -d 6 -N "@$((step * 30))" "$(cat "$tmp/ops/$op_id.seed")") ||
                fail "oathtool failed"
            return 0
        fi
    done
    return 1
}
declare -a op_last
op_count=0
