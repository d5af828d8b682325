"""Small SentencePiece models trained in the tests, in BigBird's and Pegasus' layouts, and texts to tokenize."""

from __future__ import annotations

import random
from pathlib import Path

_ONSETS = ["", "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "qu", "r", "s", "t", "v", "w", "st", "sh", "th"]
_VOWELS = ["a", "e", "i", "o", "u", "ea", "ou", "y"]
_CODAS = ["", "n", "s", "t", "r", "l", "ng", "ck", "m"]
_UNICODE_WORDS = "café naïve Zürich 東京 Привет ελληνικά 😀 ﬁne Ａ résumé ½ ǅ São".split()
_ENGLISH = (
    "Block sparse attention lets a transformer read documents that are thousands of tokens long. "
    "Each query block attends to a few neighbours, a few global tokens and a few random blocks, "
    "so the cost grows linearly with the length of the input. The model was pre-trained on books, "
    "Wikipedia and news; it answers questions about long contexts and summarizes scientific papers. "
    "Isn't it remarkable? We'll see: results (Table 2) show gains of 3.5 points, at 4,096 tokens!"
)


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(rng.randint(1, 3)))


def write_corpus(path: Path, lines: int = 1200, seed: int = 0) -> Path:
    """A few hundred KB of made-up words, English sentences, numbers, punctuation and non-Latin text."""
    rng = random.Random(seed)
    out = [_ENGLISH] * 20
    for _ in range(lines):
        words = [_word(rng) for _ in range(rng.randint(3, 20))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), rng.choice(_UNICODE_WORDS))
        if rng.random() < 0.2:
            words[0] = words[0].capitalize()
        if rng.random() < 0.1:
            words.append(str(rng.randint(0, 10000)))
        out.append(" ".join(words) + rng.choice([".", "?", "!", ",", ";", " (x)", ' "y"', " 's", " n't"]))
    path.write_text("\n".join(out), encoding="utf-8")
    return path


def train_spm(corpus: Path, directory: Path, layout: str, symbols: str = "control") -> Path:
    """Train a Unigram `spiece.model` into `directory` with BigBird's or Pegasus' special pieces."""
    import sentencepiece as spm

    directory.mkdir(parents=True, exist_ok=True)
    if layout == "bigbird":
        ids = dict(pad_id=0, eos_id=1, bos_id=2, unk_id=3)
        specials = {f"{symbols}_symbols": ["[SEP]", "[CLS]", "[MASK]"]}
    else:
        ids = dict(pad_id=0, eos_id=1, unk_id=2, bos_id=-1)
        specials = {}
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(directory / "spiece"), vocab_size=400, model_type="unigram",
        character_coverage=1.0, minloglevel=2, num_threads=1, **ids, **specials,
    )  # fmt: skip
    (directory / "spiece.vocab").unlink()
    return directory / "spiece.model"
