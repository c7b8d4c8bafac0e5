"""Answers without a model, and the token counts the data plane bills.

Prompts are billed as Azure bills them: in tokens of the model's encoding (o200k_base for the
models the catalog offers), with the chat format around each message
(`provisioning.tokenizer`, a leaf module with nothing of the portal in it). An answer's token
here is a word with the whitespace before it, or one punctuation character (with the whitespace
before it), or trailing whitespace: `TOKEN_PATTERN`. Every count is exact and reproducible: the
streamed chunks, the `usage` block and the metered usage all use it.

Answers are Markdown built from a small phrase book. They are seeded by the conversation, so the
same conversation always gets the same answer, and they have these properties:
- a fenced code block when the last user message asks for code;
- about 40 to 250 tokens, or 250 to 600 when the user asks for detail;
- cut to `max_tokens` by the caller when that is smaller.
"""

import functools
import random
import re
import zlib
from collections.abc import Iterable
from typing import Any

from provisioning import tokenizer

TOKEN_PATTERN = re.compile(r"\s*\w+|\s*[^\w\s]|\s+")
# Images are billed by tile on Azure; a low-detail image is 85 tokens.
TOKENS_PER_IMAGE = 85

SHORT_ANSWER = (40, 250)
DETAILED_ANSWER = (250, 600)

CODE_REQUEST = re.compile(
    r"\b(code|coding|function|script|snippet|program|implement\w*|class|python|sql|regex|regexp|"
    r"regular expression|bash|shell|javascript|typescript|js)\b",
    re.IGNORECASE,
)
DETAIL_REQUEST = re.compile(
    r"\b(detail|detailed|in depth|in-depth|essay|comprehensive|thorough\w*|elaborate|long|step by step)\b",
    re.IGNORECASE,
)
_STOP_WORD_TEXT = """
a an and are as at be been but by can could do does for from had has have how i in into is it
its me my of on or our please should so some tell than that the their them then there these this
those to us was we what when where which while who why will with would you your write explain
give show make create about using use need want like just also more most very much many any
works work detail detailed depth code function script snippet program python query regex long
"""
STOP_WORDS = frozenset(_STOP_WORD_TEXT.split())


def split_tokens(text: str) -> list[str]:
    return TOKEN_PATTERN.findall(text)


def count_tokens(text: str) -> int:
    return len(TOKEN_PATTERN.findall(text))


def message_text(content: Any) -> tuple[str, int]:
    """The text of a message's `content` (a string or a list of parts) and its number of images."""
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        return "", 0
    texts: list[str] = []
    images = 0
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif part.get("type") in ("image_url", "input_image"):
            images += 1
    return "\n".join(texts), images


def prompt_tokens(messages: Iterable[dict[str, Any]], *, model_name: str) -> int:
    """What the prompt is billed: every message's text plus the chat formatting around it."""
    counts = []
    named = 0
    for message in messages:
        text, images = message_text(message.get("content"))
        counts.append(tokenizer.text_tokens(text, model_name=model_name) + images * TOKENS_PER_IMAGE)
        named += isinstance(message.get("name"), str)
    return tokenizer.prompt_tokens(counts, named_messages=named)


# The phrase book ------------------------------------------------------------------------------

OPENINGS = (
    "Here is an overview of {topic}.",
    "Good question about {topic}.",
    "Let's look at {topic} step by step.",
    "{Topic} comes down to a few practical points.",
    "There are a few things worth knowing about {topic}.",
)
SUBJECTS = (
    "the simplest approach",
    "a good first step",
    "the main trade-off",
    "this pattern",
    "a small, focused change",
    "the default configuration",
    "a careful rollout",
    "a clear naming scheme",
    "automated testing",
    "the underlying service",
    "your application",
    "a short feedback loop",
)
VERBS = (
    "keeps",
    "improves",
    "reduces",
    "simplifies",
    "protects",
    "clarifies",
    "speeds up",
    "depends on",
    "shapes",
    "supports",
)
OBJECTS = (
    "the overall reliability",
    "the cost of each request",
    "the time it takes to recover from errors",
    "how people experience {topic}",
    "the effort needed for maintenance",
    "the risk of surprises in production",
    "the quality of the results",
    "latency under load",
    "the way {topic} scales",
    "what the next person has to learn",
)
TAILS = (
    "",
    "",
    "",
    " in most cases",
    " over time",
    " when traffic grows",
    " without much extra work",
    " as long as the inputs are validated",
    " for both small and large teams",
)
CONNECTORS = (
    "",
    "",
    "",
    "In practice, ",
    "As a result, ",
    "For example, ",
    "At the same time, ",
    "In short, ",
)
LIST_HEADINGS = ("Key points:", "In summary:", "A few things to keep in mind:", "### Checklist")
LIST_TERMS = (
    "Scope",
    "Cost",
    "Reliability",
    "Security",
    "Monitoring",
    "Testing",
    "Performance",
    "Maintenance",
    "Access",
    "Documentation",
)
CLOSINGS = (
    "Let me know if you would like more detail on {topic}.",
    "I hope this helps you move forward with {topic}.",
    "If you share more context, I can tailor this to your situation.",
)
CODE_INTROS = (
    "Here is an example in {language}:",
    "A minimal {language} example:",
    "For instance, in {language}:",
)
CODE_FOLLOW_UPS = (
    "The example is deliberately small, so adapt the names to your own code.",
    "You can extend this with error handling and tests as it grows.",
    "Keep the example close to where it is used, and document any assumptions.",
)

CODE_SAMPLES: dict[str, tuple[str, ...]] = {
    "python": (
        'def {name}(items):\n    """Return the items that pass the check, in order."""\n'
        "    results = []\n    for item in items:\n        if item is not None:\n"
        "            results.append(item)\n    return results",
        "from dataclasses import dataclass\n\n\n@dataclass\nclass {title}:\n    name: str\n    count: int = 0\n\n"
        "    def add(self, amount: int) -> None:\n        self.count += amount",
    ),
    "sql": (
        "SELECT department, COUNT(*) AS {name}_count\nFROM {name}\nWHERE created_at >= '2025-01-01'\n"
        "GROUP BY department\nORDER BY {name}_count DESC;",
        "CREATE TABLE {name} (\n    id BIGINT PRIMARY KEY,\n    label TEXT NOT NULL,\n"
        "    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP\n);",
    ),
    "javascript": (
        "function {camel}(items) {\n  return items.filter((item) => item != null);\n}",
        "async function {camel}(url) {\n  const response = await fetch(url);\n"
        "  if (!response.ok) throw new Error(`HTTP ${response.status}`);\n  return response.json();\n}",
    ),
    "bash": (
        '#!/usr/bin/env bash\nset -euo pipefail\n\nfor file in ./{name}/*; do\n  echo "Processing $file"\ndone',
    ),
    "regex": ('import re\n\n{upper} = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}$")',),
}
LANGUAGE_HINTS = (
    ("sql", "sql"),
    ("regex", "regex"),
    ("regexp", "regex"),
    ("regular expression", "regex"),
    ("bash", "bash"),
    ("shell", "bash"),
    ("javascript", "javascript"),
    ("typescript", "javascript"),
    ("js", "javascript"),
)
LANGUAGE_NAMES = {
    "python": "Python",
    "sql": "SQL",
    "javascript": "JavaScript",
    "bash": "Bash",
    "regex": "Python",
}
FENCE_LABELS = {
    "python": "python",
    "sql": "sql",
    "javascript": "javascript",
    "bash": "bash",
    "regex": "python",
}


def wants_code(text: str) -> bool:
    return CODE_REQUEST.search(text) is not None


def code_language(text: str) -> str:
    lowered = text.lower()
    for hint, language in LANGUAGE_HINTS:
        if re.search(rf"\b{hint}\b", lowered):
            return language
    return "python"


def topic_words(text: str) -> list[str]:
    words = re.findall(r"[A-Za-z][A-Za-z0-9-]{3,}", text)
    return [word.lower() for word in words if word.lower() not in STOP_WORDS][:2]


class _Composer:
    """Appends Markdown to an answer while keeping its tokens, so the length can be steered."""

    def __init__(self, rng: random.Random, topic: str) -> None:
        self.rng = rng
        self.topic = topic
        self.tokens: list[str] = []
        # Sentences in the current paragraph; 0 means the next sentence starts a new one.
        self.paragraph_sentences = 0

    def fill(self, template: str) -> str:
        return template.format(topic=self.topic, Topic=self.topic[:1].upper() + self.topic[1:])

    def _add(self, text: str) -> None:
        self.tokens.extend(split_tokens(text))

    def sentence(self, text: str) -> None:
        separator = " " if self.paragraph_sentences else ("\n\n" if self.tokens else "")
        self._add(separator + text)
        self.paragraph_sentences += 1

    def block(self, text: str) -> None:
        self._add(("\n\n" if self.tokens else "") + text)
        self.paragraph_sentences = 0

    def maybe_end_paragraph(self) -> None:
        if self.paragraph_sentences >= 5 or (self.paragraph_sentences >= 3 and self.rng.random() < 0.5):
            self.paragraph_sentences = 0

    def made_up_sentence(self) -> str:
        pick = self.rng.choice
        connector = pick(CONNECTORS)
        clause = f"{pick(SUBJECTS)} {pick(VERBS)} {self.fill(pick(OBJECTS))}{pick(TAILS)}."
        if not connector:
            return clause[:1].upper() + clause[1:]
        return connector + clause


def _identifiers(words: list[str]) -> dict[str, str]:
    parts = [re.sub(r"\W", "", word) for word in words] or ["items"]
    snake = "_".join(parts)
    return {
        "name": snake,
        "camel": parts[0] + "".join(part.title() for part in parts[1:]),
        "title": "".join(part.title() for part in parts),
        "upper": snake.upper() + "_PATTERN",
    }


def _code_block(composer: _Composer, language: str, words: list[str]) -> None:
    sample = composer.rng.choice(CODE_SAMPLES[language])
    for placeholder, value in _identifiers(words).items():
        sample = sample.replace("{" + placeholder + "}", value)
    composer.block(composer.rng.choice(CODE_INTROS).format(language=LANGUAGE_NAMES[language]))
    composer.block(f"```{FENCE_LABELS[language]}\n{sample}\n```")
    composer.block(composer.rng.choice(CODE_FOLLOW_UPS))


def _bullet_list(composer: _Composer) -> None:
    composer.block(composer.rng.choice(LIST_HEADINGS))
    terms = composer.rng.sample(LIST_TERMS, composer.rng.randint(3, 4))
    items = [f"- **{term}**: {composer.made_up_sentence()}" for term in terms]
    composer.block("\n".join(items))


@functools.lru_cache(maxsize=512)
def compose_answer(conversation: str, last_user_message: str) -> tuple[str, ...]:
    """The answer's tokens; `conversation` seeds it, the last user message shapes it."""
    rng = random.Random(zlib.crc32(conversation.encode()))  # noqa: S311  (made-up text, not security)
    low, high = DETAILED_ANSWER if DETAIL_REQUEST.search(last_user_message) else SHORT_ANSWER
    target = rng.randint(low, high)
    words = topic_words(last_user_message)
    composer = _Composer(rng, " ".join(words) or "this topic")

    composer.sentence(composer.fill(rng.choice(OPENINGS)))
    composer.sentence(composer.made_up_sentence())
    if wants_code(last_user_message):
        _code_block(composer, code_language(last_user_message), words)
    list_done = False
    while len(composer.tokens) < target:
        if not list_done and len(composer.tokens) > target / 3 and rng.random() < 0.6:
            _bullet_list(composer)
            list_done = True
            continue
        composer.sentence(composer.made_up_sentence())
        composer.maybe_end_paragraph()
    composer.sentence(composer.fill(rng.choice(CLOSINGS)))
    return tuple(composer.tokens)


# Answers from sources ---------------------------------------------------------------------------
#
# A prompt may carry passages to answer from, in a system message with a delimited block of lines
# `[n] title, page p: text` (as a retrieval-augmented application writes them). The answer then
# quotes the source sentence that shares the most words with the question, with its number, and
# another source's best sentence when it shares words too; when no sentence shares a word with
# the question it says the sources do not answer it. Deterministic, like every answer here.

SOURCES_BEGIN = "<<<SOURCES"
SOURCES_END = "SOURCES>>>"
SOURCE_LINE = re.compile(r"^\[(\d{1,3})\] (.*?)(?:, page (\d+))?: (.*)$")
SENTENCE = re.compile(r"(?<=[.!?])\s+")


def sources_in(messages: Iterable[dict[str, Any]]) -> list[tuple[int, str, str]]:
    """The (number, title, text) of the sources a prompt's system messages carry."""
    sources: list[tuple[int, str, str]] = []
    for message in messages:
        if message.get("role") not in ("system", "developer"):
            continue
        text, _ = message_text(message.get("content"))
        if SOURCES_BEGIN not in text:
            continue
        block = text.split(SOURCES_BEGIN, 1)[1].split(SOURCES_END, 1)[0]
        for line in block.splitlines():
            match = SOURCE_LINE.match(line.strip())
            if match:
                sources.append((int(match.group(1)), match.group(2), match.group(4)))
    return sources


def _content_words(text: str) -> set[str]:
    return {word for word in re.findall(r"\w+", text.lower()) if word not in STOP_WORDS and len(word) > 2}


def grounded_answer(sources: list[tuple[int, str, str]], question: str) -> tuple[str, ...]:
    """The answer's tokens, quoting the best-matching source sentences with their numbers."""
    asked = _content_words(question)
    ranked: list[tuple[int, int, int, str, str]] = []  # (-shared, number, position, title, sentence)
    for number, title, text in sources:
        for position, sentence in enumerate(SENTENCE.split(text)):
            shared = len(asked & _content_words(sentence))
            if shared:
                ranked.append((-shared, number, position, title, sentence.strip()))
    if not ranked:
        return tuple(
            split_tokens(
                "I do not know: the sources I was given do not answer this question, so I will not guess."
            )
        )
    ranked.sort()
    _, number, _, title, sentence = ranked[0]
    sentence = sentence.rstrip(".!? ")
    parts = [f"According to {title}: {sentence} [{number}]."]
    other = next((entry for entry in ranked[1:] if entry[1] != number), None)
    if other is not None:
        parts.append(f"{other[3]} adds: {other[4].rstrip('.!? ')} [{other[1]}].")
    return tuple(split_tokens(" ".join(parts)))
