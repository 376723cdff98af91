"""Small, learnable but not trivial stand-ins for GLUE SST-2, GLUE MRPC and CIFAR-10, made in code.

They have the real datasets' columns and splits (as plain column dicts, so the ``datasets`` library
is not needed): SST-2 ``sentence``/``label`` and MRPC ``sentence1``/``sentence2``/``label`` with
train/validation/test (test labels -1 as in GLUE); CIFAR-10 ``img`` (32x32 RGB PIL images)/``label``
with train/test. The data are the same for every trial (fixed generator seed), like a real dataset.

They are built so that a tiny model trained for about a second lands well below 100 % accuracy and the
seed search spaces' hyperparameters shape the result (see docs/trainer.md, "tiny preset"):

- every split carries label noise, and the cues overlap between classes, so accuracy saturates
  around 0.75-0.9 rather than at 1.0;
- some cues are learnt late (SST-2 negation, MRPC word overlap, CIFAR textures shared across
  colours), so the learning rate and the number of steps matter;
- in some sentences the decisive words come late: the tiny preset truncates text at
  ``max_seq_length / TINY_SEQ_LENGTH_DIVISOR`` tokens (16 for 128, 32 for 256), so a longer
  ``max_seq_length`` sees them;
- validation/test splits are large (800-1000 examples), so accuracy has a resolution of about 0.1 %.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from trainer.tasks import get_task, load_ref

Columns = dict[str, list[Any]]
Splits = dict[str, Columns]

DATA_SEED = 20261128
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_SYLLABLES = ("ka", "lo", "mi", "nu", "pe", "ri", "so", "ta", "vu", "ze", "bo", "da", "fe", "gi", "hu", "ju")
# MRPC pairs need more examples than SST-2 sentences before the tiny BERT picks up their cues
TEXT_SIZES = {
    "sst2": {"train": 384, "validation": 800, "test": 200},
    "mrpc": {"train": 512, "validation": 800, "test": 200},
}
IMAGE_SIZES = {"train": 192, "test": 1000}
CIFAR_CLASSES = 10
LABEL_NOISE = {"sst2": 0.06, "mrpc": 0.06, "cifar10": 0.06}
# Words [CLS] + words + [SEP] that fit the tiny truncation of max_seq_length 128 (16 tokens): cues placed
# at or after this word index are only seen with max_seq_length 256 (32 tokens).
VISIBLE_AT_128 = 14


def _words(prefix: str, count: int) -> list[str]:
    """``count`` distinct pseudo-words (lower case, so an uncased WordPiece vocab keeps them whole)."""
    out = []
    for i in range(count):
        a, b = divmod(i, len(_SYLLABLES))
        out.append(f"{prefix}{_SYLLABLES[a % len(_SYLLABLES)]}{_SYLLABLES[b]}")
    return out


POSITIVE = _words("pos", 8)  # strong cues
NEGATIVE = _words("neg", 8)
WEAK_POSITIVE = _words("wp", 10)  # appear on both sides, more often on their own
WEAK_NEGATIVE = _words("wn", 10)
NEUTRAL = _words("w", 40)
TOPICS = [_words(f"t{k}", 10) for k in range(6)]
NEGATION = ["not", "never", "no", "hardly"]
FUNCTION = ["the", "a", "of", "and", "to", "in", "is", "was", "it", "that", "but", "so"]


def vocabulary() -> list[str]:
    """Every token of the tiny WordPiece vocabulary, special tokens first."""
    words = [*POSITIVE, *NEGATIVE, *WEAK_POSITIVE, *WEAK_NEGATIVE, *NEUTRAL, *FUNCTION, *NEGATION]
    words += [w for topic in TOPICS for w in topic]
    return [*SPECIAL_TOKENS, *sorted(set(words)), ".", ","]


def _pick(rng: np.random.Generator, words: list[str], count: int, replace: bool = True) -> list[str]:
    return [str(w) for w in rng.choice(words, size=count, replace=replace)]


def _noisy(rng: np.random.Generator, label: int, task: str) -> int:
    return 1 - label if rng.random() < LABEL_NOISE[task] else label


def _strong_cue(rng: np.random.Generator, label: int) -> list[str]:
    """A decisive phrase for ``label``: a strong word, or (20 %) a negated word of the other side."""
    if rng.random() < 0.2:
        return [str(rng.choice(NEGATION)), str(rng.choice(NEGATIVE if label else POSITIVE))]
    return [str(rng.choice(POSITIVE if label else NEGATIVE))]


def _weak_cues(rng: np.random.Generator, label: int, count: int) -> list[str]:
    """Weak words that lean towards ``label`` (70 %) but also occur on the other side."""
    own, other = (WEAK_POSITIVE, WEAK_NEGATIVE) if label else (WEAK_NEGATIVE, WEAK_POSITIVE)
    return [str(rng.choice(own if rng.random() < 0.7 else other)) for _ in range(count)]


def _sst2_sentence(rng: np.random.Generator, label: int) -> list[str]:
    filler = [*NEUTRAL, *FUNCTION]
    if rng.random() < 0.22:  # long review: only weak hints early, the verdict after word VISIBLE_AT_128
        early = _weak_cues(rng, label, int(rng.integers(1, 3)))
        early += _pick(rng, filler, VISIBLE_AT_128 + 1 - len(early))
        rng.shuffle(early)
        late = _strong_cue(rng, label) + _pick(rng, filler, int(rng.integers(0, 6)))
        return early + late
    strong = int(rng.integers(1, 3))
    parts = [_strong_cue(rng, label) for _ in range(strong)]
    parts += [[w] for w in _weak_cues(rng, label, int(rng.integers(0, 3)))]
    parts += [[w] for w in _pick(rng, filler, int(rng.integers(2, 7)))]
    if strong == 2 and rng.random() < 0.3:  # a mixed review: one strong word of the other side, outweighed
        parts.append([str(rng.choice(NEGATIVE if label else POSITIVE))])
    order = rng.permutation(len(parts))
    return [w for i in order for w in parts[i]]


def _sst2_split(rng: np.random.Generator, n: int, with_labels: bool) -> Columns:
    sentences, labels = [], []
    for _ in range(n):
        label = int(rng.random() < 0.55)
        sentences.append(" ".join(_sst2_sentence(rng, label)) + " .")
        labels.append(_noisy(rng, label, "sst2") if with_labels else -1)
    return {"sentence": sentences, "label": labels, "idx": list(range(n))}


def _mrpc_pair(rng: np.random.Generator, label: int) -> tuple[list[str], list[str]]:
    topic = int(rng.integers(len(TOPICS)))
    content = _pick(rng, TOPICS[topic], int(rng.integers(3, 6)), replace=False)
    s1 = content + _pick(rng, FUNCTION, int(rng.integers(1, 4)))
    rng.shuffle(s1)
    kind = rng.random()
    if label:  # a paraphrase: most of the same content words, reordered
        keep = max(2, len(content) - int(rng.integers(0, 2)))
        other = list(rng.permutation(content))[:keep]
    elif kind < 0.5:  # the same words, but negated (twice: "not ... never")
        other = [*list(rng.permutation(content))[: max(2, len(content) - 1)], *_pick(rng, NEGATION, 2, False)]
    elif kind < 0.85:  # another topic altogether, mostly marked by a contrastive word
        other_topic = (topic + int(rng.integers(1, len(TOPICS)))) % len(TOPICS)
        other = _pick(rng, TOPICS[other_topic], int(rng.integers(2, 5)), replace=False)
        if rng.random() < 0.6:
            other += _pick(rng, NEGATION, 2, replace=False)
    else:  # the same topic, but mostly other details: only word overlap tells
        rest = [w for w in TOPICS[topic] if w not in content]
        other = [str(rng.choice(content)), *_pick(rng, rest, int(rng.integers(2, 4)), replace=False)]
    s2 = other + _pick(rng, FUNCTION, int(rng.integers(1, 4)))
    rng.shuffle(s2)
    if rng.random() < 0.25:  # a lead-in clause that pushes the second sentence past the short truncation
        s2 = _pick(rng, [*NEUTRAL, *FUNCTION], int(rng.integers(3, 7))) + s2
    return s1, s2


def _mrpc_split(rng: np.random.Generator, n: int, with_labels: bool) -> Columns:
    first, second, labels = [], [], []
    for _ in range(n):
        label = int(rng.random() < 0.5)
        s1, s2 = _mrpc_pair(rng, label)
        first.append(" ".join(s1) + " .")
        second.append(" ".join(s2) + " .")
        labels.append(_noisy(rng, label, "mrpc") if with_labels else -1)
    return {"sentence1": first, "sentence2": second, "label": labels, "idx": list(range(n))}


# CIFAR-like images: 5 colours x 5 textures; class k has colour k % 5 and texture (k + 2 * (k // 5)) % 5, so
# each colour and each texture is shared by two classes and only the pair identifies the class.
CIFAR_COLOURS = np.array(
    [[190, 70, 60], [70, 170, 80], [70, 90, 190], [190, 170, 70], [150, 80, 170]], dtype=np.float32
)
TEXTURES = ("horizontal", "vertical", "checker", "rings", "spot")


def cifar_class(label: int) -> tuple[int, int]:
    """(colour index, texture index) of CIFAR-like class ``label``."""
    return label % 5, (label + 2 * (label // 5)) % 5


def _texture(kind: int, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` texture maps in [-1, 1] of shape (n, 32, 32), with random frequency, phase and position."""
    ys, xs = np.mgrid[0:32, 0:32].astype(np.float32) / 32.0
    freq = rng.uniform(1.6, 2.6, size=(n, 1, 1)).astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1)).astype(np.float32)
    name = TEXTURES[kind]
    if name == "horizontal":
        return np.sin(2 * np.pi * freq * ys + phase)
    if name == "vertical":
        return np.sin(2 * np.pi * freq * xs + phase)
    if name == "checker":
        return np.sin(2 * np.pi * freq * xs + phase) * np.sin(2 * np.pi * freq * ys)
    cy, cx = (rng.uniform(0.3, 0.7, size=(2, n, 1, 1))).astype(np.float32)
    radius = np.sqrt((ys - cy) ** 2 + (xs - cx) ** 2)
    if name == "rings":
        return np.sin(2 * np.pi * 1.6 * freq * radius + phase)
    width = rng.uniform(0.12, 0.22, size=(n, 1, 1)).astype(np.float32)
    return 2.0 * np.exp(-((radius / width) ** 2)) - 1.0


def _cifar_split(rng: np.random.Generator, n: int) -> Columns:
    from PIL import Image

    labels = rng.integers(CIFAR_CLASSES, size=n)
    pixels = np.empty((n, 32, 32, 3), dtype=np.float32)
    for label in range(CIFAR_CLASSES):
        rows = np.flatnonzero(labels == label)
        if rows.size == 0:
            continue
        colour_index, texture_index = cifar_class(label)
        texture = _texture(texture_index, rng, rows.size)[..., None]
        # the colour is mixed with a random other colour, so colour alone is ambiguous
        other = CIFAR_COLOURS[rng.integers(5, size=rows.size)]
        mix = rng.uniform(0.0, 0.5, size=(rows.size, 1)).astype(np.float32)
        colour = (1 - mix) * CIFAR_COLOURS[colour_index] + mix * other
        brightness = rng.uniform(0.75, 1.25, size=(rows.size, 1, 1, 1)).astype(np.float32)
        contrast = rng.uniform(0.25, 0.5, size=(rows.size, 1, 1, 1)).astype(np.float32)
        pixels[rows] = colour[:, None, None, :] * brightness * (1.0 + contrast * texture)
    pixels += rng.normal(0.0, 32.0, size=pixels.shape).astype(np.float32)
    array = np.clip(pixels, 0, 255).astype(np.uint8)
    noisy = rng.random(n) < LABEL_NOISE["cifar10"]
    labels = np.where(noisy, (labels + rng.integers(1, CIFAR_CLASSES, size=n)) % CIFAR_CLASSES, labels)
    return {"img": [Image.fromarray(image, mode="RGB") for image in array], "label": labels.tolist()}


def sst2_splits(rng: np.random.Generator) -> Splits:
    """The tiny SST-2: single sentences, train/validation/test (test labels -1)."""
    return {split: _sst2_split(rng, n, split != "test") for split, n in TEXT_SIZES["sst2"].items()}


def mrpc_splits(rng: np.random.Generator) -> Splits:
    """The tiny MRPC: sentence pairs, train/validation/test (test labels -1)."""
    return {split: _mrpc_split(rng, n, split != "test") for split, n in TEXT_SIZES["mrpc"].items()}


def cifar10_splits(rng: np.random.Generator) -> Splits:
    """The tiny CIFAR-10: 32x32 RGB images of 10 classes, train/test."""
    return {split: _cifar_split(rng, n) for split, n in IMAGE_SIZES.items()}


@lru_cache(maxsize=8)
def _generate(task: str, generator: str) -> Splits:
    rng = np.random.default_rng([DATA_SEED, hash_task(task)])
    return load_ref(generator)(rng)


def tiny_dataset(task: str) -> Splits:
    """The tiny dataset of registered ``task`` as ``{split: {column: values}}`` (deterministic; fresh lists)."""
    generated = _generate(task, get_task(task).tiny_data)
    return {split: {k: list(v) for k, v in columns.items()} for split, columns in generated.items()}


def hash_task(task: str) -> int:
    """A stable small integer per task name (Python's hash() is salted per process)."""
    return sum((i + 1) * ord(c) for i, c in enumerate(task))
