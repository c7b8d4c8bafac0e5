"""The demo's documents, written for the project: HR's employee handbook (a PDF, a topic per page,
so citations open at a page) and Marketing's brand guide (Markdown, by heading)."""

import re

HANDBOOK_NAME = "Employee handbook 2026.pdf"
_HANDBOOK_SOURCE = [
    """Employee handbook 2026

This handbook describes how leave, expenses and remote work are handled at the company. It is
kept by HR and applies to every employee. Where a collective agreement says more, the agreement
applies.

Contents
Page 2: Annual leave
Page 3: Parental leave
Page 4: Sick leave and care leave
Page 5: Travel and expenses
Page 6: Remote work
Page 7: Equipment and information security

Questions about this handbook go to hr@example.com.""",
    """Annual leave

Every employee has 25 days of paid annual leave a year, earned from the first day of employment.
Part-time employees earn leave in proportion to their hours.

Plan your annual leave with your lead at least four weeks ahead for periods longer than one week.
Summer leave requests for June to August are collected by 31 March.

Up to 5 unused days of annual leave may be carried over into the next year. Days carried over
must be taken by 30 June of that year; later they lapse.

Public holidays are not counted as annual leave.""",
    """Parental leave

Every parent may take 16 weeks of paid parental leave after the birth or adoption of a child,
at full pay. Parental leave can be taken in one block or in up to three parts, within two years
of the birth or adoption.

Tell your lead and HR about parental leave at least eight weeks before it starts, using the
parental leave form in the HR portal.

After the 16 paid weeks, parents may take up to 12 more weeks of unpaid parental leave. Your
role is kept for you during parental leave; you return to the same or an equivalent position.

Parental leave pay is processed by payroll in the month the leave starts.""",
    """Sick leave and care leave

If you are ill, tell your lead before 9:00 on the first day of absence. From the eighth day of
sick leave a doctor's certificate is needed.

Sick pay is 100% of salary for the first 30 days of sick leave in a year and 80% after that.

Care leave: you may take up to 10 paid days a year to care for a sick child or a close relative.
Tell your lead on the first day.""",
    """Travel and expenses

Book business travel through the travel portal. Economy class is the rule for flights shorter
than six hours.

Hotel costs up to 180 EUR a night are approved with the trip. Hotel costs above the limit need
your lead's approval before booking.

Submit expense claims with their receipts within 30 days of the expense, in the expenses app.
Claims older than 90 days are not reimbursed.

Meals while travelling are covered by the daily allowance (45 EUR a day within the country, the
published rate abroad); do not claim individual meal receipts as well.""",
    """Remote work

You may work from home up to three days a week when your team agrees on how it works together.
Team days in the office are agreed by each team and kept in its calendar.

Working from another country needs HR's approval in advance and is allowed for at most 20 working
days a year, because of tax and social security rules.

Your home workplace must be suitable for work: a proper chair, a screen and a quiet place for
calls. The company pays a one-time home office allowance of 300 EUR.""",
    """Equipment and information security

You get a laptop and a phone from IT. Keep them locked when you leave them, and never share your
passwords.

Company data stays in company systems: do not copy confidential documents to private devices or
private cloud storage. Report a lost device to the IT service desk at once.

When you leave the company, return all equipment on your last working day.""",
]


def _reflowed(page: str) -> str:
    """A page's paragraphs on one line each (the PDF wraps them), its title and list items apart."""
    return re.sub(r"(?<=[^\n:])\n(?!\n|Page )", " ", page)


HANDBOOK_PAGES = [_reflowed(page) for page in _HANDBOOK_SOURCE]

BRAND_GUIDE_NAME = "Brand guide.md"
BRAND_GUIDE = """# Brand guide

How we sound and look in every campaign, post and page.

## Voice

We write short, friendly sentences. We speak to one reader at a time, as "you". We are concrete:
a number, a name or an example beats an adjective. We never use "revolutionary", "best-in-class"
or "synergy".

## Logo

The logo always sits on a white or very light background, with clear space around it at least
the height of the letter S. Never stretch, recolour or rotate the logo.

## Colours

Our primary colour is Harbour Blue (#1F4E79). Signal Orange (#F28C28) is for calls to action
only, never for large areas. Text is dark grey (#222222) on white.

## Typography

Headlines use Source Sans in semibold; body text uses Source Sans regular at 16 px or more. Use
sentence case for headlines: only the first word and names start with a capital letter.

## Campaign checklist

Every campaign names one audience and one action. Check claims with Legal before publishing.
Images show real customers or employees, with their written consent, and carry alt text.
"""
