#!/usr/bin/env python3
"""Generate golden reference fixtures for rlkv's C++ tests.

Run with the pinned reference environment (see tools/golden/requirements.txt):

    /opt/ref/bin/python tools/golden/make_fixtures.py --out tests/fixtures

What it writes (everything is built from fixed seeds; nothing is downloaded):

tokenizers/
    Byte-level BPE tokenizers trained here with Hugging Face `tokenizers` on a
    synthetic multilingual/code/maths text built inside this script, saved with
    `Tokenizer.save` so the JSON is byte-for-byte what HF writes:
      llama3.json        Llama-3 layout: Split(LLAMA3 regex) + ByteLevel(use_regex=False),
                         BPE ignore_merges=True, BOS template post-processor, ~3000 vocab.
      qwen2.json         Qwen2 layout: NFC normalizer, Split(QWEN2 regex, single digits),
                         no tokens added by the post-processor.
      gpt2.json          GPT-2 layout: ByteLevel(use_regex=True) pre-tokenizer, ~1000 vocab.
      llama3_small.json  Same layout as llama3.json with a ~600 vocab; this is the
                         tokenizer.json shipped with the tiny models (keeps them small).
      corpus.jsonl       ~150 test strings with the ids/decodings each tokenizer gives.
    The C++ tokenizer must reproduce `ids`, `ids_special` and `decoded` exactly.

models/<name>/  and  models/<name>.reference.safetensors
    Tiny randomly initialised causal LMs (Llama-3 with llama3 RoPE scaling and
    sharded fp32 weights, Qwen2 with qkv bias / tied embeddings / bf16 weights,
    Qwen3 with q/k-norm and explicit head_dim, Mistral with MQA), saved with
    `save_pretrained(safe_serialization=True)`, plus reference logits and greedy
    continuations computed with `transformers` in fp32 (eager attention). The C++
    loader/forward pass must reproduce the logits and the greedy tokens.

The script re-loads everything it wrote and checks it (tokenizers re-encode
identically; AutoModelForCausalLM.from_pretrained reproduces the reference
logits), and runs twice to the same bytes (checked by hand, see README).
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile

# Keep CPU use light and results reproducible (thread count can change fp sums).
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("RAYON_RS_NUM_CPUS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import safetensors  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models,  # noqa: E402
                        normalizers, pre_tokenizers, processors, trainers)

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                 r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

VERSIONS = {
    "torch": torch.__version__,
    "transformers": transformers.__version__,
    "tokenizers": tokenizers.__version__,
    "safetensors": safetensors.__version__,
    "numpy": np.__version__,
    "python": sys.version.split()[0],
}

# ---------------------------------------------------------------------------
# Training text
# ---------------------------------------------------------------------------

PROSE = [
    "The quick brown fox jumps over the lazy dog.",
    "It was the best of times, it was the worst of times.",
    "Reinforcement learning trains a policy by rewarding good outcomes.",
    "A key-value cache stores the attention keys and values of past tokens.",
    "We don't know yet whether the model will converge, but we've tried.",
    "I'LL BE THERE AT NOON, AND YOU'LL SEE WHY IT'S IMPORTANT.",
    "She'd said they're coming; he'd doubted it, and I'm not sure either.",
    "The answer is simple: compute the gradient, then take a small step.",
    "In 1969, astronauts landed on the Moon; in 2024, rovers explore Mars.",
    "Please read the manual before you run the benchmark on 32 threads.",
    "Tokens are the atoms of a language model's view of text.",
    "Isn't it strange how often we can't find the bug we're looking for?",
    "Mr. Smith paid $1,234.56 for 3 books and 12 pencils on 2023-07-14.",
    "The café served crème brûlée, a naïve façade of Parisian élan.",
    "Ångström, São Paulo, Zürich, Kraków, Reykjavík and Ærøskøbing.",
    "Straße, Größe, Übermaß and Öl are common German words.",
    "El niño comió piñas y jalapeños en la mañana.",
    "Les élèves ont étudié l'été dernier à l'école.",
    "Sampling with temperature 0.7 and top-p 0.95 is a common default.",
    "Greedy decoding picks the argmax token at every step.",
    "Batch size 8, sequence length 2048, learning rate 3e-4.",
    "THE WEATHER TODAY IS SUNNY WITH A HIGH OF 25 DEGREES.",
    "the lowercase version of a sentence looks calmer, doesn't it?",
    "Visit https://example.com/path?q=1&r=two#frag for details.",
    "Email me at someone@example.org or call +1 (555) 010-9999.",
    "Roses are red, violets are blue; unexpected tokens, and so are you.",
    "Every group of three heads shares one key-value head in this model.",
    "What's the probability that both dice show a six? It's 1/36.",
    "They've been working on rotary position embeddings since last week.",
    "We'll release the weights once the evaluation's finished.",
]

CJK = [
    "我们正在训练一个语言模型。",
    "今天天气很好，我们去公园散步吧。",
    "强化学习通过奖励来改进策略。",
    "日本語のテキストもトークン化します。",
    "東京は日本の首都です。",
    "カタカナとひらがなを混ぜた文章です。",
    "한국어 문장도 포함되어 있습니다.",
    "서울은 대한민국의 수도입니다.",
    "数学：一加一等于二。",
]

EMOJI = [
    "Great job! 👍", "I love this ❤️", "Family: 👨‍👩‍👧‍👦", "Coder: 👩🏽‍💻",
    "Pride 🏳️‍🌈 flag", "Flags 🇯🇵 🇫🇷 🇺🇸", "Party 🎉🎉🎉", "Fire 🔥 and ice 🧊",
    "Thinking 🤔 ...", "Rocket 🚀 launch at 10:00", "😀😃😄😁", "Thumbs 👍🏻👍🏿",
    "Scientist 🧑‍🔬 at work", "Heart on fire ❤️‍🔥",
]

MATH = [
    r"\frac{a}{b} + \frac{c}{d} = \frac{ad + bc}{bd}",
    r"The final answer is \boxed{42}.",
    r"x^2+y^2=z^2",
    r"\int_0^1 x^2 \, dx = \frac{1}{3}",
    r"\sum_{i=1}^{n} i = \frac{n(n+1)}{2}",
    r"\sqrt{2} \approx 1.41421356",
    r"Let $f(x) = 3x^3 - 2x + 7$. Then $f'(x) = 9x^2 - 2$.",
    r"\lim_{x \to 0} \frac{\sin x}{x} = 1",
    r"$$\begin{pmatrix} a & b \\ c & d \end{pmatrix}$$",
    r"\alpha + \beta = \gamma, \quad \delta \leq \epsilon",
    r"Therefore $\boxed{\frac{7}{12}}$ is the probability.",
    r"(a+b)^2 = a^2 + 2ab + b^2",
    r"e^{i\pi} + 1 = 0",
    r"P(A \mid B) = \frac{P(B \mid A) P(A)}{P(B)}",
]

CODE = [
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "class Cache:\n    def __init__(self, size):\n        self.size = size\n        self.data = {}\n\n"
    "    def get(self, key):\n        return self.data.get(key)\n",
    "for i in range(10):\n\tprint(i, i ** 2)\n",
    "import numpy as np\nx = np.zeros((3, 4), dtype=np.float32)\nprint(x.shape)\n",
    "#include <vector>\n#include <cstdint>\n\nint main() {\n    std::vector<int> v{1, 2, 3};\n"
    "    for (auto x : v) {\n        sum += x;\n    }\n    return 0;\n}\n",
    "template <typename T>\nT clamp(T x, T lo, T hi) {\n\treturn x < lo ? lo : (x > hi ? hi : x);\n}\n",
    "if (ptr == nullptr) {\r\n    throw std::runtime_error(\"null\");\r\n}\r\n",
    "    // indented comment with trailing spaces   \n",
    "const auto& [key, value] = *it;  // structured binding\n",
    "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;\n",
    "x = [a for a in range(100) if a % 3 == 0]\n",
    "    return {\"logits\": logits, \"loss\": loss}\n",
]

WHITESPACE = [
    "a  b   c    d", "tab\tseparated\tvalues", "two\t\ttabs", "line one\nline two\n",
    "windows\r\nline\r\nendings\r\n", "trailing spaces   ", "   leading spaces",
    "blank\n\n\nlines", "mixed \t \n \r\n whitespace", "indent\n    four\n        eight",
]

WORDS = ("model token layer head cache value key query batch step reward policy gradient "
         "sample answer question number string vector matrix tensor kernel thread memory "
         "buffer prompt output input system user assistant reason think verify compute "
         "apple orange river mountain window garden summer winter city train "
         "about above across after again against almost along already although always among "
         "another answer anything around because become before behind believe below between "
         "beyond building business carefully certainly change children choose clearly common "
         "company consider continue country course create current decide describe develop "
         "different difficult direction discover during early either enough especially "
         "evening everything example experience explain family famous father feeling finally "
         "follow foreign forward friend future general government ground happen however "
         "hundred husband important include increase instead interest island journey "
         "knowledge language large later learn letter little machine market measure million "
         "minute moment morning mother movement nature nearly network nothing notice number "
         "object office often organize other paper particular people perhaps picture place "
         "please possible power present probably problem produce program provide public "
         "quickly quiet rather reach ready really remember report result return science "
         "second several shoulder should simple since situation small social something "
         "special square stand station still story strange street strong student study "
         "suddenly surface system teacher thousand through together tomorrow toward travel "
         "understand usually village voice water whether without woman wonder world yellow").split()
SYLLABLES = ("ka ro mi tu ven dor qua lix bre sto pla nim zo fer gul tha wen bri cor dex "
             "mal pho sky tri urn vex yol zin ard eth ion ost ump").split()


def _pseudo_word(rng):
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
NAMES = ["Alice", "Bob", "Carol", "Dave", "Eve", "Mallory", "Trent", "Peggy"]
VERBS = ["computes", "sends", "reads", "writes", "loads", "verifies", "samples", "trains"]
CONTRACTIONS = ["don't", "DON'T", "I'LL", "we've", "WE'VE", "it's", "IT'S", "she'd",
                "they're", "THEY'RE", "I'm", "you'll", "can't", "won't", "isn't", "He'D"]


def _rand_number(rng):
    kind = rng.randrange(6)
    n = rng.randint(1, 20)
    digits = "".join(rng.choice("0123456789") for _ in range(n))
    if kind == 0:
        return digits
    if kind == 1:
        return digits + "." + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 6)))
    if kind == 2:
        return f"{rng.randint(0, 10**9):,}"
    if kind == 3:
        return "-" + str(rng.randint(0, 100000))
    if kind == 4:
        return f"{rng.random():.3e}"
    return str(rng.randint(0, 9999))


def build_training_text():
    """A few hundred deterministic lines/chunks covering the character classes."""
    rng = random.Random(20240601)
    chunks = []
    chunks += PROSE + CJK + EMOJI + MATH + CODE + WHITESPACE
    for _ in range(520):
        k = rng.randrange(9)
        if k == 0:
            s = (f"{rng.choice(NAMES)} {rng.choice(VERBS)} {_rand_number(rng)} "
                 f"{rng.choice(WORDS)}s and {rng.choice(CONTRACTIONS)} stop.")
        elif k == 1:
            s = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14)))
            s = s.capitalize() + rng.choice([".", "!", "?", "...", ";", ":"])
        elif k == 2:
            a, b = rng.randint(1, 99), rng.randint(1, 99)
            s = rng.choice([
                f"\\frac{{{a}}}{{{b}}} + x^{{{a % 7}}}",
                f"x^2+y^2={a * a + b * b}",
                f"The answer is \\boxed{{{a * b}}}.",
                f"$\\sqrt{{{a}}} \\cdot {b} = {a}^{{1/2}} \\times {b}$",
            ])
        elif k == 3:
            indent = rng.choice(["    ", "\t", "        ", "  "])
            name = rng.choice(WORDS)
            s = (f"def {name}_{rng.randint(0, 99)}(x, y={rng.randint(0, 9)}):\n"
                 f"{indent}z = x * y + {_rand_number(rng)}\n{indent}return z\n")
        elif k == 4:
            s = " ".join(_rand_number(rng) for _ in range(rng.randint(2, 8)))
        elif k == 5:
            s = f"{rng.choice(PROSE)} {rng.choice(EMOJI)} {rng.choice(CJK)}"
        elif k == 6:
            ws = rng.choice([" ", "  ", "\t", "\n", "\r\n", "\n\n", "   \t", " \n "])
            s = ws.join(rng.choice(WORDS + CONTRACTIONS) for _ in range(rng.randint(3, 9)))
            if rng.random() < 0.3:
                s += rng.choice(["   ", "\t", "\n", "\r\n"])
        elif k == 7:
            s = " ".join(rng.choice([_pseudo_word(rng), rng.choice(WORDS)])
                         for _ in range(rng.randint(5, 15)))
            s = rng.choice([s, s.upper(), s.title()]) + "."
        else:
            # accented Latin, precomposed and combining forms
            base = rng.choice(["café", "naïve", "résumé", "Ångström", "jalapeño", "Zoë"])
            if rng.random() < 0.5:
                base = (base.replace("é", "e\u0301").replace("ï", "i\u0308")
                        .replace("Å", "A\u030a").replace("ñ", "n\u0303").replace("ë", "e\u0308"))
            s = f"The {base} costs {rng.randint(1, 50)} euros, {rng.choice(CONTRACTIONS)} it?"
        chunks.append(s)
    # a few multi-line documents that mix everything
    for _ in range(60):
        parts = [rng.choice(chunks) for _ in range(rng.randint(2, 6))]
        sep = rng.choice(["\n", "\n\n", "\r\n", " ", "\t"])
        chunks.append(sep.join(parts))
    return chunks


# Held-out strings: never fed to the trainer.
HELD_OUT = [
    "Quantum chromodynamics describes the strong interaction between quarks.",
    "Yesterday's forecast wasn't accurate; tomorrow's might be.",
    "Zebras, yaks and wombats rarely share a zoo enclosure.",
    "नमस्ते दुनिया, यह एक परीक्षण है।",
    "Привет, мир! Как дела?",
    "مرحبا بالعالم",
    "Γειά σου Κόσμε, αβγδε",
    "สวัสดีชาวโลก",
    "שלום עולם",
    "∑∫∂√∞ ≠ ≤ ≥ ∀x∃y ∈ ℝ ⊂ ℕ",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 𝒶𝓁𝓅𝒽𝒶",
    "The dodo 🦤 and the mammoth 🦣 are extinct.",
    "ﬁ ligature and ｆｕｌｌｗｉｄｔｈ text ＡＢＣ１２３",
    "Ünïcödé wïth dïäcrïtïcs éverywhere",
    "Kubernetes orchestrates containerised workloads across clusters.",
    "fn main() { println!(\"hello, {}\", name); }",
    "<html><body><p class=\"x\">Hi &amp; bye</p></body></html>",
    "git commit -m 'fix: handle CRLF line endings'",
    "SELECT * FROM t WHERE id IN (1,2,3);",
    "¿Dónde está la biblioteca? ¡Aquí!",
]


def build_test_strings(training_chunks):
    rng = random.Random(777)
    s = [
        # empty and whitespace
        "", " ", "  ", "   ", "          ", "\t", "\t\t", "\t \t", "\n", "\n\n", "\n\n\n",
        "\r\n", "\r\n\r\n", "\r", " \n", "\n ", "  \n  ", " \t\n \r\n  ", "\u00a0", "a\u00a0b",
        "\u3000", "x\u2028y", "hello ", "hello   ", "  hello", "hello\n", "hello\n\n",
        "a\tb", "\tindented", "a          b", "end with tab\t", "    def f():\n        return 1\n",
        # numbers
        "0", "12", "123", "1234", "12345", "123456", "1234567",
        "1234567890123456789012345678901234567890",
        "3.14159", "1,000,000", "-42", "1e-10", "v1.2.3", "２０２４", "½ ² ³", "abc123def",
        # maths
        "x^2+y^2", "\\frac{a}{b}", "\\boxed{42}", "$\\frac{1}{2}$", "\\boxed{\\frac{7}{12}}",
        # contractions, case
        "don't", "DON'T", "I'LL", "we've", "'s", "'S", "'Ll", "it's'", "''", "rock 'n' roll",
        "He'D've", "o'clock",
        # emoji, cjk, accents
        "😀", "👨‍👩‍👧‍👦", "🏳️‍🌈", "👩🏽‍💻", "❤️‍🔥", "🇯🇵🇫🇷", "中文测试", "日本語のテキスト",
        "한국어", "café", "cafe\u0301", "e\u0301", "\u0301", "\u00c5", "A\u030a", "n\u0303",
        "Zoe\u0308 re\u0301sume\u0301",
        # added / special tokens inside text
        "<think>", "</think>", "<think>reasoning</think>answer", "a<think>b", "<think>\n",
        "x<|im_start|>y", "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
        "<|begin_of_text|>hello", "<|end_of_text|>", "<|endoftext|>", "<|im_end|><|im_end|>",
        "<thinking>", "< think >", "<|im_start", "<think></think>", "word<think>word</think>word",
        "<|begin_of_text|><|begin_of_text|>",
        # ignore_merges (see IGNORE_MERGES_WORDS): whole pre-token vs. part of a longer one
        " chromodynamics", "chromodynamics", " chromodynamicsal", "Kubernetes", " Kubernetes",
        "Kubernetes's", "big wombats", "wombats",
        # control characters
        "nul\x00byte", "\x07bell\x1b[0m", "\x7f",
    ]
    s += HELD_OUT
    s += rng.sample(training_chunks, 25)
    # one 5000-character mixed string
    frags = PROSE + CJK + EMOJI + MATH + CODE + WHITESPACE + HELD_OUT + CONTRACTIONS
    frags = frags + ["<think>", "</think>", "<|im_start|>", "<|im_end|>", "1234567890"]
    long = ""
    while len(long) < 5000:
        long += rng.choice(frags) + rng.choice([" ", "\n", "", "\t", "\r\n", "  "])
    s.append(long[:5000])
    seen, out = set(), []
    for t in s:
        if t not in seen:
            seen.add(t)
            out.append(t)
    return out


# ---------------------------------------------------------------------------
# Tokenizers
# ---------------------------------------------------------------------------

def _train(tok, chunks, vocab_size):
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=0, show_progress=False, special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(chunks, trainer=trainer)


def _force_ignore_merges(tok):
    """Some tokenizers versions drop model options on training; patch via JSON."""
    d = json.loads(tok.to_str())
    if d["model"].get("ignore_merges") is not True:
        d["model"]["ignore_merges"] = True
        tok = Tokenizer.from_str(json.dumps(d))
    return tok


# Whole pre-tokens appended to the llama3 vocab after training, with no merges that build
# them: with ignore_merges=True they encode as one token, without it as several. Trained BPE
# never has such entries, so without these the flag would be untested (Meta's Llama-3 vocab
# has entries whose merge path disagrees with the vocab, which is why the flag exists).
IGNORE_MERGES_WORDS = [" chromodynamics", "Kubernetes", " wombats"]


def _inject_whole_words(tok, words):
    d = json.loads(tok.to_str())
    vocab = d["model"]["vocab"]
    bl = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    for w in words:
        (piece, _), = bl.pre_tokenize_str(w)
        assert piece not in vocab, piece
        vocab[piece] = len(vocab)
    return Tokenizer.from_str(json.dumps(d))


def make_llama3(chunks, vocab_size):
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    _train(tok, chunks, vocab_size)
    tok = _force_ignore_merges(tok)
    tok = _inject_whole_words(tok, IGNORE_MERGES_WORDS)
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>"]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in ["<think>", "</think>"]])
    bos = tok.token_to_id("<|begin_of_text|>")
    # As in Meta's Llama-3 tokenizer.json: ByteLevel (offsets only) then the BOS template.
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
        processors.TemplateProcessing(
            single="<|begin_of_text|> $A",
            pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
            special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    return tok


def make_qwen2(chunks, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    _train(tok, chunks, vocab_size)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in ["<think>", "</think>"]])
    # Qwen2's post-processor is a ByteLevel one that adds no tokens.
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False,
                                              use_regex=False)
    return tok


def make_gpt2(chunks, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    _train(tok, chunks, vocab_size)
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


TOKENIZER_SPECS = {
    # name: (builder, trainer vocab size)
    "llama3": (make_llama3, 3000),
    "qwen2": (make_qwen2, 3000),
    "gpt2": (make_gpt2, 1000),
    "llama3_small": (make_llama3, 600),
}


def write_tokenizers(outdir):
    tdir = os.path.join(outdir, "tokenizers")
    os.makedirs(tdir, exist_ok=True)
    chunks = build_training_text()
    toks = {}
    for name, (builder, vs) in TOKENIZER_SPECS.items():
        tok = builder(chunks, vs)
        path = os.path.join(tdir, f"{name}.json")
        tok.save(path)
        toks[name] = Tokenizer.from_file(path)  # use exactly what was written
        print(f"[tok] {name}: vocab {toks[name].get_vocab_size(with_added_tokens=True)} "
              f"(base {toks[name].get_vocab_size(with_added_tokens=False)})")
    tests = build_test_strings(chunks)
    held_out_set = set(HELD_OUT)
    with open(os.path.join(tdir, "corpus.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        for text in tests:
            rec = {"text": text, "ids": {}, "ids_special": {}, "decoded": {}}
            for name, tok in toks.items():
                ids = tok.encode(text, add_special_tokens=False).ids
                rec["ids"][name] = ids
                rec["ids_special"][name] = tok.encode(text, add_special_tokens=True).ids
                rec["decoded"][name] = tok.decode(ids, skip_special_tokens=False)
            rec["held_out"] = text in held_out_set
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(f"[tok] corpus.jsonl: {len(tests)} strings")
    return toks, len(tests)


def check_tokenizers(outdir):
    tdir = os.path.join(outdir, "tokenizers")
    toks = {n: Tokenizer.from_file(os.path.join(tdir, f"{n}.json")) for n in TOKENIZER_SPECS}
    # the JSON re-serialises to the identical bytes
    for n, tok in toks.items():
        with tempfile.TemporaryDirectory() as td:
            p = os.path.join(td, "t.json")
            tok.save(p)
            assert open(p, "rb").read() == open(os.path.join(tdir, f"{n}.json"), "rb").read(), n
    llama = json.load(open(os.path.join(tdir, "llama3.json"), encoding="utf-8"))
    assert llama["model"]["ignore_merges"] is True
    llama["model"]["ignore_merges"] = False
    no_im = Tokenizer.from_str(json.dumps(llama))
    n = n_im = 0
    with open(os.path.join(tdir, "corpus.jsonl"), encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            for name, tok in toks.items():
                assert tok.encode(rec["text"], add_special_tokens=False).ids == rec["ids"][name]
                assert tok.encode(rec["text"]).ids == rec["ids_special"][name]
                assert tok.decode(rec["ids"][name], skip_special_tokens=False) == rec["decoded"][name]
            n_im += no_im.encode(rec["text"], add_special_tokens=False).ids != rec["ids"]["llama3"]
            n += 1
    assert n_im > 0, "no corpus string depends on ignore_merges"
    print(f"[check] tokenizers reload and re-encode {n} strings identically "
          f"({n_im} of them encode differently for llama3 without ignore_merges)")


# ---------------------------------------------------------------------------
# Tiny models
# ---------------------------------------------------------------------------

N_GREEDY = 32
PROMPT_LENS = [1, 7, 19, 41]
MARGIN_MIN = 3e-3  # brief asked > 1e-3; a little more headroom
PROMPT_SENTENCE = ("We don't know yet whether the tiny model will converge, but the key-value cache "
                   "stores 1234 keys; \\frac{a}{b} and \\boxed{42} appear too. 😀 café 中文")


def model_specs(vocab_size, bos_id, eos_id):
    from transformers import LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config
    common = dict(vocab_size=vocab_size, bos_token_id=bos_id, eos_token_id=eos_id,
                  hidden_act="silu", initializer_range=0.08, attention_dropout=0.0)
    return {
        "llama_tiny": dict(
            cls="LlamaForCausalLM",
            config=LlamaConfig(
                num_hidden_layers=3, hidden_size=144, num_attention_heads=6, num_key_value_heads=2,
                head_dim=24, intermediate_size=200, rms_norm_eps=1e-5, max_position_embeddings=2048,
                rope_theta=500000.0,
                rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                              "high_freq_factor": 4.0, "original_max_position_embeddings": 256},
                tie_word_embeddings=False, attention_bias=False, mlp_bias=False, **common),
            save_dtype=torch.float32, max_shard_size="1MB", seed=1000),
        "qwen2_tiny": dict(
            cls="Qwen2ForCausalLM",
            config=Qwen2Config(
                num_hidden_layers=2, hidden_size=96, num_attention_heads=4, num_key_value_heads=2,
                head_dim=24, intermediate_size=160, rms_norm_eps=1e-6, max_position_embeddings=4096,
                rope_theta=10000.0, tie_word_embeddings=True, use_sliding_window=False,
                sliding_window=None, **common),
            save_dtype=torch.bfloat16, max_shard_size=None, seed=2000),
        "qwen3_tiny": dict(
            cls="Qwen3ForCausalLM",
            config=Qwen3Config(
                num_hidden_layers=2, hidden_size=64, num_attention_heads=8, num_key_value_heads=2,
                head_dim=24, intermediate_size=128, rms_norm_eps=1e-6, max_position_embeddings=4096,
                rope_theta=1000000.0, tie_word_embeddings=False, attention_bias=False,
                use_sliding_window=False, sliding_window=None, **common),
            save_dtype=torch.float32, max_shard_size=None, seed=3000),
        "mistral_tiny": dict(
            cls="MistralForCausalLM",
            config=MistralConfig(
                num_hidden_layers=2, hidden_size=96, num_attention_heads=4, num_key_value_heads=1,
                head_dim=24, intermediate_size=160, rms_norm_eps=1e-5, max_position_embeddings=4096,
                rope_theta=1000000.0, sliding_window=None, tie_word_embeddings=False, **common),
            save_dtype=torch.float32, max_shard_size=None, seed=4000),
    }


def build_model(spec, seed):
    cls = getattr(transformers, spec["cls"])
    cfg = spec["config"]
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = cls(cfg).to(torch.float32)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                # non-trivial RMSNorm weights so a loader that ignores them is caught
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.08 * torch.randn(p.shape, generator=g))
    return model.eval()


@torch.no_grad()
def forward_logits(model, ids):
    out = model(input_ids=ids[None, :], use_cache=False)
    return out.logits[0].float()


@torch.no_grad()
def greedy(model, prompt, n=N_GREEDY):
    seq = prompt.clone()
    toks, margins = [], []
    for _ in range(n):
        last = forward_logits(model, seq)[-1]
        top2 = torch.topk(last, 2)
        nxt = int(top2.indices[0])
        toks.append(nxt)
        margins.append(float(top2.values[0] - top2.values[1]))
        seq = torch.cat([seq, torch.tensor([nxt], dtype=seq.dtype)])
    return torch.tensor(toks, dtype=torch.int64), torch.tensor(margins, dtype=torch.float32)


def make_prompts(tok, n_base):
    g = torch.Generator().manual_seed(12345)
    prompts = [torch.randint(0, n_base, (L,), generator=g, dtype=torch.int64) for L in PROMPT_LENS[:3]]
    enc = tok.encode(PROMPT_SENTENCE, add_special_tokens=True).ids
    assert len(enc) >= PROMPT_LENS[3], len(enc)
    prompts.append(torch.tensor(enc[:PROMPT_LENS[3]], dtype=torch.int64))
    return prompts


def legacy_config(path):
    """Rewrite config.json in the pre-v5 layout that hub checkpoints use
    (top-level rope_theta, rope_scaling, torch_dtype) instead of rope_parameters/dtype."""
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    rp = cfg.pop("rope_parameters")
    cfg["rope_theta"] = rp.pop("rope_theta")
    cfg["rope_scaling"] = None if rp.get("rope_type", "default") == "default" else rp
    if "dtype" in cfg:
        cfg["torch_dtype"] = cfg.pop("dtype")
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


# models whose config.json is rewritten in the legacy (transformers 4.x / hub) layout
LEGACY_CONFIG = {"llama_tiny", "qwen2_tiny"}


def load_saved(mdir, dtype):
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(mdir, dtype=dtype, attn_implementation="eager")
    return m.eval()


def write_models(outdir, tok_small_path):
    mroot = os.path.join(outdir, "models")
    os.makedirs(mroot, exist_ok=True)
    tok = Tokenizer.from_file(tok_small_path)
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    n_base = tok.get_vocab_size(with_added_tokens=False)
    added_ids = sorted(tok.get_added_tokens_decoder().keys())
    assert added_ids == list(range(n_base, vocab_size)), added_ids
    bos = tok.token_to_id("<|begin_of_text|>")
    eos = tok.token_to_id("<|end_of_text|>")
    prompts = make_prompts(tok, n_base)
    summary = {}
    for name, spec in model_specs(vocab_size, bos, eos).items():
        mdir = os.path.join(mroot, name)
        seed = spec["seed"]
        for attempt in range(100):
            # Save, load back, and compute the references from the loaded model, so the
            # margins checked are those of exactly what is on disk.
            model = build_model(spec, seed)
            if os.path.isdir(mdir):
                shutil.rmtree(mdir)
            kw = {"safe_serialization": True}
            if spec["max_shard_size"]:
                kw["max_shard_size"] = spec["max_shard_size"]
            model.to(spec["save_dtype"]).save_pretrained(mdir, **kw)
            shutil.copyfile(tok_small_path, os.path.join(mdir, "tokenizer.json"))
            if name in LEGACY_CONFIG:
                legacy_config(os.path.join(mdir, "config.json"))
            m32 = load_saved(mdir, torch.float32)
            assert next(m32.parameters()).dtype == torch.float32
            # the (possibly legacy-rewritten) config.json must mean the same model
            assert m32.config.rope_parameters == model.config.rope_parameters, (
                m32.config.rope_parameters, model.config.rope_parameters)
            if spec["save_dtype"] == torch.float32:
                assert torch.equal(forward_logits(model, prompts[3]),
                                   forward_logits(m32, prompts[3])), name
            ref = {}
            for i, p in enumerate(prompts):
                ref[f"prompt_{i}"] = p.contiguous()
                ref[f"logits_{i}"] = forward_logits(m32, p).contiguous()
                gt, gm = greedy(m32, p)
                ref[f"greedy_{i}"] = gt
                ref[f"greedy_margin_{i}"] = gm
            mn = min(float(ref[f"greedy_margin_{i}"].min()) for i in range(len(prompts)))
            if mn > MARGIN_MIN:
                break
            print(f"[model] {name}: seed {seed} min margin {mn:.2e} <= {MARGIN_MIN}, retrying")
            seed += 1
        else:
            raise RuntimeError(f"no seed with margins > {MARGIN_MIN} for {name}")
        if spec["save_dtype"] == torch.bfloat16:
            mbf = load_saved(mdir, torch.bfloat16)
            assert next(mbf.parameters()).dtype == torch.bfloat16
            for i, p in enumerate(prompts):
                ref[f"logits_bf16_{i}"] = forward_logits(mbf, p).to(torch.float32).contiguous()
        # one metadata key: safetensors writes the metadata map in hash order, so several
        # keys would make the file bytes differ from run to run
        meta = {"info": json.dumps({"generator": "tools/golden/make_fixtures.py", "model": name,
                                    "seed": seed, "versions": VERSIONS}, sort_keys=True)}
        save_file(ref, os.path.join(mroot, f"{name}.reference.safetensors"), metadata=meta)
        mins = [float(ref[f"greedy_margin_{i}"].min()) for i in range(len(prompts))]
        print(f"[model] {name}: seed {seed}, min greedy margins {['%.3g' % x for x in mins]}")
        summary[name] = {"seed": seed, "min_margins": mins, "cls": spec["cls"],
                         "config": json.load(open(os.path.join(mdir, "config.json")))}
    return summary, vocab_size, n_base


def model_tensor_listing(mdir):
    rows = []
    files = sorted(f for f in os.listdir(mdir) if f.endswith(".safetensors"))
    for fn in files:
        with safe_open(os.path.join(mdir, fn), framework="pt") as f:
            for k in f.keys():
                sl = f.get_slice(k)
                rows.append((k, sl.get_dtype(), list(sl.get_shape()), fn))
    return sorted(rows)


def check_models(outdir):
    mroot = os.path.join(outdir, "models")
    names = sorted(d for d in os.listdir(mroot) if os.path.isdir(os.path.join(mroot, d)))
    for name in names:
        mdir = os.path.join(mroot, name)
        ref = load_file(os.path.join(mroot, f"{name}.reference.safetensors"))
        m32 = load_saved(mdir, torch.float32)
        worst = 0.0
        for i in range(len(PROMPT_LENS)):
            p = ref[f"prompt_{i}"]
            assert p.dtype == torch.int64 and p.shape == (PROMPT_LENS[i],)
            lg = forward_logits(m32, p)
            assert lg.shape == ref[f"logits_{i}"].shape
            worst = max(worst, float((lg - ref[f"logits_{i}"]).abs().max()))
            gt, gm = greedy(m32, p)
            assert torch.equal(gt, ref[f"greedy_{i}"]), (name, i)
        assert worst == 0.0, (name, worst)
        if f"logits_bf16_0" in ref:
            mbf = load_saved(mdir, torch.bfloat16)
            for i in range(len(PROMPT_LENS)):
                lg = forward_logits(mbf, ref[f"prompt_{i}"]).float()
                assert torch.equal(lg, ref[f"logits_bf16_{i}"]), (name, i)
            d = max(float((ref[f"logits_bf16_{i}"] - ref[f"logits_{i}"]).abs().max())
                    for i in range(len(PROMPT_LENS)))
            print(f"[check] {name}: bf16 vs fp32 logits max |diff| = {d:.4f}")
        tok = Tokenizer.from_file(os.path.join(mdir, "tokenizer.json"))
        assert m32.config.vocab_size == tok.get_vocab_size(with_added_tokens=True)
        size = sum(os.path.getsize(os.path.join(mdir, f)) for f in os.listdir(mdir))
        assert size < 3 * 1024 * 1024, (name, size)
        print(f"[check] {name}: from_pretrained reproduces reference logits exactly and greedy "
              f"tokens; dir size {size / 1e6:.2f} MB")


# ---------------------------------------------------------------------------
# README
# ---------------------------------------------------------------------------

def _sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()[:16]


def write_readmes(outdir, summary, vocab_size, n_base, n_strings):
    mroot = os.path.join(outdir, "models")
    tdir = os.path.join(outdir, "tokenizers")
    vers = ", ".join(f"{k} {v}" for k, v in VERSIONS.items())
    cmd = "/opt/ref/bin/python tools/golden/make_fixtures.py --out tests/fixtures"
    L = []
    L.append("# Tiny model fixtures (generated)\n")
    L.append(f"GENERATED FILES, do not edit. Written by `tools/golden/make_fixtures.py` "
             f"(`{cmd}`) with {vers}. Pinned versions: `tools/golden/requirements.txt`. "
             "Everything comes from fixed seeds; no weights were downloaded.\n")
    L.append("## Layout\n")
    L.append("- `<name>/`: `config.json`, `generation_config.json`, safetensors weights written "
             "by `save_pretrained(safe_serialization=True)`, and `tokenizer.json` (a copy of "
             f"`../tokenizers/llama3_small.json`: Llama-3 layout, {vocab_size} tokens = "
             f"{n_base} BPE (incl. the 3 ignore_merges whole words) + 6 added; ids "
             f"{n_base}..{vocab_size - 1} are "
             "`<|begin_of_text|> <|end_of_text|> <|im_start|> <|im_end|> <think> </think>`).\n"
             "- `<name>.reference.safetensors` (next to the dir, not inside it), for prompts i = 0..3:\n"
             "  - `prompt_<i>` int64 [T_i], T = 1, 7, 19, 41. Prompts 0-2 are random ids "
             f"in [0, {n_base}) (no added/special ids); prompt 3 is the first 41 ids of the "
             "tokenizer's encoding (with BOS) of a fixed sentence.\n"
             "  - `logits_<i>` float32 [T_i, vocab]: full-sequence logits of one plain forward "
             "pass in fp32 with eager attention (model loaded back with "
             "`AutoModelForCausalLM.from_pretrained(dir, dtype=torch.float32)`).\n"
             f"  - `greedy_<i>` int64 [{N_GREEDY}]: greedy continuation by a manual loop that "
             "re-runs the full forward on prompt+generated (no KV cache) and takes the argmax of "
             "the last position. No EOS stopping. First-index argmax on ties (there are none).\n"
             f"  - `greedy_margin_<i>` float32 [{N_GREEDY}]: top1 - top2 logit at each greedy "
             f"step; the init seed is chosen so every margin > {MARGIN_MIN:g}.\n"
             "  - qwen2_tiny only: `logits_bf16_<i>`: logits of the model run entirely in bf16 "
             "(bf16 weights as stored, eager attention, CPU), stored as float32.\n"
             "- The safetensors metadata key `info` of each reference file is a JSON string with the "
             "seed and package versions.\n")
    L.append("## Models\n")
    descr = {
        "llama_tiny": "LlamaForCausalLM. 3 layers, hidden 144, 6 heads / 2 KV heads (GQA group 3), "
                      "head_dim 24, MLP 200, rms_norm_eps 1e-5, rope_theta 500000 with llama3 rope "
                      "scaling (factor 8, low 1, high 4, original_max_position_embeddings 256: "
                      "head_dim 24 has high-, mid- and low-frequency bands), untied lm_head, fp32, "
                      "SHARDED weights (`model-0000k-of-0000n.safetensors` + "
                      "`model.safetensors.index.json`). config.json in the legacy hub layout.",
        "qwen2_tiny": "Qwen2ForCausalLM. 2 layers, hidden 96, 4 heads / 2 KV heads, head_dim 24, "
                      "MLP 160, rms_norm_eps 1e-6, rope_theta 10000, random non-zero q/k/v biases, "
                      "TIED embeddings (no lm_head.weight in the file), weights stored in BF16 in "
                      "one model.safetensors. fp32 references use the bf16 weights upcast to fp32. "
                      "config.json in the legacy hub layout.",
        "qwen3_tiny": "Qwen3ForCausalLM. 2 layers, hidden 64, 8 heads / 2 KV heads (group 4), "
                      "explicit head_dim 24 (q_proj is 64->192, != hidden/heads), MLP 128, "
                      "rms_norm_eps 1e-6, rope_theta 1e6, per-head q_norm/k_norm RMSNorm weights "
                      "(random), untied, fp32, one file. config.json as transformers 5 writes it.",
        "mistral_tiny": "MistralForCausalLM. 2 layers, hidden 96, 4 heads / 1 KV head (MQA, group "
                        "4), head_dim 24, MLP 160, rms_norm_eps 1e-5, rope_theta 1e6, "
                        "sliding_window null, untied, fp32, one file. config.json as transformers "
                        "5 writes it.",
    }
    for name, info in summary.items():
        mdir = os.path.join(mroot, name)
        L.append(f"### {name}\n")
        L.append(descr[name] + f" Init seed {info['seed']}; smallest greedy margins per prompt: "
                 + ", ".join(f"{x:.3g}" for x in info["min_margins"]) + ".\n")
        L.append("All RMSNorm weights are 1 + 0.1*randn and Linear weights N(0, 0.08), so a loader "
                 "that skips a norm weight or a bias produces visibly wrong logits.\n")
        L.append("| file | bytes | sha256[:16] |\n| --- | ---: | --- |")
        for fn in sorted(os.listdir(mdir)):
            p = os.path.join(mdir, fn)
            L.append(f"| `{name}/{fn}` | {os.path.getsize(p)} | {_sha256(p)} |")
        rp = os.path.join(mroot, f"{name}.reference.safetensors")
        L.append(f"| `{name}.reference.safetensors` | {os.path.getsize(rp)} | {_sha256(rp)} |\n")
        L.append("Tensors:\n\n```")
        for k, dt, shape, fn in model_tensor_listing(mdir):
            L.append(f"{k:50s} {dt:5s} {str(shape):12s} {fn}")
        L.append("```\n")
    L.append("## Config layouts\n")
    L.append("transformers 5 writes RoPE settings as `rope_parameters: {rope_type, rope_theta, ...}` "
             "and `dtype`. Checkpoints on the hub (written by transformers 4.x) use top-level "
             "`rope_theta`, `rope_scaling` (null or `{rope_type, factor, ...}`) and `torch_dtype`. "
             "To cover both, llama_tiny and qwen2_tiny have their config.json rewritten to the "
             "legacy layout after saving (transformers 5 reads it back to identical logits); "
             "qwen3_tiny and mistral_tiny keep the transformers 5 layout.\n")
    with open(os.path.join(mroot, "README.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(L))

    T = ["# Tokenizer fixtures (generated)\n",
         f"GENERATED FILES, do not edit. Written by `tools/golden/make_fixtures.py` (`{cmd}`) "
         f"with {vers}. Trained here on a synthetic text built by the script (English, LaTeX, "
         "Python/C++, numbers, whitespace runs incl. tabs and CRLF, contractions, emoji incl. ZWJ "
         "sequences, CJK, precomposed and combining accents). Saved with `Tokenizer.save`.\n",
         "| file | layout | vocab (incl. added) |\n| --- | --- | ---: |"]
    lay = {"llama3": "Split(Llama-3 regex, isolated) + ByteLevel(use_regex=False); BPE "
                     "ignore_merges=true (3 whole-word vocab entries without merges, " + ", ".join(
                         repr(w) for w in IGNORE_MERGES_WORDS) + ", appended after training so "
                     "the flag changes the output); no normalizer; post-processor Sequence[ByteLevel, "
                     "Template(`<|begin_of_text|> $A`)]; specials `<|begin_of_text|>` "
                     "`<|end_of_text|>` `<|im_start|>` `<|im_end|>`; non-special `<think>` "
                     "`</think>`",
           "qwen2": "NFC normalizer; Split(Qwen2 regex, single digits) + ByteLevel(use_regex=False); "
                    "BPE without ignore_merges; post-processor ByteLevel (adds nothing); specials "
                    "`<|endoftext|>` `<|im_start|>` `<|im_end|>`; non-special `<think>` `</think>`",
           "gpt2": "ByteLevel(add_prefix_space=false, use_regex=true) (GPT-2 regex); no "
                   "normalizer; special `<|endoftext|>`",
           "llama3_small": "same as llama3 with a smaller vocab; the tokenizer.json of the tiny "
                           "models"}
    for n in TOKENIZER_SPECS:
        tok = Tokenizer.from_file(os.path.join(tdir, f"{n}.json"))
        T.append(f"| `{n}.json` | {lay[n]} | {tok.get_vocab_size(with_added_tokens=True)} |")
    T.append("")
    T.append(f"`corpus.jsonl`: {n_strings} test strings, one JSON object per line: "
             "`{\"text\", \"ids\": {tok: [...]}, \"ids_special\": {tok: [...]}, \"decoded\": "
             "{tok: str}, \"held_out\": bool}` for every tokenizer above, where `ids` = "
             "`encode(text, add_special_tokens=False).ids`, `ids_special` = "
             "`encode(text, add_special_tokens=True).ids` (only llama3* differ: BOS prepended), "
             "`decoded` = `decode(ids, skip_special_tokens=False)`. Covers empty/whitespace-only "
             "strings, CRLF, NBSP/ideographic space/U+2028, long digit runs, full-width digits, "
             "contractions in any case, emoji ZWJ sequences and flags, CJK, combining marks (NFC "
             "matters for qwen2), added tokens inside and adjacent to text, control chars incl. "
             "NUL, scripts never seen in training (Devanagari, Thai, Arabic, math symbols, "
             "astral-plane letters), 25 training strings, 20 held-out strings "
             "(`held_out: true`) and one 5000-character mixed string. JSON is UTF-8, not "
             "ASCII-escaped (control characters are escaped).\n")
    with open(os.path.join(tdir, "README.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(T))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/fixtures")
    ap.add_argument("--check-only", action="store_true", help="only verify existing fixtures")
    args = ap.parse_args()
    print("versions:", json.dumps(VERSIONS))
    if not args.check_only:
        _, n_strings = write_tokenizers(args.out)
        summary, vs, nb = write_models(args.out, os.path.join(args.out, "tokenizers",
                                                              "llama3_small.json"))
        write_readmes(args.out, summary, vs, nb, n_strings)
    check_tokenizers(args.out)
    check_models(args.out)
    print("done")


if __name__ == "__main__":
    main()
