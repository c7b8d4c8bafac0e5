"""Text that crosses a boundary: a name typed into one line, an email subject, a CSV cell.

Here, beside `base.tables`, because the lowest layer (the organisation's models) validates
names with it and the highest (approvals' emails, the cost reports' CSV) writes text out with
it; it imports nothing of Switchyard.
"""

import re

from django.core.exceptions import ValidationError

# Line breaks and every other control character (C0, DEL, C1), and Unicode's line and paragraph
# separators, which mail headers and spreadsheets take as line breaks too.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

# What makes a spreadsheet read a cell as a formula (OWASP, "CSV Injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def validate_single_line(value: str) -> None:
    """For names that end up in an email subject or a header: one line, printable."""
    if _CONTROL.search(value):
        raise ValidationError(
            "Use one line of text: no line breaks, tabs or other control characters.", code="single_line"
        )


def one_line(text: str) -> str:
    """The text as one line for a mail header: line breaks and other control characters become
    spaces, and runs of spaces one."""
    return " ".join(_CONTROL.sub(" ", text).split())


def csv_text(text: str) -> str:
    """A text cell that a spreadsheet shows as the text it is: one that would start a formula
    gets a leading single quote, as OWASP advises. Only text cells go through here: amounts are
    written as numbers, so a negative amount stays a number."""
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text
