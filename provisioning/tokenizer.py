"""How many tokens Azure OpenAI bills for a text or a chat prompt, counted before the call.

The gpt-4o, gpt-4.1 and o-series models read text as tokens of the `o200k_base` byte-pair
encoding; Switchyard ships that encoding (data/o200k_base.tiktoken.gz, see its LICENSE file)
because tiktoken would download it at first use. A model with another or an unknown encoding is
counted in UTF-8 bytes: a byte-level BPE never makes more tokens than bytes, so that count is a
safe upper bound (about four times the real one for English text).

A chat prompt adds the chat format around every message and the priming of the reply, as in
OpenAI's published recipe for counting chat tokens.
"""

import base64
import functools
import gzip
import hashlib
from collections.abc import Iterable
from pathlib import Path

import tiktoken

ENCODING_FILE = Path(__file__).resolve().parent / "data" / "o200k_base.tiktoken.gz"
# tiktoken's own checksum of the file it would download (tiktoken_ext.openai_public).
ENCODING_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
# tiktoken_ext.openai_public.o200k_base.
O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
O200K_SPECIAL_TOKENS = {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}
# Model names (Azure's) that read o200k_base.
O200K_MODELS = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4")

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_FOR_REPLY = 3


class EncodingFileError(Exception):
    """The shipped encoding is not the one tiktoken publishes."""


@functools.cache
def o200k_base() -> tiktoken.Encoding:
    """The encoding, read once per process: decompressing and checking it is too slow to repeat."""
    packed = ENCODING_FILE.read_bytes()
    contents = gzip.decompress(packed)
    if hashlib.sha256(contents).hexdigest() != ENCODING_SHA256:
        raise EncodingFileError(f"{ENCODING_FILE.name} is not tiktoken's o200k_base encoding.")
    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in contents.splitlines() if line)
    }
    return tiktoken.Encoding(
        "o200k_base",
        pat_str=O200K_PATTERN,
        mergeable_ranks=ranks,
        special_tokens=O200K_SPECIAL_TOKENS,
    )


def counts_exactly(model_name: str) -> bool:
    """Whether `text_tokens` gives the model's own count (else a safe upper bound)."""
    return model_name.startswith(O200K_MODELS)


def text_tokens(text: str, *, model_name: str) -> int:
    """The tokens of `text` for the model: exact for o200k_base models, at least as many for others."""
    if not text:
        return 0
    if counts_exactly(model_name):
        # Special-token markers in user text are ordinary text to Azure as well.
        return len(o200k_base().encode_ordinary(text))
    return len(text.encode("utf-8"))


def message_tokens(text_tokens: int) -> int:
    """What one message adds to a chat prompt: its text and the chat format around it."""
    return TOKENS_PER_MESSAGE + text_tokens


def prompt_tokens(texts_tokens: Iterable[int], *, named_messages: int = 0) -> int:
    """A chat prompt's tokens from its messages' text tokens: what Azure bills as prompt_tokens."""
    return TOKENS_FOR_REPLY + named_messages * TOKENS_PER_NAME + sum(map(message_tokens, texts_tokens))
