#!/usr/bin/env python3
"""Static facts about the CUDA kernels, measured without a GPU.

Compiles kernels/*.cu to PTX and then to machine code with nvcc and ptxas (the flags of the build:
-O3 --use_fast_math, for one architecture, sm_90 by default) and prints per kernel:
  - registers, spill stores and loads, stack frame and static shared memory (ptxas -v);
  - the dynamic shared memory the launcher asks for (tools/kernel_probe.cu: the launchers' own
    expressions, built and run on the host);
  - the theoretical occupancy on that architecture: resident blocks per SM, limited by registers,
    shared memory or warps (the CUDA occupancy calculator's rules), and the warps that makes;
  - the memory and math instructions in the PTX: 16-byte asynchronous copies (cp.async), 16-byte
    global loads, other global loads, ldmatrix, tensor-core MMAs, programmatic-dependent-launch
    controls.

--check exits 1 (one line per failure) when a kernel spills registers (beyond SPILL_ALLOWANCE, the
CUDA-core fallbacks' small measured spills), or when a kernel that declares a minimum of resident
blocks per SM (__launch_bounds__'s second argument) does not reach it with the shared memory its
launcher asks for. --json prints the rows as JSON lines instead of the
table. Exit status 2: a usage error or a tool that is missing or failed.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ["kernels/attention_cuda.cu", "kernels/layer_ops_cuda.cu"]
PROBES = [[], ["-DRLKV_PROBE_LAYER_OPS"]]

# Per compute capability: registers per SM, register allocation unit (per warp), warp allocation
# granularity, warps per SM, blocks per SM, shared memory per SM, shared memory reserved per block,
# shared memory allocation unit (the CUDA occupancy calculator's table).
_COMMON = dict(regs=65536, reg_unit=256, warp_gran=4, smem_reserved=1024, smem_unit=128)
LIMITS = {
    "sm_80": dict(_COMMON, warps=64, blocks=32, smem=167936),
    "sm_89": dict(_COMMON, warps=48, blocks=24, smem=102400),
    "sm_90": dict(_COMMON, warps=64, blocks=32, smem=233472),
}

# PTX instruction classes counted per kernel (regular expressions on an instruction's opcode; the
# first that matches counts). Loads are those of the global or the generic address space (a generic
# load of a global pointer is a global load on the GPU); shared, parameter and local loads are not counted.
PTX_CLASSES = [
    ("cp_async_16", re.compile(r"^cp\.async\.cg\.shared\.global")),  # .cg: 16 bytes only
    ("ld_16", re.compile(r"^ld(\.global)?(\.nc)?(\.L[12]::\S+)?\.v4\.[usbf]32$")),
    ("ld_narrower", re.compile(r"^ld(\.global)?(\.nc)?(\.L[12]::\S+)?\.(v2\.)?[usbf]\d+$")),
    ("ldmatrix", re.compile(r"^ldmatrix\.")),
    ("mma", re.compile(r"^(mma|wgmma)\.")),
    ("pdl", re.compile(r"^griddepcontrol\.")),
]

# Kernels allowed to spill, and at most how many bytes (spill stores, ptxas -v with nvcc 13.0 for
# sm_90): the CUDA-core fallbacks, which serve fp32 caches, head_dim 256 and groups above 8 query
# heads (16-bit caches at head_dim 64 / 128 run the tensor-core kernel, which must not spill). A
# kernel not listed must not spill at all; a listed one must not spill more.
SPILL_ALLOWANCE = {"decode_split_kernel": 48, "decode_generic_kernel": 8}

def fail(msg):
    print(f"kernel_report.py: {msg}", file=sys.stderr)
    sys.exit(2)


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-5:]
        fail(f"{os.path.basename(cmd[0])} failed ({r.returncode}): " + " | ".join(tail))
    return r


def demangle(names):
    filt = shutil.which("c++filt")
    if not filt or not names:
        return {n: n for n in names}
    out = subprocess.run([filt], input="\n".join(names), capture_output=True, text=True).stdout.splitlines()
    return dict(zip(names, out)) if len(out) == len(names) else {n: n for n in names}


def short_name(demangled):
    """'void rlkv_cuda::k<float, 64>(args...)' -> ('k', ['float', '64'])."""
    s = re.sub(r"^void\s+", "", demangled)
    depth, cut = 0, len(s)
    for i, c in enumerate(s):  # the parameter list: the first '(' outside template brackets
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        elif c == "(" and depth == 0:
            cut = i
            break
    base, _, targs = s[:cut].partition("<")
    base = base.split("::")[-1]
    args = [a.strip() for a in targs[:-1].split(",")] if targs else []
    return base, args


def parse_ptx(text):
    """Kernel (mangled) -> {maxntid, minnctapersm, counts}."""
    kernels, cur = {}, None
    for line in text.splitlines():
        m = re.match(r"^\.(visible\s+)?\.entry\s+(\S+?)\(?$", line.strip())
        if m:
            counts = {k: 0 for k, _ in PTX_CLASSES}
            cur = kernels.setdefault(m.group(2), dict(maxntid=None, minnctapersm=None, counts=counts))
            continue
        if cur is None:
            continue
        t = line.strip()
        if t.startswith(".maxntid"):
            cur["maxntid"] = int(t.split()[1].rstrip(","))
        elif t.startswith(".minnctapersm"):
            cur["minnctapersm"] = int(t.split()[1])
        else:
            op = t.split(None, 1)[0] if t else ""
            if op.startswith("@"):  # a predicated instruction
                parts = t.split(None, 2)
                op = parts[1] if len(parts) > 1 else ""
            for name, rx in PTX_CLASSES:
                if rx.match(op):
                    cur["counts"][name] += 1
                    break
    return kernels


def parse_ptxas(text):
    """Kernel (mangled) -> {registers, spill_stores, spill_loads, stack, static_smem}."""
    out, cur = {}, None
    for line in text.splitlines():
        m = re.search(r"Compiling entry function '([^']+)'", line)
        if m:
            cur = out.setdefault(m.group(1), dict(registers=0, spill_stores=0, spill_loads=0, stack=0, static_smem=0))
            continue
        if cur is None:
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            cur["stack"], cur["spill_stores"], cur["spill_loads"] = map(int, m.groups())
        m = re.search(r"Used (\d+) registers", line)
        if m:
            cur["registers"] = int(m.group(1))
            s = re.search(r"(\d+) bytes smem", line)
            cur["static_smem"] = int(s.group(1)) if s else 0
    return out


def probe_smem(nvcc, arch, tmp):
    """[(kernel, template-argument pattern, bytes, shape)] from tools/kernel_probe.cu."""
    rows = []
    for i, defs in enumerate(PROBES):
        exe = os.path.join(tmp, f"probe{i}")
        src = os.path.join(ROOT, "tools/kernel_probe.cu")
        run([nvcc, "-std=c++17", f"-arch={arch}", "-I", ROOT, *defs, src, "-o", exe])
        for line in run([exe]).stdout.splitlines():
            kernel, pattern, nbytes, shape = line.split()
            rows.append((kernel, pattern.split(","), int(nbytes), shape))
    return rows


def match_smem(rows, base, args):
    for kernel, pattern, nbytes, shape in rows:
        same = len(pattern) == len(args) and all(p in ("*", a) for p, a in zip(pattern, args))
        if kernel == base and (pattern == ["*"] or same):
            return nbytes, shape
    return None, None


def occupancy(lim, regs, threads, smem):
    """Resident blocks per SM and the resource that limits them."""
    warps = -(-threads // 32)
    by = {"warps": min(lim["warps"] // warps, lim["blocks"])}
    if regs > 0:
        per_warp = -(-regs * 32 // lim["reg_unit"]) * lim["reg_unit"]
        by["registers"] = (lim["regs"] // per_warp) // lim["warp_gran"] * lim["warp_gran"] // warps
    per_block = -(-(smem + lim["smem_reserved"]) // lim["smem_unit"]) * lim["smem_unit"]
    by["shared memory"] = lim["smem"] // per_block
    limiter = min(by, key=lambda k: by[k])
    return by[limiter], limiter, warps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nvcc", default=shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc")
    ap.add_argument("--arch", default="sm_90", help="one of " + ", ".join(sorted(LIMITS)))
    ap.add_argument("--check", action="store_true", help="exit 1 on spills or a missed minimum of blocks per SM")
    ap.add_argument("--json", action="store_true", help="JSON lines instead of the table")
    a = ap.parse_args()
    if a.arch not in LIMITS:
        fail(f"--arch {a.arch}: expected one of {', '.join(sorted(LIMITS))}")
    if not (os.path.isfile(a.nvcc) and os.access(a.nvcc, os.X_OK)):
        fail(f"no nvcc at {a.nvcc} (--nvcc)")
    ptxas = os.path.join(os.path.dirname(a.nvcc), "ptxas")
    if not os.access(ptxas, os.X_OK):
        fail(f"no ptxas beside {a.nvcc}")
    lim = LIMITS[a.arch]
    rows, failures = [], []
    with tempfile.TemporaryDirectory() as tmp:
        smem_rows = probe_smem(a.nvcc, a.arch, tmp)
        for src in SOURCES:
            ptx = os.path.join(tmp, os.path.basename(src) + ".ptx")
            run([a.nvcc, "-std=c++17", "-O3", "--use_fast_math", f"-arch={a.arch}", "-I", ROOT, "--ptx",
                 os.path.join(ROOT, src), "-o", ptx])
            with open(ptx) as f:
                ptx_info = parse_ptx(f.read())
            res = parse_ptxas(run([ptxas, "-v", f"-arch={a.arch}", ptx, "-o", os.devnull]).stderr)
            names = demangle(sorted(ptx_info))
            for mangled in sorted(ptx_info, key=lambda m: names[m]):
                info, r = ptx_info[mangled], res.get(mangled)
                if r is None:
                    fail(f"ptxas reported nothing for {names[mangled]}")
                base, args = short_name(names[mangled])
                dyn, shape = match_smem(smem_rows, base, args)
                row = dict(kernel=f"{base}<{', '.join(args)}>" if args else base, source=src, **r,
                           dynamic_smem=dyn, smem_shape=shape, threads=info["maxntid"], min_blocks=info["minnctapersm"],
                           **info["counts"])
                if info["maxntid"] and dyn is not None:
                    blocks, limiter, warps = occupancy(lim, r["registers"], info["maxntid"], r["static_smem"] + dyn)
                    row.update(blocks_per_sm=blocks, limited_by=limiter, occupancy=blocks * warps / lim["warps"])
                else:
                    row.update(blocks_per_sm=None, limited_by=None, occupancy=None)
                rows.append(row)
                allowed = SPILL_ALLOWANCE.get(base, 0)
                if r["spill_stores"] > allowed or r["spill_loads"] > allowed:
                    failures.append(f"{row['kernel']}: spills {r['spill_stores']} bytes stored, "
                                    f"{r['spill_loads']} loaded (allowed: {allowed})")
                want = info["minnctapersm"]
                if want and row["blocks_per_sm"] is not None and row["blocks_per_sm"] < want:
                    failures.append(f"{row['kernel']}: {row['blocks_per_sm']} blocks per SM (limited by "
                                    f"{row['limited_by']}), its launch bounds ask for {want}")
                if info["minnctapersm"] and dyn is None:
                    failures.append(f"{row['kernel']}: asks for {info['minnctapersm']} blocks per SM, and "
                                    "tools/kernel_probe.cu does not give its shared memory")
    if not rows:
        fail("no kernels found in the PTX")
    if a.json:
        for row in rows:
            print(json.dumps(row))
    else:
        print(f"CUDA kernels on {a.arch} (nvcc {a.nvcc}); occupancy = resident warps / {lim['warps']}")
        head = ["kernel", "regs", "spill st/ld", "smem static+dyn", "threads", "blocks/SM (limit)", "occupancy",
                "cp.async 16B", "ld 16B", "ld narrower", "ldmatrix", "mma", "pdl"]
        table = []
        for r in rows:
            dyn = "?" if r["dynamic_smem"] is None else str(r["dynamic_smem"])
            smem = f"{r['static_smem']}+{dyn}"
            if r["smem_shape"] not in (None, "any"):
                smem += f" ({r['smem_shape']})"
            blocks = f"{r['blocks_per_sm']} ({r['limited_by']})" if r["blocks_per_sm"] is not None else "n/a"
            occ = f"{100 * r['occupancy']:.1f}%" if r["occupancy"] is not None else "n/a"
            table.append([r["kernel"], str(r["registers"]), f"{r['spill_stores']}/{r['spill_loads']}", smem,
                          str(r["threads"] or "call"), blocks, occ] +
                         [str(r[k]) for k in ("cp_async_16", "ld_16", "ld_narrower", "ldmatrix", "mma", "pdl")])
        widths = [max(len(x) for x in col) for col in zip(head, *table)]
        for line in [head] + table:
            print("  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(line, widths))))
    for f in failures:
        print(f"kernel_report.py: {f}", file=sys.stderr)
    if a.check and failures:
        sys.exit(1)
    if a.check:
        print(f"kernel_report.py: {len(rows)} kernels on {a.arch}: no spills beyond the allowance, "
              "every minimum of blocks per SM met")


if __name__ == "__main__":
    main()
