"""Embedding vectors that carry some meaning without a model: the text's lower-cased words and
word pairs (unigrams and bigrams), each hashed to a dimension with a sign (signed feature hashing),
weighted by 1 + log of its count, L2-normalised. Texts that share words and phrases get a high
cosine, unrelated texts one near zero, and the same text always the same vector, so retrieval over
the emulator's embeddings ranks as a reader would expect."""

import hashlib
import itertools
import math
import re
from collections import Counter

WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """A simple word tokenizer: runs of letters and digits (any script), lower-cased."""
    return WORD.findall(text.lower())


def features(item: str | list[int]) -> Counter[str]:
    """The word unigrams and bigrams of a text (or of a token array, its token ids)."""
    terms = words(item) if isinstance(item, str) else [f"#{token}" for token in item]
    counted = Counter(terms)
    counted.update(f"{first} {second}" for first, second in itertools.pairwise(terms))
    if not counted:
        # Text without a word (punctuation, whitespace) still gets a vector of its own.
        counted[f"raw:{item!r}"] = 1
    return counted


def _slot(feature: str, dimensions: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
    number = int.from_bytes(digest, "big")
    return (number >> 1) % dimensions, 1.0 if number & 1 else -1.0


def meaning_vector(item: str | list[int], dimensions: int) -> list[float]:
    values = [0.0] * dimensions
    for feature, count in features(item).items():
        index, sign = _slot(feature, dimensions)
        values[index] += sign * (1.0 + math.log(count))
    norm = math.sqrt(sum(value * value for value in values))
    if norm == 0:
        # Features that cancelled out in every dimension they hit: rare, but a vector needs a length.
        values[_slot("empty", dimensions)[0]] = 1.0
        return values
    return [value / norm for value in values]
