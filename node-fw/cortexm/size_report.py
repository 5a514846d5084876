#!/usr/bin/env python3
"""The size report of node-fw/cortexm/size.sh, as Markdown on stdout.

From the linked image (arm-none-eabi-size, -nm), its link map (every input
section kept after --gc-sections, with the object it came from: the
per-component split) and the -fcallgraph-info=su files of the objects
(static frame of every function and the calls between them: the worst-case
stack of the core's entry points).
"""
import argparse
import bisect
import glob
import os
import re
import subprocess
import sys

GROUPS = [  # (key, title, object directory under --obj)
    ("core", "node core (node-fw/src)", "core"),
    ("proto", "libotpca-proto (proto/src)", "proto"),
    ("libcbor", "libcbor (encoder + streaming decoder)", "libcbor"),
    ("wolfcrypt", "wolfCrypt", "wolfcrypt"),
    ("fw", "firmware stand-in (fw_main.c, secmem_fw.c)", "fw"),
    ("libc", "newlib-nano libc (memcpy, memset, ...)", None),
    ("libgcc", "libgcc (64-bit division, ...)", None),
]
TITLE = {k: t for k, t, _ in GROUPS}
ENTRY_POINTS = [
    "otpca_node_init", "otpca_node_start", "otpca_node_handle_input", "otpca_node_step",
    "otpca_node_output_buf", "otpca_node_output_ack",
    "otpca_node_slots_init", "otpca_node_slots_load", "otpca_node_slots_load_previous",
    "otpca_node_slots_commit", "otpca_node_slots_wipe",
]


def run(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def group_of(path, objdir):
    path = os.path.normpath(path)
    for key, _, sub in GROUPS:
        if sub and path.startswith(os.path.normpath(os.path.join(objdir, sub)) + os.sep):
            return key
    if "libgcc" in path:
        return "libgcc"
    if "libc" in path or "libg" in path:
        return "libc"
    return "other"


def kind_of(section, out_section):
    if out_section == ".bss" or section.startswith(".bss") or section == "COMMON":
        return "bss"
    if out_section == ".data" or section.startswith(".data"):
        return "data"
    if section.startswith(".rodata"):
        return "rodata"
    return "text"  # .text*, vector table, exception index


def parse_map(path, objdir):
    """Input sections of the image: (address, size, section, group, kind)."""
    items = []
    with open(path) as f:
        lines = f.read().split("\n")
    try:
        start = lines.index("Linker script and memory map")
    except ValueError:
        sys.exit("size_report: no memory map in " + path)
    out_section = None
    pending = None
    one = re.compile(r"^ (\S+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")
    cont = re.compile(r"^\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")
    for line in lines[start + 1:]:
        if line.startswith("OUTPUT(") or line.startswith("Cross Reference Table"):
            break
        m = re.match(r"^(\.\S+|/DISCARD/)", line)
        if m:
            out_section = m.group(1)
            pending = None
            continue
        if out_section not in (".isr_vector", ".text", ".ARM.extab", ".ARM.exidx", ".data", ".bss"):
            continue
        if pending is not None:
            m = cont.match(line)
            if m:
                addr, size, obj = int(m.group(1), 16), int(m.group(2), 16), m.group(3)
                if size:
                    items.append((addr, size, pending, group_of(obj, objdir), kind_of(pending, out_section)))
            pending = None
            continue
        m = one.match(line)
        if m:
            sec, addr, size, obj = m.group(1), int(m.group(2), 16), int(m.group(3), 16), m.group(4)
            if size:
                grp = "fill" if sec == "*fill*" else group_of(obj, objdir)
                items.append((addr, size, sec, grp, kind_of(sec, out_section)))
            continue
        m = re.match(r"^ (\.\S+|COMMON)$", line)
        if m:
            pending = m.group(1)
        elif line.startswith(" *fill*"):
            m2 = re.match(r"^ \*fill\*\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)", line)
            if m2 and int(m2.group(2), 16):
                items.append((int(m2.group(1), 16), int(m2.group(2), 16), "*fill*", "fill",
                              "bss" if out_section == ".bss" else "data" if out_section == ".data" else "text"))
    return items


def fmt(n):
    return f"{n:,}"


# ---- stack -----------------------------------------------------------------

def parse_ci(objdir):
    """Static frame of every function (-fstack-usage), the calls between
    them, and the source file each was defined in (the graph's title)."""
    frames, edges, dynamic, where = {}, {}, set(), {}
    node = re.compile(r'^node: \{ title: "([^"]+)" label: "([^"]*)"')
    edge = re.compile(r'^edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"')
    for ci in glob.glob(os.path.join(objdir, "*", "*.ci")):
        src = ""
        with open(ci) as f:
            for line in f:
                m = re.match(r'^graph: \{ title: "([^"]+)"', line)
                if m:
                    src = m.group(1)
                    continue
                m = node.match(line)
                if m:
                    fr = re.search(r"\\n(\d+) bytes \(([^)]*)\)", m.group(2))
                    if fr:
                        frames[m.group(1)] = int(fr.group(1))
                        where[m.group(1)] = src
                        if "dynamic" in fr.group(2):
                            dynamic.add(m.group(1))
                    continue
                m = edge.match(line)
                if m:
                    edges.setdefault(m.group(1), set()).add(m.group(2))
    return frames, edges, dynamic, where


def indirect_targets(frames, where):
    """What an indirect call can reach in this image, by the caller's file:
    libcbor's decoder calls proto's CBOR callbacks (cbor_codec.c cb_*);
    cbor_codec.c's put_head its head_* encoders; the rest of proto its
    signer/ECDH callbacks, which are the core's key_sign/key_ecdh; the core
    and the firmware call the HAL (fw_main.c's hal_* stand-ins: a real
    token or flash driver adds its own frames)."""
    def pick(file_part, prefix):
        return [n for n in frames if file_part in where.get(n, "")
                and n.rsplit(":", 1)[-1].split(".")[0].startswith(prefix)]
    hal = pick("fw_main.c", "hal_")
    table = {
        "libcbor": pick("cbor_codec.c", "cb_"),
        "cbor_codec": pick("cbor_codec.c", "head_"),
        "proto": pick("node.c", "key_"),
    }

    def targets(caller):
        f = where.get(caller, "")
        if "/proto/src/cbor_codec.c" in f:
            return table["cbor_codec"]
        if "/proto/src/" in f:
            return table["proto"]
        if "/node-fw/" in f:
            return hal
        if "streaming.c" in f or "cbor_standin.c" in f:
            return table["libcbor"]
        return []
    return targets


def worst(fn, frames, edges, ind, path, memo, unknown, cut=frozenset()):
    """Worst-case stack (bytes) from fn down, and the chain that needs it.
    cut: (caller, callee) edges left out."""
    if fn in memo:
        return memo[fn]
    if fn in path:
        return 0, []  # a cycle: counted once
    path.add(fn)
    best, best_path = 0, []
    for callee in sorted(edges.get(fn, ())):
        if (fn, callee) in cut:
            continue
        targets = sorted(ind(fn)) if callee == "__indirect_call" else [callee]
        for t in targets:
            if t not in frames:
                unknown.add(t)
                continue
            d, p = worst(t, frames, edges, ind, path, memo, unknown, cut)
            if d > best:
                best, best_path = d, p
    path.discard(fn)
    res = (frames.get(fn, 0) + best, [fn] + best_path)
    memo[fn] = res
    return res


def short(name):
    if ":" in name:
        f, n = name.rsplit(":", 1)
        return f"{os.path.basename(f)}:{n}"
    return name


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--elf", required=True)
    ap.add_argument("--map", required=True)
    ap.add_argument("--obj", required=True)
    ap.add_argument("--cbor-note", default="")
    ap.add_argument("--config", default="")
    a = ap.parse_args()

    items = parse_map(a.map, a.obj)
    sums = {}
    for _, size, _, grp, kind in items:
        sums.setdefault(grp, {"text": 0, "rodata": 0, "data": 0, "bss": 0})[kind] += size

    berkeley = run("arm-none-eabi-size", a.elf).split("\n")[1].split()
    text, data, bss = (int(x) for x in berkeley[:3])

    # Objects before --gc-sections, per component.
    pre = {}
    for key, _, sub in GROUPS:
        if not sub:
            continue
        objs = sorted(glob.glob(os.path.join(a.obj, sub, "*.o")))
        if not objs:
            continue
        t = d = b = 0
        rows = []
        for line in run("arm-none-eabi-size", *objs).split("\n")[1:]:
            f = line.split()
            if len(f) >= 6:
                t, d, b = t + int(f[0]), d + int(f[1]), b + int(f[2])
                rows.append((os.path.basename(f[5]), int(f[0]), int(f[1]), int(f[2])))
        pre[key] = (t, d, b, rows)

    # Symbols of the image, largest first, with their component.
    starts = sorted((addr, size, grp) for addr, size, _, grp, _ in items)
    keys = [s[0] for s in starts]

    def grp_at(addr):
        i = bisect.bisect_right(keys, addr) - 1
        if i >= 0 and starts[i][0] <= addr < starts[i][0] + starts[i][1]:
            return starts[i][2]
        return "?"

    syms = []
    for line in run("arm-none-eabi-nm", "--size-sort", "-S", "-r", a.elf).split("\n"):
        f = line.split()
        if len(f) == 4:
            addr, size = int(f[0], 16) & ~1, int(f[1], 16)
            syms.append((size, f[2], f[3], grp_at(addr)))
    all_syms = set(l.split()[-1] for l in run("arm-none-eabi-nm", a.elf).split("\n") if l.strip())
    heap = sorted(s for s in ("malloc", "free", "calloc", "realloc", "_malloc_r", "_free_r", "_sbrk", "_sbrk_r")
                  if s in all_syms)

    p = print
    p("## Cortex-M4 size of the node core (node-fw/cortexm/size.sh)")
    p()
    p(f"Build: {a.config}; `-Os -ffunction-sections -fdata-sections`, linked with `--gc-sections`.")
    if a.cbor_note:
        p(f"libcbor: {a.cbor_note}.")
    p()
    p("### Image (arm-none-eabi-size)")
    p()
    p("| text | data | bss | flash (text + data) | static RAM (data + bss) |")
    p("|---:|---:|---:|---:|---:|")
    p(f"| {fmt(text)} | {fmt(data)} | {fmt(bss)} | {fmt(text + data)} | {fmt(data + bss)} |")
    p()
    p("### Per component, in the image (from the link map)")
    p()
    p("| component | code | rodata | data | bss | flash |")
    p("|---|---:|---:|---:|---:|---:|")
    order = [k for k, _, _ in GROUPS] + ["fill", "other"]
    tot = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
    for k in order:
        if k not in sums:
            continue
        s = sums[k]
        for x in tot:
            tot[x] += s[x]
        p(f"| {TITLE.get(k, k)} | {fmt(s['text'])} | {fmt(s['rodata'])} | {fmt(s['data'])} | {fmt(s['bss'])} | "
          f"{fmt(s['text'] + s['rodata'] + s['data'])} |")
    p(f"| **total** | {fmt(tot['text'])} | {fmt(tot['rodata'])} | {fmt(tot['data'])} | {fmt(tot['bss'])} | "
      f"{fmt(tot['text'] + tot['rodata'] + tot['data'])} |")
    lib = ("core", "proto", "libcbor", "wolfcrypt", "libc", "libgcc")
    lf = sum(sums.get(k, {}).get(x, 0) for k in lib for x in ("text", "rodata", "data"))
    lr = sum(sums.get(k, {}).get(x, 0) for k in lib for x in ("data", "bss"))
    p()
    p(f"Core + proto + libcbor + wolfCrypt + libc/libgcc: **{fmt(lf)} bytes of flash** "
      f"({lf / 1024:.1f} KiB), **{fmt(lr)} bytes of their own static RAM**.")
    p()
    p("Static RAM the firmware gives the core (fw_main.c; the API's buffers):")
    p()
    p("| object | bytes |")
    p("|---|---:|")
    fw_ram = 0
    for size, typ, name, grp in syms:
        if grp == "fw" and typ.lower() in ("b", "d"):
            p(f"| `{name}` | {fmt(size)} |")
            fw_ram += size
    p(f"| **total** | {fmt(fw_ram)} |")
    p()
    p("heap: " + ("**linked: " + ", ".join(heap) + "**" if heap else "no malloc/free/_sbrk in the image"))
    p()
    p("### Objects before --gc-sections (arm-none-eabi-size)")
    p()
    p("| component | object | text | data | bss |")
    p("|---|---|---:|---:|---:|")
    for k, _, sub in GROUPS:
        if k not in pre:
            continue
        t, d, b, rows = pre[k]
        for name, rt, rd, rb in rows:
            p(f"| {k} | {name} | {fmt(rt)} | {fmt(rd)} | {fmt(rb)} |")
        p(f"| {k} | **all** | {fmt(t)} | {fmt(d)} | {fmt(b)} |")
    p()
    p("### Largest symbols in the image (nm --size-sort)")
    p()
    p("| bytes | type | symbol | component |")
    p("|---:|---|---|---|")
    for size, typ, name, grp in syms[:30]:
        p(f"| {fmt(size)} | {typ} | `{name}` | {grp} |")
    p()

    frames, edges, dynamic, where = parse_ci(a.obj)
    ind = indirect_targets(frames, where)
    linked = set(s[2] for s in syms)

    def in_image(n):
        return n.rsplit(":", 1)[-1] in linked

    # wc_ParseCert checks a signature only when given a certificate manager
    # and asked to verify; x509.c passes NO_VERIFY and NULL.
    cut = frozenset([("ParseCertRelative", "wc_ecc_verify_hash")])
    p("### Stack (-fstack-usage / -fcallgraph-info=su)")
    p()
    p("Worst case over the static call graph: the frames of the deepest call chain. Indirect calls are"
      " resolved by caller: the core's to the HAL entries (fw_main.c's stand-ins, a few bytes each; a real"
      " token or flash driver adds its own), proto's to the core's token callbacks, libcbor's to proto's"
      " CBOR callbacks. libc/libgcc leaves (memcpy, __aeabi_uldivmod, ...) are not in the graph and add a"
      " few dozen bytes at most. \"without parse-time verify\" leaves out wc_ParseCert's own signature"
      " check, which x509.c never reaches (NO_VERIFY, no certificate manager).")
    p()
    p("| entry point | static bound | without parse-time verify | its deepest chain (frame bytes) |")
    p("|---|---:|---:|---|")
    unknown = set()
    for e in ENTRY_POINTS + ["main"]:
        if e not in frames:
            p(f"| `{e}` | ? | ? | not in the call graph |")
            continue
        d, _ = worst(e, frames, edges, ind, set(), {}, unknown)
        d2, path = worst(e, frames, edges, ind, set(), {}, unknown, cut)
        chain = " > ".join(f"{short(n).split(':')[-1]} {frames.get(n, 0)}" for n in path if frames.get(n, 0))
        p(f"| `{e}` | {fmt(d)} | {fmt(d2)} | {chain} |")
    dyn = sorted(short(x) for x in dynamic if in_image(x))
    if dyn:
        p()
        p("Functions in the image with dynamic stack (alloca/VLA): " + ", ".join(dyn))
    big = sorted(((v, k) for k, v in frames.items() if in_image(k)), reverse=True)[:12]
    p()
    p("Largest frames in the image: " + ", ".join(f"`{short(k)}` {fmt(v)}" for v, k in big))
    leaf = sorted(u for u in unknown if u != "__indirect_call")
    if leaf:
        p()
        p("Not in the graph (library leaves): " + ", ".join(f"`{u}`" for u in leaf))


if __name__ == "__main__":
    main()
