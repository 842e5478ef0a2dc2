#!/usr/bin/env python3
"""Tests of tools/compare_seeds.py (the comparison table over RLKV training seeds), of
tools/toy_pairs.py (against a stand-in for rlkv), of tools/toy_card_tables.py, of
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
import resource
import shutil
import subprocess
import sys
import tempfile
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "tools", "compare_seeds.py")
TOY_PAIRS = os.path.join(REPO, "tools", "toy_pairs.py")
TOY_CARD_TABLES = os.path.join(REPO, "tools", "toy_card_tables.py")


def file_size_limit(limit):
    """preexec_fn: files the child writes may not grow past `limit` bytes (ulimit -f); Python ignores
    SIGXFSZ, so a write past it fails with EFBIG."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))


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

    def path(self, name):
        return os.path.join(self.tmp, name)

    def read(self, path):
        with open(path) as f:
            return f.read()

    def write(self, name, doc):
        p = self.path(name)
        with open(p, "wb" if isinstance(doc, bytes) else "w") as f:
            f.write(doc if isinstance(doc, (str, bytes)) else json.dumps(doc))
        return p

    def run_script(self, *args, **kw):
        return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=60, **kw)

    def refused(self, *args, expect=None, **kw):
        """The script refuses: exit 2, one line on stderr naming it (and `expect`), nothing on stdout."""
        r = self.run_script(*args, **kw)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        self.assertTrue(r.stderr.startswith("compare_seeds.py: "), r.stderr)
        if expect:
            self.assertIn(expect, r.stderr)
        self.assertEqual(r.stdout, "")
        return r.stderr

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
                self.refused(good[0], bad)
        # Seed files that share no sparsity.
        self.refused(good[0], good[1], self.write("other.json", {"rows": [row("rlkv", 0.75, 0.1)]}),
                     expect="share no sparsity")
        self.refused(good[0], good[1], "--bogus", expect="--bogus")

    def test_numbers_must_be_finite(self):
        good = self.inputs()
        nan = '{"rows": [{"method": "rlkv", "sparsity": 0.25, "accuracy": NaN, "kv_fraction_of_full": 0.8}]}'
        cases = {
            # NaN was read (stdev raised AttributeError with two seeds; one seed printed "nan").
            "NaN, two seeds": ([self.write("nan.json", nan), good[1]], "NaN"),
            "NaN, one seed": ([self.path("nan.json")], "NaN"),
            "1e400": ([self.write("inf.json", nan.replace("NaN", "1e400"))], "accuracy"),
            "an integer past the doubles": ([self.write("big.json", nan.replace("NaN", "1" + "0" * 400))], "accuracy"),
            "nested 100,000 deep": ([self.write("deep.json", "[" * 100000)], "nested too deeply"),
            "not UTF-8": ([self.write("latin1.json", b'{"rows": "\xe9"}')], "UTF-8"),
        }
        for what, (seeds, expect) in cases.items():
            with self.subTest(what):
                self.refused(good[0], *seeds, expect=expect)
        # A random row whose accuracy_std is null (the table printed it with %: TypeError).
        doc = json.loads(json.dumps(COMPARE))
        doc["rows"][7]["accuracy_std"] = None
        self.refused(self.write("nullstd.json", doc), *good[1:], expect="accuracy_std")

    def test_merged_is_checked_before_any_work(self):
        good = self.inputs()
        # A missing directory: FileNotFoundError after the table was printed.
        self.refused(*good, "--merged", self.path("no/such/dir/merged.json"), expect="does not exist")
        # An input (under another spelling, or through a link) would be overwritten.
        before = self.read(good[2])
        link = self.path("link.json")
        os.symlink(good[2], link)
        for merged in (good[2], os.path.join(self.tmp, "sub", "..", "seed1.json"), link, good[0]):
            with self.subTest(merged):
                os.makedirs(self.path("sub"), exist_ok=True)
                self.refused(*good, "--merged", merged, expect="is the input")
        self.assertEqual(self.read(good[2]), before)

    def test_merged_failed_write_leaves_the_old_file(self):
        merged = self.write("merged.json", "the previous merged file\n")
        r = self.run_script(*self.inputs(), "--merged", merged, preexec_fn=file_size_limit(200))
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        self.assertIn("cannot write", r.stderr)
        self.assertEqual(self.read(merged), "the previous merged file\n")
        self.assertEqual(sorted(n for n in os.listdir(self.tmp) if n.startswith(".")), [])  # no temporaries
        # Written through a link: the link stays and its target is replaced.
        link = self.path("merged-link.json")
        os.symlink(merged, link)
        r = self.run_script(*self.inputs(), "--merged", link)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.islink(link))
        self.assertEqual(len(json.loads(self.read(merged))["rows"]), 11)

    def test_merged_rows_average_every_column(self):
        def seed(acc, length, trunc, kvb, kv, n=100):
            return {"rows": [row("rlkv", 0.5, acc, kv, n=n, mean_length=length, truncated_rate=trunc,
                                 repetition_rate=0.0, kv_bytes_per_sequence=kvb, detail="seed-dir")]}
        a = self.write("a.json", seed(0.4, 70.0, 0.1, 1000.0, 0.6))
        b = self.write("b.json", seed(0.6, 90.0, 0.3, 2000.0, 0.7))
        merged = self.path("merged.json")
        r = self.run_script(self.write("compare.json", COMPARE), a, b, "--merged", merged)
        self.assertEqual(r.returncode, 0, r.stderr)
        m = [x for x in json.loads(self.read(merged))["rows"] if x["method"] == "rlkv"]
        self.assertEqual(len(m), 1)
        m = m[0]
        # Means of the two seeds (mean_length, truncated_rate and the bytes were seed 1's).
        for key, want in (("accuracy", 0.5), ("mean_length", 80.0), ("truncated_rate", 0.2),
                          ("kv_bytes_per_sequence", 1500.0), ("kv_fraction_of_full", 0.65),
                          ("repetition_rate", 0.0), ("accuracy_std", 0.14142135623730953)):
            self.assertAlmostEqual(m[key], want, msg=key)
        self.assertEqual((m["n"], m["sparsity"], m["detail"]), (100, 0.5, "mean of 2 seeds"))
        # Seeds evaluated on different problem sets are not averaged.
        c = self.write("c.json", seed(0.6, 90.0, 0.3, 2000.0, 0.7, n=50))
        self.refused(self.path("compare.json"), a, c, "--merged", merged, expect="n = 100, 50")


# A stand-in for `rlkv eval` of a 2-layer model with 3 KV heads: head (l, h) alone costs
# 0.01 * (10 l + h); a pair costs the sum plus 0.1 * (10 * (l_a + l_b) + h_a + h_b + 1), which names it.
FAKE_RLKV = """#!{python}
import json, sys
a = sys.argv[1:]
opt = lambda k: a[a.index(k) + 1]
drop = lambda l, h: 0.01 * (10 * l + h)
if opt("--method") == "single-head":
    rows = [{{"method": "full", "accuracy": 0.9, "n": 10}}] + [
        {{"method": "single-head", "layer": l, "kv_head": h, "drop": drop(l, h)}} for l in range(2) for h in range(3)]
else:
    zeros = [(l, h) for l, line in enumerate(open(opt("--mask"))) for h, c in enumerate(line.split()) if c == "0"]
    assert len(zeros) == 2, zeros
    (la, ha), (lb, hb) = zeros
    rows = [{{"method": "rlkv", "accuracy": 0.9 - drop(la, ha) - drop(lb, hb) - 0.1 * (10 * (la + lb) + ha + hb + 1)}}]
with open(opt("--output"), "w") as f:
    json.dump({{"rows": rows}}, f)
"""


class ToyPairs(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rlkv-tools-")
        self.rlkv = os.path.join(self.tmp, "rlkv")
        with open(self.rlkv, "w") as f:
            f.write(FAKE_RLKV.format(python=sys.executable))
        os.chmod(self.rlkv, 0o755)
        self.model = os.path.join(self.tmp, "model")
        os.makedirs(self.model)
        self.out = os.path.join(self.tmp, "out")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_pairs(self, heads, rlkv=None):
        return subprocess.run([sys.executable, TOY_PAIRS, "--model", self.model, "--config", "x.ini",
                               "--data", "d.jsonl", "--output", self.out, "--rlkv", rlkv or self.rlkv, "--heads", heads],
                              capture_output=True, text=True, timeout=60)

    def refused(self, heads, expect, rlkv=None):
        r = self.run_pairs(heads, rlkv)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        self.assertTrue(r.stderr.startswith("toy_pairs.py: "), r.stderr)
        self.assertIn(expect, r.stderr)
        return r.stderr

    def test_pairs_of_the_named_heads(self):
        r = self.run_pairs("0.1, 1.2")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(self.out, "pairs.json")) as f:
            pairs = json.load(f)["pairs"]
        self.assertEqual([(q["a"], q["b"]) for q in pairs], [([0, 1], [1, 2])])
        self.assertAlmostEqual(pairs[0]["drop_a"], 0.01)
        self.assertAlmostEqual(pairs[0]["drop_b"], 0.12)
        self.assertAlmostEqual(pairs[0]["interaction"], 1.4)  # 0.1 * (10 + 3 + 1): the pair 0.1 + 1.2

    def test_failed_write_keeps_the_earlier_file(self):
        # pairs.json was written with open(): a write past a file-size limit left it truncated, with
        # an OSError traceback. Now a temporary renamed over it: the earlier file stays.
        self.assertEqual(self.run_pairs("0.1,1.2").returncode, 0)
        path = os.path.join(self.out, "pairs.json")
        with open(path) as f:
            before = f.read()
        r = subprocess.run([sys.executable, TOY_PAIRS, "--model", self.model, "--config", "x.ini", "--data",
                            "d.jsonl", "--output", self.out, "--rlkv", self.rlkv, "--heads", "0.1,1.2,0.0,1.1"],
                           capture_output=True, text=True, timeout=60, preexec_fn=file_size_limit(800))
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertTrue(r.stderr.splitlines()[-1].startswith("toy_pairs.py: "), r.stderr)
        self.assertIn("pairs.json: cannot write", r.stderr)
        with open(path) as f:
            self.assertEqual(f.read(), before)

    def test_bad_heads(self):
        # A head named twice ran a pair with one zero (rlkv compressed another head with it).
        self.refused("0.1,0.1", "named twice")
        self.refused("1", "'1' is not a head")  # was an IndexError inside the error message
        self.refused("0.x", "'0.x' is not a head")  # was a ValueError traceback
        self.refused("0.1,,1.2", "'' is not a head")
        self.refused("0.1", "at least two")
        # Out of range: from the single-head rows, and from config.json before any evaluation.
        self.assertIn("single_head.json", self.refused("0.1,2.0", "no head 2.0 in a model of 2 layers x 3 KV heads"))
        shutil.rmtree(self.out)
        with open(os.path.join(self.model, "config.json"), "w") as f:
            json.dump({"num_hidden_layers": 2, "num_attention_heads": 6, "num_key_value_heads": 3}, f)
        self.assertIn("config.json", self.refused("0.3,1.0", "no head 0.3"))
        self.assertFalse(os.path.exists(self.out), "rlkv ran")

    def test_failed_rlkv(self):
        self.refused("0.1,1.2", "failed (exit status 1)", rlkv="/bin/false")  # was CalledProcessError
        self.refused("0.1,1.2", "cannot run", rlkv=os.path.join(self.tmp, "absent"))


class ToyCardTables(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rlkv-tools-")
        cache = dict(mean_length=80.0, truncated_rate=0.0, kv_bytes_per_sequence=1000.0)
        self.docs = {
            "full.json": {"rows": [dict(row("full", 0.0, 0.99, 1.0), n=100, **cache)]},
            "streaming.json": {"rows": [dict(row("streaming", 1.0, 0.10, 0.2), **cache)]},
            "single_head.json": {"sink": 4, "window": 16, "max_new_tokens": 160, "rows": [row("full", 0.0, 0.99)] + [
                dict(row("single-head", 0.25, 0.9, 0.9), layer=l, kv_head=h, drop=0.1 * l + 0.01 * h)
                for l in range(2) for h in range(2)]},
            # Rows in another order than random.json's.
            "oracle.json": {"rows": [dict(row("rlkv", 0.75, 0.70, 0.4), mean_length=75.0, truncated_rate=0.01),
                                     dict(row("rlkv", 0.5, 0.95, 0.6), mean_length=80.0, truncated_rate=0.02)]},
            "random.json": {"rows": [dict(row("random", 0.5, 0.30, 0.6), accuracy_std=0.1, mean_length=60.0,
                                          truncated_rate=0.03),
                                     dict(row("random", 0.75, 0.05, 0.4), accuracy_std=0.02, mean_length=55.0,
                                          truncated_rate=0.04)]},
        }

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_tables(self, docs, folder=None):
        for name, doc in docs.items():
            with open(os.path.join(self.tmp, name), "w") as f:
                json.dump(doc, f)
        return subprocess.run([sys.executable, TOY_CARD_TABLES, folder or self.tmp], capture_output=True, text=True,
                              timeout=60)

    def refused(self, docs, expect, folder=None):
        r = self.run_tables(docs, folder)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        self.assertTrue(r.stderr.startswith("toy_card_tables.py: "), r.stderr)
        self.assertIn(expect, r.stderr)
        self.assertEqual(r.stdout, "")

    def test_rows_paired_by_sparsity(self):
        r = self.run_tables(self.docs)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertIn("| 50.0% | 95.0 | 80.0 | 2.0 | 30.0 ± 10.0 | 60.0 | 3.0 | 60.0% |", lines)
        self.assertIn("| 75.0% | 70.0 | 75.0 | 1.0 | 5.0 ± 2.0 | 55.0 | 4.0 | 40.0% |", lines)
        self.assertIn("| 1 | 10.0 | 11.0 |", lines)

    def test_a_sparsity_missing_from_one_file(self):
        docs = dict(self.docs)
        docs["random.json"] = {"rows": [dict(row("random", 0.25, 0.5, 0.8), accuracy_std=0.1, mean_length=60.0,
                                             truncated_rate=0.0)] + self.docs["random.json"]["rows"]}
        self.refused(docs, "oracle.json: no row at sparsity 0.25")

    def test_missing_files_and_fields(self):
        self.refused({}, "no such file", folder=os.path.join(self.tmp, "absent"))
        docs = json.loads(json.dumps(self.docs))
        del docs["oracle.json"]["rows"][1]["mean_length"]
        self.refused(docs, "oracle.json: row 2 has no numeric 'mean_length'")
        docs = json.loads(json.dumps(self.docs))
        del docs["single_head.json"]["sink"]
        self.refused(docs, "no 'sink'")
        docs = json.loads(json.dumps(self.docs))
        docs["full.json"] = {"rows": []}
        self.refused(docs, "full.json: no 'rows'")


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
        # Only the names rlkv takes for checkpoints (no leading zero, at most 18 digits).
        self.assertEqual(self.newest(["ckpt-08.h5", "ckpt-7.h5", "ckpt-x.h5", "notes.txt"]), "ckpt-7.h5")
        self.assertEqual(self.newest(["ckpt-0.h5", "ckpt-1234567890123456789.h5"]), "ckpt-0.h5")
        self.assertIsNone(self.newest([]))


if __name__ == "__main__":
    unittest.main()
