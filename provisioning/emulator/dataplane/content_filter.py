"""The content filter's verdicts: the results Azure attaches to prompts and choices, the block
words the emulator is told to refuse or cut, and the refusal of a filtered prompt."""

from typing import Any

from provisioning.emulator.dataplane.errors import DataPlaneError

SEVERE_WORDS = ("bomb", "kill", "weapon")
CATEGORY_HINTS = (
    ("ignore previous", "jailbreak"),
    ("ignore all previous", "jailbreak"),
    ("jailbreak", "jailbreak"),
    ("suicide", "self_harm"),
    ("self-harm", "self_harm"),
    ("hate", "hate"),
    ("slur", "hate"),
    ("sex", "sexual"),
    ("nude", "sexual"),
)

SAFE = {"filtered": False, "severity": "safe"}


def filter_results(
    flagged: str | None = None, *, prompt: bool = False, severity: str = "medium"
) -> dict[str, Any]:
    """Azure's content_filter_results; prompts also carry the jailbreak (prompt shield) verdict."""
    results: dict[str, Any] = {}
    for category in ("hate", "jailbreak", "self_harm", "sexual", "violence"):
        if category == "jailbreak":
            if prompt:
                results[category] = {"filtered": flagged == category, "detected": flagged == category}
        elif category == flagged:
            results[category] = {"filtered": True, "severity": severity}
        else:
            results[category] = dict(SAFE)
    return results


def blocked_word(text: str, words: list[str]) -> str | None:
    lowered = text.lower()
    return next((word for word in words if word.lower() in lowered), None)


def category_of(word: str, *, prompt: bool) -> tuple[str, str]:
    """The category and severity the filter reports for a configured block word."""
    lowered = word.lower()
    category = next((category for hint, category in CATEGORY_HINTS if hint in lowered), "violence")
    if category == "jailbreak" and not prompt:
        category = "violence"
    severity = "high" if any(severe in lowered for severe in SEVERE_WORDS) else "medium"
    return category, severity


def prompt_filtered(word: str) -> DataPlaneError:
    category, severity = category_of(word, prompt=True)
    return DataPlaneError(
        400,
        {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management "
            "policy. Please modify your prompt and retry. To learn more about our content filtering policies "
            "please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766",
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": filter_results(category, prompt=True, severity=severity),
            },
        },
    )


PROMPT_FILTER_RESULTS = [{"prompt_index": 0, "content_filter_results": filter_results(prompt=True)}]
