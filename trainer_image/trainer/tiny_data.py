"""Small, learnable stand-ins for GLUE SST-2, GLUE MRPC and CIFAR-10, made in code.

They have the real datasets' columns and splits (as plain column dicts, so the ``datasets`` library
is not needed): SST-2 ``sentence``/``label`` and MRPC ``sentence1``/``sentence2``/``label`` with
train/validation/test (test labels -1 as in GLUE); CIFAR-10 ``img`` (32x32 RGB PIL images)/``label``
with train/test. The data are the same for every trial (fixed generator seed), like a real dataset;
the signal is learnable by the tiny models in a few epochs but not in a single step, so the learning
rate, batch size and epoch count change the outcome.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Columns = dict[str, list[Any]]
Splits = dict[str, Columns]

DATA_SEED = 20261127
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_SYLLABLES = ("ka", "lo", "mi", "nu", "pe", "ri", "so", "ta", "vu", "ze", "bo", "da", "fe", "gi", "hu", "ju")
TEXT_SIZES = {"train": 384, "validation": 128, "test": 64}
IMAGE_SIZES = {"train": 512, "test": 256}
CIFAR_CLASSES = 10


def _words(prefix: str, count: int) -> list[str]:
    """``count`` distinct pseudo-words (lower case, so an uncased WordPiece vocab keeps them whole)."""
    out = []
    for i in range(count):
        a, b = divmod(i, len(_SYLLABLES))
        out.append(f"{prefix}{_SYLLABLES[a % len(_SYLLABLES)]}{_SYLLABLES[b]}")
    return out


POSITIVE = _words("pos", 10)
NEGATIVE = _words("neg", 10)
NEUTRAL = _words("w", 40)
TOPICS = [_words(f"t{k}", 10) for k in range(4)]
NEGATION = ["not", "never", "no", "but"]
FUNCTION = ["the", "a", "of", "and", "to", "in", "is", "was", "it", "that"]


def vocabulary() -> list[str]:
    """Every token of the tiny WordPiece vocabulary, special tokens first."""
    words = POSITIVE + NEGATIVE + NEUTRAL + FUNCTION + NEGATION + [w for topic in TOPICS for w in topic]
    return [*SPECIAL_TOKENS, *sorted(set(words)), ".", ","]


def _sst2_split(rng: np.random.Generator, n: int, with_labels: bool) -> Columns:
    sentences, labels = [], []
    for _ in range(n):
        label = int(rng.random() < 0.66)
        strong, weak = (POSITIVE, NEGATIVE) if label else (NEGATIVE, POSITIVE)
        n_strong = int(rng.integers(1, 4))
        n_weak = int(rng.integers(0, n_strong))
        words = list(rng.choice(NEUTRAL, size=int(rng.integers(4, 10))))
        words += list(rng.choice(strong, size=n_strong)) + list(rng.choice(weak, size=n_weak))
        rng.shuffle(words)
        if rng.random() < 0.05:  # label noise, as in any real annotation
            label = 1 - label
        sentences.append(" ".join(words) + " .")
        labels.append(label if with_labels else -1)
    return {"sentence": sentences, "label": labels, "idx": list(range(n))}


def _mrpc_split(rng: np.random.Generator, n: int, with_labels: bool) -> Columns:
    first, second, labels = [], [], []
    for _ in range(n):
        label = int(rng.random() < 0.66)
        topic = int(rng.integers(len(TOPICS)))
        content = list(rng.choice(TOPICS[topic], size=int(rng.integers(3, 6)), replace=False))
        filler = list(rng.choice(FUNCTION, size=3))
        s1 = content + filler
        rng.shuffle(s1)
        if label:
            other = content[:]
            rng.shuffle(other)
            other = other[: max(2, len(other) - 1)]
        elif rng.random() < 0.5:  # same words, but the meaning is negated
            other = content[:]
            rng.shuffle(other)
            other = [*other[: max(2, len(other) - 1)], str(rng.choice(NEGATION))]
        else:  # another topic altogether (usually marked by a contrastive word)
            other_topic = (topic + int(rng.integers(1, len(TOPICS)))) % len(TOPICS)
            other = list(rng.choice(TOPICS[other_topic], size=int(rng.integers(2, 5)), replace=False))
            if rng.random() < 0.8:
                other.append(str(rng.choice(NEGATION)))
        s2 = other + list(rng.choice(FUNCTION, size=3))
        rng.shuffle(s2)
        first.append(" ".join(s1) + " .")
        second.append(" ".join(s2) + " .")
        labels.append(label if with_labels else -1)
    return {"sentence1": first, "sentence2": second, "label": labels, "idx": list(range(n))}


def _class_patterns() -> tuple[np.ndarray, np.ndarray]:
    """Per-class colour (10x3) and oriented-stripe parameters (10x2: angle, frequency)."""
    colours = np.array(
        [
            [200, 60, 60],
            [60, 200, 60],
            [60, 60, 200],
            [200, 200, 60],
            [200, 60, 200],
            [60, 200, 200],
            [150, 100, 50],
            [50, 150, 100],
            [100, 50, 150],
            [128, 128, 128],
        ],
        dtype=np.float32,
    )
    stripes = np.array([[k * np.pi / 5, 2.0 + (k % 3)] for k in range(CIFAR_CLASSES)], dtype=np.float32)
    return colours, stripes


def _cifar_split(rng: np.random.Generator, n: int) -> Columns:
    from PIL import Image

    colours, stripes = _class_patterns()
    ys, xs = np.mgrid[0:32, 0:32].astype(np.float32) / 32.0
    images, labels = [], []
    for _ in range(n):
        label = int(rng.integers(CIFAR_CLASSES))
        angle, freq = stripes[label]
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * freq * (xs * np.cos(angle) + ys * np.sin(angle)) + phase)
        # colours of neighbouring classes are mixed in, so colour alone is not enough
        mix = rng.uniform(0.0, 0.6)
        colour = (1 - mix) * colours[label] + mix * colours[(label + 1) % CIFAR_CLASSES]
        pixels = colour[None, None, :] * (0.65 + 0.35 * wave[..., None])
        pixels = pixels + rng.normal(0.0, 28.0, size=pixels.shape)
        images.append(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="RGB"))
        labels.append(label)
    return {"img": images, "label": labels}


def tiny_dataset(task: str) -> Splits:
    """The tiny dataset for ``task`` as ``{split: {column: values}}`` (deterministic)."""
    rng = np.random.default_rng([DATA_SEED, hash_task(task)])
    if task == "sst2":
        return {split: _sst2_split(rng, n, split != "test") for split, n in TEXT_SIZES.items()}
    if task == "mrpc":
        return {split: _mrpc_split(rng, n, split != "test") for split, n in TEXT_SIZES.items()}
    if task == "cifar10":
        return {split: _cifar_split(rng, n) for split, n in IMAGE_SIZES.items()}
    raise ValueError(f"unknown task {task!r}; allowed: sst2, mrpc, cifar10")


def hash_task(task: str) -> int:
    """A stable small integer per task name (Python's hash() is salted per process)."""
    return sum((i + 1) * ord(c) for i, c in enumerate(task))
