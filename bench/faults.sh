#!/usr/bin/env bash
# shellcheck disable=SC2128 # bin is an array only inside lib.sh's bench_build_both (not called here)
# Heavy fault variants with the real binaries on loopback, each on a
# SoftHSM rig and a cloud of its own (bench/lib.sh's window rig).
#
#   bench/faults.sh [kill|cloud|diskfull|many|flood|all ...] [--build DIR] [--small] [--keep]
#
#   kill      the manager killed with SIGKILL at random moments while 2,000
#             devices enroll (otpca-bench-window load, software keys),
#             restarted each time (8 kills); then every certificate a node
#             received is in the manager's journal and at the cloud exactly
#             once, every device enrolled, none enrolled without its confirm.
#   cloud     the cloud killed (SIGKILL) while 1,500 devices enroll, 500
#             more enroll while it is down (the cached trust list), then it
#             is started again on the same ports: every record reaches the
#             cloud, none twice.
#   diskfull  (root) the journal on a small tmpfs that is then filled up:
#             issuance stops with a clear error in the log, no node receives
#             a certificate that is not in the journal; space freed, it
#             issues again. Exit 77 (skipped) when not root or no tmpfs.
#   many      10,000 simulated nodes connected at once (40 load clients of
#             250 connections each, every node's request in flight at the
#             start): all enroll, none fails.
#   flood     random bytes, truncated and multi-part messages, bad
#             signatures, wrong keys and unknown serials at the manager's
#             node endpoint, and unauthenticated ZeroMQ clients and raw TCP
#             junk at the cloud's two endpoints, while 1,000 real devices
#             enroll: all of them do, no device is locked, both daemons
#             live and close cleanly.
#
# Default: all. --small scales each variant down (for trying the script).
# Each variant prints PASS/FAIL per property with its numbers, then one
# verdict line; each runs under a time limit and leaves no process behind.
# --keep keeps each variant's directory (its logs, stores and the nodes'
# record files). Exit status: 0 all passed (skipped ones aside), 1 a
# variant failed, 2 bad usage, 77 everything asked for was skipped, 130
# interrupted.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
script=$root/bench/faults.sh
prog=faults.sh
build=$root/build
small=0
keep=0
one=
variants=()
say() { echo "$prog: $*" >&2; }
usage() { sed -n '6p' "$script" | sed 's/^# *//'; }
while [ $# -gt 0 ]; do
    case $1 in
    kill | cloud | diskfull | many | flood) variants+=("$1"); shift ;;
    all) variants+=(kill cloud diskfull many flood); shift ;;
    --build) build=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --small) small=1; shift ;;
    --keep) keep=1; shift ;;
    --one) one=${2:-}; shift 2 || exit 2 ;; # internal: run one variant in this process
    -h | --help) sed -n '3,37p' "$script" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) say "unknown argument: $1"; usage >&2; exit 2 ;;
    esac
done
[ ${#variants[@]} -gt 0 ] || variants=(kill cloud diskfull many flood)
bin=$build/bin
for b in otpca-token otpca-cloud otpca-manager otpca-bench-window; do
    [ -x "$bin/$b" ] || { say "$bin/$b is missing: build first (cmake --build $build)"; exit 1; }
done
command -v sqlite3 >/dev/null || { say "sqlite3 is needed"; exit 1; }

# ---- the parent: each variant in a child of its own, under a time limit ----
if [ -z "$one" ]; then
    declare -A limit=([kill]=600 [cloud]=300 [diskfull]=300 [many]=600 [flood]=300)
    child=
    trap '[ -n "$child" ] && { kill -TERM "$child" 2>/dev/null; wait "$child" 2>/dev/null; }' EXIT
    trap 'say interrupted; exit 130' INT TERM
    results=()
    nfail=0 npass=0
    for v in "${variants[@]}"; do
        say "---- $v"
        args=(--one "$v" --build "$build")
        [ "$small" = 1 ] && args+=(--small)
        [ "$keep" = 1 ] && args+=(--keep)
        timeout --signal=TERM --kill-after=30 "${limit[$v]}" "$script" "${args[@]}" &
        child=$!
        wait "$child"
        rc=$?
        child=
        case $rc in
        0) results+=("$v PASS"); npass=$((npass + 1)) ;;
        77) results+=("$v SKIPPED") ;;
        124) results+=("$v FAIL (ran over its ${limit[$v]} s limit)"); nfail=$((nfail + 1)) ;;
        130) exit 130 ;;
        *) results+=("$v FAIL (exit $rc)"); nfail=$((nfail + 1)) ;;
        esac
    done
    echo "== summary"
    printf '%s\n' "${results[@]}"
    [ "$nfail" -eq 0 ] || exit 1
    [ "$npass" -gt 0 ] || exit 77
    exit 0
fi

# ---- one variant -------------------------------------------------------------
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh" # the window rig (wrig_*)
say() { echo "$prog $one: $*" >&2; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/otpca-faults-$one.XXXXXX")
pids=()
mnt=
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    [ -n "$mnt" ] && mountpoint -q "$mnt" && umount "$mnt"
    if [ "$keep" = 1 ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'say interrupted; exit 130' INT TERM
fail() {
    local f
    say "$*"
    for f in "$tmp"/*.log; do [ -s "$f" ] && { echo "== $f" >&2; tail -5 "$f" >&2; }; done
    echo "$one: FAIL ($*)"
    exit 1
}
nbad=0
# prop OK TEXT: one property's verdict (OK is 1 or 0).
prop() {
    if [ "$1" = 1 ]; then echo "$one: PASS $2"; else echo "$one: FAIL $2"; nbad=$((nbad + 1)); fi
}
verdict() { # verdict SUMMARY: the last line and the exit status
    if [ "$nbad" -eq 0 ]; then echo "$one: PASS ($*)"; exit 0; fi
    echo "$one: FAIL ($nbad properties; $*)"
    exit 1
}
num() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" "$2" | head -1; }
now_step() { echo $(($(date +%s) / 30)); }
alive() { kill -0 "$1" 2>/dev/null; }
t_begin=$(date +%s)

# load NAME PLAN [ARGS...]: otpca-bench-window load of the plan's devices
# against the open window (32 in flight), what the nodes heard appended to
# $tmp/nodes.rec; in the background: $loadpid; its JSON in $tmp/NAME.json.
load() {
    local name=$1 plan=$2
    shift 2
    "$bin/otpca-bench-window" load --endpoint "$endpoint" --devices "$tmp/devices.bin" --plan "$plan" \
        --record "$tmp/nodes.rec" --concurrency 32 "$@" >"$tmp/$name.json" 2>"$tmp/$name.log" &
    loadpid=$!
    pids+=("$loadpid")
}
# wait_for PID SECONDS: wait for a child, at most SECONDS (then SIGKILL);
# its exit status in wait_rc.
wait_for() {
    local i
    for ((i = 0; i < $2 * 20 && $(alive "$1" && echo 1 || echo 0); i++)); do sleep 0.05; done
    alive "$1" && kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    wait_rc=$?
}
# plan_range FIRST COUNT STEP: "INDEX STEP" lines for devices FIRST.. .
plan_range() { awk -v a="$1" -v n="$2" -v s="$3" 'BEGIN { for (i = a; i < a + n; i++) print i, s }'; }

# check_records: what the nodes heard ($tmp/nodes.rec) against the
# manager's journal ($journal) and the cloud's store, with sqlite3; prints
# PASS/FAIL per property. Run after the last window closed.
check_records() {
    local sql=$tmp/check.sql out=$tmp/check.out
    {
        echo "ATTACH '$journal' AS j; ATTACH '$tmp/cloud.db' AS c;"
        echo "CREATE TEMP TABLE got (line INTEGER, serial TEXT, rec BLOB, hash BLOB);"
        echo "CREATE TEMP TABLE conf (line INTEGER, serial TEXT, rec BLOB);"
        echo "BEGIN;"
        awk -v q="'" '$1 == "issued" { print "INSERT INTO got VALUES (" NR "," q $2 q ",X" q $3 q ",X" q $4 q ");" }
            $1 == "confirmed" { print "INSERT INTO conf VALUES (" NR "," q $2 q ",X" q $3 q ");" }' "$tmp/nodes.rec"
        echo "COMMIT;"
        cat <<'SQL'
CREATE INDEX temp.got_rec ON got(rec);
SELECT 'received', count(*) FROM got;
SELECT 'received_devices', count(DISTINCT serial) FROM got;
SELECT 'confirmed_devices', count(DISTINCT serial) FROM conf;
SELECT 'not_journaled', count(*) FROM got g
 WHERE (SELECT count(*) FROM j.records r WHERE r.id = g.rec AND r.kind = 1 AND r.cert_hash = g.hash) != 1;
SELECT 'not_at_cloud_once', count(*) FROM got g
 WHERE (SELECT count(*) FROM c.records r JOIN j.records m ON m.id = r.id
         WHERE r.id = g.rec AND r.kind = 1 AND r.cert = m.cert) != 1;
SELECT 'journal_records', count(*) FROM j.records;
SELECT 'cloud_records', count(*) FROM c.records WHERE manager = 'mgr-01';
SELECT 'journal_not_at_cloud', count(*) FROM j.records m WHERE NOT EXISTS (SELECT 1 FROM c.records r WHERE r.id = m.id);
SELECT 'pending', count(*) FROM j.records WHERE uploaded = 0;
SELECT 'cloud_cert_twice', count(*) FROM
 (SELECT cert FROM c.records WHERE kind = 1 AND cert IS NOT NULL GROUP BY cert HAVING count(*) > 1);
SELECT 'cloud_enrolled', count(*) FROM c.devices WHERE state = 2;
SELECT 'cloud_enrolled_no_confirm', count(*) FROM c.devices d
 WHERE d.state = 2 AND NOT EXISTS (SELECT 1 FROM c.records r WHERE r.serial = d.serial AND r.kind = 2);
SELECT 'journal_enrolled_no_confirm', count(*) FROM j.devices d
 WHERE d.state = 2 AND d.enrolled_here = 1
   AND NOT EXISTS (SELECT 1 FROM j.records r WHERE r.serial = d.serial AND r.kind = 2);
SELECT 'acked_not_enrolled', count(*) FROM
 (SELECT k.serial, g.hash FROM conf k JOIN got g ON g.rec = k.rec
   WHERE k.line = (SELECT max(line) FROM conf WHERE serial = k.serial)) a
 LEFT JOIN c.devices d ON d.serial = a.serial
 WHERE d.state IS NOT 2 OR d.cert_hash IS NOT a.hash;
SELECT 'locked', (SELECT count(*) FROM c.devices WHERE state = 4) + (SELECT count(*) FROM j.devices WHERE state = 4);
SELECT 'flagged', count(*) FROM c.records WHERE flagged = 1;
SQL
    } >"$sql"
    sqlite3 -batch -bail -separator ' ' <"$sql" >"$out" 2>"$tmp/check.log" || fail "the sqlite3 check failed: $(cat "$tmp/check.log")"
    q() { awk -v k="$1" '$1 == k { print $2 }' "$out"; }
    got=$(q received); jr=$(q journal_records); cr=$(q cloud_records)
    prop "$([ "$(q not_journaled)" = 0 ] && echo 1 || echo 0)" \
        "every certificate a node received is in the journal ($got received by $(q received_devices) devices; $(q not_journaled) missing)"
    prop "$([ "$(q not_at_cloud_once)" = 0 ] && echo 1 || echo 0)" \
        "every certificate a node received is at the cloud exactly once, the journal's bytes ($(q not_at_cloud_once) not)"
    prop "$([ "$jr" = "$cr" ] && [ "$(q journal_not_at_cloud)" = 0 ] && [ "$(q pending)" = 0 ] && echo 1 || echo 0)" \
        "every journaled record reached the cloud ($jr journaled, $cr at the cloud, $(q journal_not_at_cloud) missing, $(q pending) pending)"
    prop "$([ "$(q cloud_cert_twice)" = 0 ] && echo 1 || echo 0)" \
        "no certificate at the cloud twice ($(q cloud_cert_twice) twice; $(q flagged) records flagged as double enrollment)"
    prop "$([ "$(q cloud_enrolled_no_confirm)" = 0 ] && [ "$(q journal_enrolled_no_confirm)" = 0 ] && echo 1 || echo 0)" \
        "no device enrolled without its confirm ($(q cloud_enrolled) enrolled at the cloud; without a CONFIRMED record: $(q cloud_enrolled_no_confirm) at the cloud, $(q journal_enrolled_no_confirm) in the journal)"
    prop "$([ "$(q acked_not_enrolled)" = 0 ] && echo 1 || echo 0)" \
        "every node that got a ConfirmAck is enrolled at the cloud with the certificate it confirmed ($(q confirmed_devices) devices; $(q acked_not_enrolled) not)"
    confirmed_devices=$(q confirmed_devices)
    locked=$(q locked)
}

# The common start: rig with N devices, cloud, manager configuration.
setup() {
    say "rig, $1 devices, cloud, ceremony ..."
    wrig_setup "$1"
    wrig_cloud_start
    journal=${2:-$tmp/manager.db}
    wrig_manager_conf "$journal"
    : >"$tmp/nodes.rec"
}
# open_next N: window N, as otpca-op-01 (token) the first time, then as the
# next software operator with a step the cloud has not taken (waits for
# the next step when all are used, 35 s at most).
open_next() {
    local i
    if [ "$1" = 1 ]; then wrig_open 1; return; fi
    for ((i = 0; i < 36; i++)); do
        wrig_op_code && break
        sleep 1
    done
    [ -n "${op_code:-}" ] || fail "no operator code"
    wrig_open "$1" "$op_id" "$op_code"
    op_code=
}

# ---- kill: SIGKILL at random moments, restart each time ---------------------
# A device may use each TOTP step once: a node whose request was lost in a
# kill (perhaps journaled, perhaps not) tries again at a newer step, so a
# device has three tries per 30 s (now - 1, now, now + 1) and the rounds
# wait for the next step when every device left has used them up.
variant_kill() {
    local n=2000 kills=8 round=0 killed=0 k state=$tmp/state plan now lo delay rem mark
    [ "$small" = 1 ] && { n=300; kills=3; }
    setup "$n"
    wrig_operators 8
    # state: "INDEX LAST-STEP CONFIRMED PREVIOUS-LAST-STEP" per device
    awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) print i, 0, 0, 0 }' >"$state"
    local t_end=$(($(date +%s) + 420))
    while [ "$(date +%s)" -lt "$t_end" ]; do
        # the plan: every device not confirmed yet, at a step newer than
        # its last try, now - 1 (early in a step) .. now + 1
        now=$(now_step)
        lo=$now
        [ $(($(date +%s) % 30)) -lt 20 ] && lo=$((now - 1))
        plan=$tmp/plan-$((round + 1))
        : >"$plan"
        awk -v lo="$lo" -v hi=$((now + 1)) -v plan="$plan" '{
                s = ($2 + 1 > lo) ? $2 + 1 : lo
                if ($3 == 0 && s <= hi) { print $1, s > plan; $4 = $2; $2 = s }
                print
            }' "$state" >"$state.new" && mv "$state.new" "$state"
        rem=$(awk '$3 == 0' "$state" | wc -l)
        [ "$rem" -gt 0 ] || break
        if [ ! -s "$plan" ]; then
            say "the $rem devices left have used this TOTP step and the next: waiting for the next step"
            sleep $((31 - $(date +%s) % 30))
            continue
        fi
        round=$((round + 1))
        if [ "$round" -gt 1 ] && alive "$mpid"; then # a round without a kill leaves its window open
            wrig_close
            [ "$close_rc" = 0 ] || fail "window $((round - 1)) exited with status $close_rc"
        fi
        open_next "$round"
        mark=$(wc -l <"$tmp/nodes.rec")
        load "load-$round" "$plan" --timeout 1500
        if [ "$killed" -lt "$kills" ]; then
            # once a random share (up to 40 %) of this round's plan has been
            # heard from: mid-load whatever the manager's speed (a random
            # moment in time came after the end of a round once the window
            # got faster, and a kill was missed)
            local planned want t0 i
            planned=$(wc -l <"$plan")
            want=$((mark + 1 + RANDOM % (planned * 40 / 100 + 1)))
            t0=$(date +%s%3N)
            for ((i = 0; i < 2000; i++)); do # 10 s at most
                [ "$(wc -l <"$tmp/nodes.rec")" -ge "$want" ] && break
                alive "$loadpid" || break
                sleep 0.005
            done
            delay=$(($(date +%s%3N) - t0))
            if alive "$mpid"; then
                kill -KILL "$mpid"
                wait "$mpid" 2>/dev/null
                killed=$((killed + 1))
                say "window $round: manager killed after $delay ms ($(grep -c '^issued' "$tmp/nodes.rec") certificates received so far)"
            fi
            wait_for "$loadpid" 60
        else
            wait_for "$loadpid" 120
        fi
        # confirmed devices, from what the nodes heard; a planned device
        # whose node heard nothing and lost nothing was never sent: its step
        # is still free
        awk -v mark="$mark" 'NR == FNR { if ($1 == "confirmed") c[$2] = 1; if (FNR > mark) seen[$2] = 1; next }
             { d = sprintf("bench-%07d", $1 + 1)
               if (c[d]) $3 = 1
               else if (!seen[d] && $2 != $4) $2 = $4
               print }' "$tmp/nodes.rec" "$state" >"$state.new" && mv "$state.new" "$state"
        k=$(awk '$3 == 1' "$state" | wc -l)
        say "window $round: $k of $n devices confirmed"
        [ "$k" -lt "$n" ] || break
    done
    # the last window uploads what the killed ones left
    if ! alive "$mpid"; then
        round=$((round + 1))
        open_next "$round"
    fi
    wrig_close
    prop "$([ "$close_rc" = 0 ] && grep -q ' 0 pending' "$tmp/manager-$round.out" && echo 1 || echo 0)" \
        "the last window closed cleanly with nothing pending (exit $close_rc: $(grep -m1 '^window closed' "$tmp/manager-$round.out"))"
    check_records
    prop "$([ "$confirmed_devices" = "$n" ] && echo 1 || echo 0)" \
        "every device enrolled in the end ($confirmed_devices of $n, $round windows)"
    prop "$([ "$killed" -eq "$kills" ] && echo 1 || echo 0)" "the manager was killed $killed times of $kills"
    prop "$(alive "$cloudpid" && echo 1 || echo 0)" "the cloud is alive"
    verdict "$killed kills, $round windows, $n devices, $(grep -c '^issued' "$tmp/nodes.rec") certificates received," \
        "$(grep -c '^lost' "$tmp/nodes.rec") requests lost in kills, $(grep -c '^refused' "$tmp/nodes.rec") refused," \
        "$(($(date +%s) - t_begin)) s"
}

# ---- cloud: stopped and started again during a window ---------------------
variant_cloud() {
    local n=1500 a=600 b=500 c=400 step
    [ "$small" = 1 ] && { n=300; a=120; b=100; c=80; }
    setup "$n"
    open_next 1
    step=$(now_step)
    step=$((step + 1)) # valid for at least 30 s from now
    plan_range 0 "$a" "$step" >"$tmp/plan-1"
    plan_range "$a" "$b" "$step" >"$tmp/plan-2"
    plan_range $((a + b)) "$c" "$step" >"$tmp/plan-3"
    load load-1 "$tmp/plan-1"
    # killed once a third of them came back (20 s at most)
    local i got=0
    for ((i = 0; i < 400 && got < a / 3; i++)); do
        alive "$loadpid" || break
        sleep 0.05
        got=$(grep -c '^confirmed' "$tmp/nodes.rec")
    done
    kill -KILL "$cloudpid"
    wait "$cloudpid" 2>/dev/null
    say "cloud killed after $got of the first $a enrollments"
    wait_for "$loadpid" 120
    local rc1=$wait_rc
    load load-2 "$tmp/plan-2"
    wait_for "$loadpid" 120
    local rc2=$wait_rc
    local pend
    pend=$(sqlite3 "$journal" 'SELECT count(*) FROM records WHERE uploaded = 0' 2>/dev/null)
    say "$b enrolled with the cloud down; $pend records pending in the journal"
    wrig_cloud_start # the same ports
    say "cloud started again"
    load load-3 "$tmp/plan-3"
    wait_for "$loadpid" 120
    local rc3=$wait_rc
    local e1 e2 e3
    e1=$(num enrolled "$tmp/load-1.json"); e2=$(num enrolled "$tmp/load-2.json"); e3=$(num enrolled "$tmp/load-3.json")
    prop "$([ "$rc1$rc2$rc3" = 000 ] && [ "${e1:-0}" = "$a" ] && [ "${e2:-0}" = "$b" ] && [ "${e3:-0}" = "$c" ] &&
        echo 1 || echo 0)" \
        "every enrollment completed: ${e1:-0}/$a while the cloud was killed (after $got), ${e2:-0}/$b with it down, ${e3:-0}/$c after"
    prop "$([ "${pend:-0}" -gt 0 ] && echo 1 || echo 0)" "records waited in the journal while the cloud was down ($pend pending)"
    wrig_close
    prop "$([ "$close_rc" = 0 ] && grep -q ' 0 pending' "$tmp/manager-1.out" && echo 1 || echo 0)" \
        "the window closed cleanly with nothing pending (exit $close_rc: $(grep -m1 '^window closed' "$tmp/manager-1.out"))"
    check_records
    prop "$(alive "$cloudpid" && echo 1 || echo 0)" "the restarted cloud is alive"
    verdict "$n devices, $(($(date +%s) - t_begin)) s"
}

# ---- diskfull: the journal's file system fills up ------------------------
variant_diskfull() {
    local n=1200 first=200 then=800 after=200 step free_kib
    [ "$small" = 1 ] && { n=600; first=100; then=300; after=100; }
    if [ "$(id -u)" != 0 ]; then
        echo "diskfull: SKIPPED (needs root to mount a tmpfs)"
        exit 77
    fi
    mnt=$tmp/mnt
    mkdir -p "$mnt"
    if ! mount -t tmpfs -o size=32m,mode=0700 otpca-faults "$mnt" 2>"$tmp/mount.log"; then
        mnt=
        echo "diskfull: SKIPPED (mount -t tmpfs failed: $(cat "$tmp/mount.log"))"
        exit 77
    fi
    setup "$n" "$mnt/manager.db"
    open_next 1
    step=$(($(now_step) + 1))
    plan_range 0 "$first" "$step" >"$tmp/plan-1"
    plan_range "$first" "$then" "$step" >"$tmp/plan-2"
    plan_range $((first + then)) "$after" "$step" >"$tmp/plan-3"
    load load-1 "$tmp/plan-1"
    wait_for "$loadpid" 120
    local e1
    e1=$(num enrolled "$tmp/load-1.json")
    # fill the file system, then give back 128 KiB: room for a few groups
    dd if=/dev/zero of="$mnt/filler" bs=64k 2>/dev/null
    truncate -s -128K "$mnt/filler"
    free_kib=$(df -k --output=avail "$mnt" | tail -1 | tr -d ' ')
    say "${e1:-0} enrolled; file system filled, $free_kib KiB left"
    local lines0
    lines0=$(wc -l <"$tmp/nodes.rec")
    load load-2 "$tmp/plan-2" --timeout 5000
    wait_for "$loadpid" 180
    local e2 f2
    e2=$(num enrolled "$tmp/load-2.json"); f2=$(num failed "$tmp/load-2.json")
    local errs
    errs=$(grep -c 'journal: a group of .* not written' "$tmp/manager-1.log")
    prop "$([ "${f2:-0}" -gt 0 ] && [ "${e2:-0}" -lt "$then" ] && echo 1 || echo 0)" \
        "issuance stops when the journal's file system is full (${e2:-0} of $then enrolled, ${f2:-0} failed)"
    prop "$([ "$errs" -gt 0 ] && grep -q 'disk is full' "$tmp/manager-1.log" && echo 1 || echo 0)" \
        "a clear error in the manager's log ($errs groups not written; $(grep -c 'disk is full' "$tmp/manager-1.log") lines say: $(grep -m1 'disk is full' "$tmp/manager-1.log" | cut -c26-120))"
    prop "$(alive "$mpid" && echo 1 || echo 0)" "the window is still up"
    local recv_full
    recv_full=$(tail -n +"$((lines0 + 1))" "$tmp/nodes.rec" | grep -c '^issued')
    # space back: issuance goes on
    rm -f "$mnt/filler"
    load load-3 "$tmp/plan-3"
    wait_for "$loadpid" 120
    local e3
    e3=$(num enrolled "$tmp/load-3.json")
    prop "$([ "${e3:-0}" = "$after" ] && echo 1 || echo 0)" "issuance resumes once space is freed (${e3:-0} of $after enrolled)"
    wrig_close
    prop "$([ "$close_rc" = 0 ] && echo 1 || echo 0)" "the window closed cleanly (exit $close_rc: $(grep -m1 '^window closed' "$tmp/manager-1.out"))"
    say "checking: $recv_full certificates were received while the disk was full"
    check_records
    verdict "$n devices, ${e1:-0} + ${e2:-0} + ${e3:-0} enrolled, $(($(date +%s) - t_begin)) s"
}

# ---- many: 10,000 nodes at once ----------------------------------------------
variant_many() {
    local n=10000 per=250 procs p i step port peak=0 c t0 total=0 failed=0 bad=0 secs
    [ "$small" = 1 ] && { n=1000; per=250; }
    procs=$(((n + per - 1) / per))
    ulimit -n "$(ulimit -Hn)" 2>/dev/null
    [ "$(ulimit -n)" -ge $((n + 1000)) ] || fail "open files limit $(ulimit -n) is below $((n + 1000))"
    setup "$n"
    open_next 1
    port=${endpoint##*:}
    # requests for the next step, signed early in the current one: valid for
    # 55 s at least
    for ((i = 0; i < 30 && $(date +%s) % 30 > 4; i++)); do sleep 1; done
    step=$(($(now_step) + 1))
    local lp=()
    t0=$(date +%s%3N)
    for ((p = 0; p < procs; p++)); do
        plan_range $((p * per)) $((n - p * per < per ? n - p * per : per)) "$step" >"$tmp/plan-$p"
        "$bin/otpca-bench-window" load --endpoint "$endpoint" --devices "$tmp/devices.bin" --plan "$tmp/plan-$p" \
            --record "$tmp/nodes-$p.rec" --concurrency "$per" --timeout 60000 >"$tmp/load-$p.json" 2>"$tmp/load-$p.log" &
        lp+=($!)
        pids+=($!)
    done
    # bounded: 240 s; the peak of established connections on the port meanwhile
    for ((i = 0; i < 1200; i++)); do
        c=$(ss -Htn state established "( sport = :$port )" 2>/dev/null | wc -l)
        [ "$c" -gt "$peak" ] && peak=$c
        local running=0
        for p in "${lp[@]}"; do alive "$p" && running=1 && break; done
        [ "$running" = 0 ] && break
        sleep 0.2
    done
    secs=$((($(date +%s%3N) - t0) / 1000))
    for p in "${lp[@]}"; do
        wait_for "$p" 1
        [ "$wait_rc" = 0 ] || bad=$((bad + 1))
    done
    for ((p = 0; p < procs; p++)); do
        total=$((total + $(num enrolled "$tmp/load-$p.json" || echo 0)))
        failed=$((failed + $(num failed "$tmp/load-$p.json" || echo 0)))
    done
    cat "$tmp"/nodes-*.rec >"$tmp/nodes.rec"
    prop "$([ "$total" = "$n" ] && [ "$failed" = 0 ] && [ "$bad" = 0 ] && echo 1 || echo 0)" \
        "all $n nodes enrolled ($total enrolled, $failed failed, $bad of $procs clients exited non-zero, ${secs} s)"
    if [ "$small" = 1 ]; then # 1,000 enroll within a second or so: faster than ss is sampled here
        echo "$one: info peak of established connections on the node port: $peak of $n (not checked with --small)"
    else
        prop "$([ "$peak" -ge "$n" ] && echo 1 || echo 0)" \
            "$n connections at once (peak of established connections on the node port: $peak)"
    fi
    prop "$(alive "$mpid" && echo 1 || echo 0)" "the manager is alive (VmHWM $(($(wrig_vmhwm "$mpid") / 1024)) MiB)"
    wrig_close
    prop "$([ "$close_rc" = 0 ] && grep -q " $n issued, $n confirmed" "$tmp/manager-1.out" && echo 1 || echo 0)" \
        "the window closed cleanly with all confirmed (exit $close_rc: $(grep -m1 '^window closed' "$tmp/manager-1.out"))"
    check_records
    verdict "$n nodes, $procs clients of $per connections, $(($(date +%s) - t_begin)) s"
}

# ---- flood: malformed and unauthenticated messages at both daemons --------
variant_flood() {
    local n=1000 step b fm=0 fc=0 fn=0 sent_m=0 ans_m=0 tcp_m=0 sent_c=0 e f
    [ "$small" = 1 ] && n=300
    setup "$n"
    open_next 1
    step=$(($(now_step) + 1))
    plan_range 0 "$n" "$step" >"$tmp/plan-1"
    # the floods: bounded batches until the load is done
    (for ((b = 0; b < 40; b++)); do
        "$bin/otpca-bench-window" flood --endpoint "$endpoint" --devices "$tmp/devices.bin" --count 4000 \
            >>"$tmp/flood-manager.jsonl" 2>>"$tmp/flood-manager.log" || exit 1
        [ -e "$tmp/load.done" ] && break
    done) &
    local fmp=$!
    pids+=("$fmp")
    (for ((b = 0; b < 40; b++)); do
        "$bin/otpca-bench-window" flood --endpoint "$listen" --server-key "$curve" --count 400 \
            >>"$tmp/flood-cloud.jsonl" 2>>"$tmp/flood-cloud.log" || exit 1
        "$bin/otpca-bench-window" flood --endpoint "$notices" --server-key "$curve" --count 200 \
            >>"$tmp/flood-notices.jsonl" 2>>"$tmp/flood-notices.log" || exit 1
        [ -e "$tmp/load.done" ] && break
    done) &
    local fcp=$!
    pids+=("$fcp")
    sleep 0.5 # the floods first
    load load-1 "$tmp/plan-1" --timeout 20000
    wait_for "$loadpid" 240
    local lrc=$wait_rc
    touch "$tmp/load.done"
    wait_for "$fmp" 120
    local frc1=$wait_rc
    wait_for "$fcp" 120
    local frc2=$wait_rc
    e=$(num enrolled "$tmp/load-1.json"); f=$(num failed "$tmp/load-1.json")
    sum() { awk -v k="\"$1\":" '{ i = index($0, k); if (i) s += substr($0, i + length(k)) + 0 } END { print s + 0 }' "$2"; }
    sent_m=$(sum sent "$tmp/flood-manager.jsonl"); ans_m=$(sum answers "$tmp/flood-manager.jsonl")
    tcp_m=$(sum tcp_connections "$tmp/flood-manager.jsonl")
    sent_c=$(sum sent "$tmp/flood-cloud.jsonl"); fc=$(sum tcp_connections "$tmp/flood-cloud.jsonl")
    fn=$(($(sum sent "$tmp/flood-notices.jsonl") + $(sum tcp_connections "$tmp/flood-notices.jsonl")))
    fm=$(grep -c '' "$tmp/flood-manager.jsonl")
    prop "$([ "$frc1" = 0 ] && [ "$frc2" = 0 ] && echo 1 || echo 0)" \
        "the floods ran: manager $fm rounds, $sent_m messages sent, $ans_m answered, $tcp_m raw TCP connections; cloud $sent_c unauthenticated messages and $fc raw TCP connections, notices $fn"
    prop "$([ "$lrc" = 0 ] && [ "${e:-0}" = "$n" ] && [ "${f:-1}" = 0 ] && echo 1 || echo 0)" \
        "every legitimate enrollment completed during the flood (${e:-0} of $n, ${f:-?} failed; $(num per_second "$tmp/load-1.json")/s)"
    prop "$(alive "$mpid" && alive "$cloudpid" && echo 1 || echo 0)" "both daemons alive after the flood"
    local rej
    rej=$(grep -c 'rejected' "$tmp/manager-1.log")
    wrig_close
    prop "$([ "$close_rc" = 0 ] && grep -q " $n confirmed" "$tmp/manager-1.out" && echo 1 || echo 0)" \
        "the window closed cleanly (exit $close_rc: $(grep -m1 '^window closed' "$tmp/manager-1.out"); $rej rejections logged)"
    check_records
    prop "$([ "$locked" = 0 ] && echo 1 || echo 0)" "no device locked by the flood ($locked locked)"
    wrig_cloud_stop
    prop "$([ "$cloud_rc" = 0 ] && echo 1 || echo 0)" "the cloud stops cleanly (exit $cloud_rc)"
    verdict "$n devices, $(($(date +%s) - t_begin)) s"
}

"variant_$one"
