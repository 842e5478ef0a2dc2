#!/usr/bin/env python3
"""Tests of tools/compare_seeds.py (the comparison table over RLKV training seeds), of
tools/newest_ckpt.sh, and of the parsers and the occupancy rule of tools/kernel_report.py (which
needs nvcc to run whole; CI runs it through launch/check_gpu_build.sh).

Run from the repository root: python3 -m unittest tests/test_tools.py (standard library only).
The inputs are small hand-made results files in the format rlkv compare / rlkv eval --output write,
and hand-made ptxas and PTX excerpts in the format nvcc 13 writes, so every expected number below is
worked out by hand from them.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "tools", "compare_seeds.py")


def row(method, sparsity, accuracy, kv=0.5, **extra):
    return {"method": method, "sparsity": sparsity, "accuracy": accuracy, "kv_fraction_of_full": kv, **extra}


# Per-head baselines: at 0.25 the best is duo-reasoning (0.90), at 0.5 the oracle (0.40).
COMPARE = {
    "problems": 100,
    "rows": [
        {"method": "full", "sparsity": 0.0, "accuracy": 1.0, "kv_fraction_of_full": 1.0, "n": 100},
        row("oracle", 0.25, 0.88, 0.8), row("oracle", 0.5, 0.40, 0.6),
        row("duo-retrieval", 0.25, 0.70, 0.8), row("duo-retrieval", 0.5, 0.30, 0.6),
        row("duo-reasoning", 0.25, 0.90, 0.8), row("duo-reasoning", 0.5, 0.35, 0.6),
        row("random", 0.25, 0.20, 0.8, accuracy_std=0.1), row("random", 0.5, 0.05, 0.6, accuracy_std=0.02),
        row("rlkv", 0.25, 0.5, 0.8), row("rlkv", 0.5, 0.5, 0.6),  # a one-checkpoint row the seeds replace
    ],
}
# Three seeds: means 0.87 and 0.50 (min 0.85 / 0.45, max 0.89 / 0.55).
SEEDS = [
    [row("rlkv", 0.25, 0.85, 0.79), row("rlkv", 0.5, 0.45, 0.59)],
    [row("rlkv", 0.25, 0.87, 0.80), row("rlkv", 0.5, 0.50, 0.60)],
    [row("rlkv", 0.25, 0.89, 0.81), row("rlkv", 0.5, 0.55, 0.61)],
]


class CompareSeeds(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rlkv-tools-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, name, doc):
        p = os.path.join(self.tmp, name)
        with open(p, "w") as f:
            f.write(doc if isinstance(doc, str) else json.dumps(doc))
        return p

    def run_script(self, *args):
        return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=60)

    def inputs(self):
        return [self.write("compare.json", COMPARE)] + [
            self.write(f"seed{i}.json", {"rows": rows}) for i, rows in enumerate(SEEDS)]

    def test_table_margins_and_merged_rows(self):
        merged = os.path.join(self.tmp, "merged.json")
        r = self.run_script(*self.inputs(), "--merged", merged)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertIn("| rlkv (3 seeds: mean, min-max) | **87.0** (85.0-89.0) | **50.0** (45.0-55.0) | 60.0% |", lines)
        self.assertIn("| rlkv, seed 3 | 89.0 | 55.0 | 61.0% |", lines)
        self.assertIn("| random masks | 20.0 ± 10.0 | 5.0 ± 2.0 | 60.0% |", lines)
        self.assertIn("Every head full: 100.0% on 100 problems.", lines)
        # Margins against the best per-head baseline, and the oracle against the best mask found.
        self.assertIn("- 25.0% compressed: learned mean 87.0 against the best per-head baseline 90.0 "
                      "(duo-reasoning): -3.0 points; the oracle is 2.0 below the best mask found.", lines)
        self.assertIn("- 50.0% compressed: learned mean 50.0 against the best per-head baseline 40.0 "
                      "(oracle): +10.0 points; the oracle is 15.0 below the best mask found.", lines)
        with open(merged) as f:
            doc = json.load(f)
        self.assertEqual(doc["problems"], 100)  # the compare file's description is kept
        rl = {r["sparsity"]: r for r in doc["rows"] if r["method"] == "rlkv"}
        self.assertEqual(sorted(rl), [0.25, 0.5])  # the one-checkpoint rows are gone
        self.assertAlmostEqual(rl[0.5]["accuracy"], 0.50)
        self.assertAlmostEqual(rl[0.5]["accuracy_std"], 0.05)
        self.assertAlmostEqual(rl[0.25]["kv_fraction_of_full"], 0.80)
        self.assertEqual(sum(r["method"] == "oracle" for r in doc["rows"]), 2)

    def test_bad_input_one_line_error(self):
        good = self.inputs()
        cases = {
            "not json": self.write("bad.json", "{not json"),
            "no rows": self.write("norows.json", {"results": []}),
            "row without accuracy": self.write("noacc.json", {"rows": [{"method": "rlkv", "sparsity": 0.5}]}),
            "non-numeric sparsity": self.write("str.json", {"rows": [row("rlkv", "half", 0.5)]}),
            "missing file": os.path.join(self.tmp, "absent.json"),
        }
        for what, bad in cases.items():
            with self.subTest(what):
                r = self.run_script(good[0], bad)
                self.assertNotEqual(r.returncode, 0)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
                self.assertIn("compare_seeds.py: ", r.stderr)
                self.assertNotIn("Traceback", r.stderr)
        # Seed files that share no sparsity.
        r = self.run_script(good[0], good[1], self.write("other.json", {"rows": [row("rlkv", 0.75, 0.1)]}))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("share no sparsity", r.stderr)


def load_kernel_report():
    spec = importlib.util.spec_from_file_location("kernel_report", os.path.join(REPO, "tools", "kernel_report.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


PTXAS = """ptxas info    : Compiling entry function '_Z5splitv' for 'sm_90'
ptxas info    : Function properties for _Z5splitv
    16 bytes stack frame, 36 bytes spill stores, 28 bytes spill loads
ptxas info    : Used 64 registers, used 1 barriers, 16 bytes cumulative stack size
ptxas info    : Compile time = 48.170 ms
ptxas info    : Compiling entry function '_Z4mainv' for 'sm_90'
ptxas info    : Function properties for _Z4mainv
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 198 registers, used 1 barriers, 1024 bytes smem, 400 bytes cmem[0]
"""

PTX = """.visible .entry _Z4mainv(
\t.param .u64 _Z4mainv_param_0
)
.maxntid 128, 1, 1
.minnctapersm 2
{
\tld.param.u64 \t%rd1, [_Z4mainv_param_0];
\tcp.async.cg.shared.global [%r1], [%rd2], 16;
\t@%p1 ld.global.nc.v4.u32 \t{%r2, %r3, %r4, %r5}, [%rd3];
\tld.v4.u32 \t{%r6, %r7, %r8, %r9}, [%rd4];
\tld.global.u16 \t%rs1, [%rd5];
\tld.v2.f32 \t{%f1, %f2}, [%rd6];
\tld.shared.v4.f32 \t{%f3, %f4, %f5, %f6}, [%r10];
\tldmatrix.sync.aligned.m8n8.x4.shared.b16 {%r11, %r12, %r13, %r14}, [%r15];
\tmma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%f7, %f8, %f9, %f10}, {%r1, %r2, %r3, %r4}, {%r5, %r6}, {%f1};
\tgriddepcontrol.launch_dependents;
}
.visible .entry _Z5splitv(
\t.param .u64 _Z5splitv_param_0
)
.maxntid 256, 1, 1
{
\tld.global.f32 \t%f1, [%rd1];
}
"""


class KernelReport(unittest.TestCase):
    def setUp(self):
        self.kr = load_kernel_report()

    def test_ptxas_lines(self):
        r = self.kr.parse_ptxas(PTXAS)
        self.assertEqual(r["_Z5splitv"], dict(registers=64, spill_stores=36, spill_loads=28, stack=16, static_smem=0))
        self.assertEqual(r["_Z4mainv"], dict(registers=198, spill_stores=0, spill_loads=0, stack=0, static_smem=1024))

    def test_ptx_counts(self):
        k = self.kr.parse_ptx(PTX)
        self.assertEqual(sorted(k), ["_Z4mainv", "_Z5splitv"])
        m = k["_Z4mainv"]
        self.assertEqual((m["maxntid"], m["minnctapersm"]), (128, 2))
        # Parameter and shared loads are not counted; a predicated load is; generic loads are.
        self.assertEqual(m["counts"], dict(cp_async_16=1, ld_16=2, ld_narrower=2, ldmatrix=1, mma=1, pdl=1))
        s = k["_Z5splitv"]
        self.assertEqual((s["maxntid"], s["minnctapersm"]), (256, None))
        self.assertEqual(s["counts"]["ld_narrower"], 1)

    def test_occupancy_on_sm90(self):
        lim = self.kr.LIMITS["sm_90"]
        # 198 registers: 6,400 per warp, 10 warps of registers, 8 in whole groups of 4: 2 blocks of 4
        # warps. 100,352 + 1,024 reserved bytes of shared memory also allow 2; registers count first.
        self.assertEqual(self.kr.occupancy(lim, 198, 128, 100352), (2, "registers", 4))
        # 150 registers: 4,864 per warp, 13 -> 12 warps: 3 blocks.
        self.assertEqual(self.kr.occupancy(lim, 150, 128, 50176), (3, "registers", 4))
        # A fourth pipeline stage (133,120 bytes): one block fits the 233,472 bytes of an SM.
        self.assertEqual(self.kr.occupancy(lim, 198, 128, 133120), (1, "shared memory", 4))
        # 116,000 bytes: two would fit the SM but for the 1,024 bytes reserved per block.
        self.assertEqual(self.kr.occupancy(lim, 64, 128, 116000), (1, "shared memory", 4))
        # 24 registers, 256 threads: the 64 warps of an SM allow 8 blocks.
        self.assertEqual(self.kr.occupancy(lim, 24, 256, 128), (8, "warps", 8))

    def test_names_and_shared_memory_rows(self):
        base, args = self.kr.short_name(
            "void rlkv_cuda::decode_split_kernel<float, 64, 1, true>(rlkv_decode_args, float*)")
        self.assertEqual((base, args), ("decode_split_kernel", ["float", "64", "1", "true"]))
        self.assertEqual(self.kr.short_name("void rlkv_cuda::plain(int)"), ("plain", []))
        rows = [("decode_split_kernel", ["*", "64", "2", "*"], 2624, "any"),
                ("decode_split_kernel", ["*", "64", "1", "*"], 1312, "any"),
                ("silu_mul_kernel", ["*"], 0, "any")]
        self.assertEqual(self.kr.match_smem(rows, base, args), (1312, "any"))
        self.assertEqual(self.kr.match_smem(rows, "silu_mul_kernel", ["float"]), (0, "any"))
        self.assertEqual(self.kr.match_smem(rows, "decode_split_kernel", ["float", "128", "1", "true"]), (None, None))


class NewestCheckpoint(unittest.TestCase):
    """tools/newest_ckpt.sh: the highest step by number, whatever the folders' names hold."""

    def newest(self, names):
        with tempfile.TemporaryDirectory() as tmp:
            run = os.path.join(tmp, "out dir-2", "rlkv-seed-1")  # dashes and a space in the folders
            os.makedirs(run)
            for n in names:
                open(os.path.join(run, n), "w").close()
            out = subprocess.run([os.path.join(REPO, "tools", "newest_ckpt.sh"), run], check=True,
                                 capture_output=True, text=True).stdout
            return os.path.basename(out.strip()) if out else None

    def test_by_step_number(self):
        # A text sort of the whole path (sort -t- -k2 -n) picked ckpt-50.h5 here.
        self.assertEqual(self.newest(["ckpt-50.h5", "ckpt-100.h5", "ckpt-9.h5"]), "ckpt-100.h5")
        self.assertEqual(self.newest(["ckpt-08.h5", "ckpt-7.h5", "ckpt-x.h5", "notes.txt"]), "ckpt-08.h5")
        self.assertIsNone(self.newest([]))


if __name__ == "__main__":
    unittest.main()
