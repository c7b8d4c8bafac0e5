"""Embedding vectors that carry some meaning without a model: the text's lower-cased words and
word pairs (unigrams and bigrams), each hashed to a dimension with a sign (signed feature hashing),
weighted by 1 + log of its count, L2-normalised. Words that carry no subject (English function
words: "the", "do", "I") are left out and a plural's -s is dropped, as a model's vectors are
shaped by what a text is about rather than by its grammar. Texts that share words and phrases get
a high cosine, unrelated texts one near zero, and the same text always the same vector, so
retrieval over the emulator's embeddings ranks as a reader would expect."""

import hashlib
import itertools
import math
import re
from collections import Counter

import numpy as np

WORD = re.compile(r"[^\W_]+")
_FUNCTION_WORDS = """a about after all also am an and any are as at be because been before being but by can could
    did do does doing for from get got had has have having he her here him his how i if in into is it
    its just me more most my no not of on or our out over own same she should so some such than that
    the their them then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your"""
FUNCTION_WORDS = frozenset(_FUNCTION_WORDS.split())


def words(text: str) -> list[str]:
    """A simple word tokenizer: runs of letters and digits (any script), lower-cased."""
    return WORD.findall(text.lower())


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def features(item: str | list[int]) -> Counter[str]:
    """The word unigrams and bigrams of a text's words that carry a subject (or of a token array,
    its token ids)."""
    if isinstance(item, str):
        terms = [_stem(word) for word in words(item) if word not in FUNCTION_WORDS]
    else:
        terms = [f"#{token}" for token in item]
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
    counted = features(item)
    slots = [_slot(feature, dimensions) for feature in counted]
    values = np.zeros(dimensions)
    np.add.at(
        values,
        np.fromiter((index for index, _sign in slots), dtype=np.intp, count=len(slots)),
        np.fromiter(
            (
                sign * (1.0 + math.log(count))
                for (_index, sign), count in zip(slots, counted.values(), strict=True)
            ),
            dtype=np.float64,
            count=len(slots),
        ),
    )
    norm = float(np.linalg.norm(values))
    if norm == 0:
        # Features that cancelled out in every dimension they hit: rare, but a vector needs a length.
        values[_slot("empty", dimensions)[0]] = 1.0
        return list(values.tolist())
    return list((values / norm).tolist())
