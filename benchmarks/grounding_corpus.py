"""Generated documents for the grounding benchmark: each department's PDFs, a made-up policy per
page, and questions that only one department's documents answer.

Every page states one rule in words no other page uses (a department's own subject words and a
numbered code), padded with ordinary office prose, so a question about a rule has one right page
and, asked of another department's assistant, none."""

import random
from dataclasses import dataclass

from grounding.pdf import text_pdf

SUBJECTS = {
    "hr": ["onboarding", "appraisal", "sabbatical", "relocation", "mentoring", "probation", "overtime"],
    "finance": ["invoice", "ledger", "accrual", "procurement", "reimbursement", "forecast", "audit"],
    "marketing": ["campaign", "newsletter", "sponsorship", "webinar", "tagline", "brochure", "influencer"],
    "legal": ["contract", "trademark", "litigation", "compliance", "warranty", "liability", "licence"],
    "it": ["laptop", "firewall", "password", "backup", "printer", "helpdesk", "software"],
}
OBJECTS = ["approval", "deadline", "threshold", "form", "checklist", "exception", "register", "review"]
FILLER = (  # noqa: SIM905 (prose is easier to read than a list of words)
    "the team agrees on the next steps and writes them down so that everyone can find them later "
    "colleagues share updates in the weekly meeting and keep the shared folder tidy "
    "questions about this page go to the owner named at the top of the document "
    "when in doubt ask before acting and record the decision with its date and reason "
    "the process is reviewed once a year and changes are announced on the intranet"
).split()


@dataclass(frozen=True)
class Rule:
    department: str
    document: str
    page: int
    code: str
    subject: str
    thing: str
    days: int

    @property
    def statement(self) -> str:
        return (
            f"The {self.subject} {self.thing} rule {self.code}: every {self.subject} {self.thing} is settled "
            f"within {self.days} days by the {self.department} {self.subject} desk."
        )

    @property
    def question(self) -> str:
        return f"Within how many days is a {self.subject} {self.thing} settled under rule {self.code}?"


@dataclass(frozen=True)
class GeneratedDocument:
    department: str
    name: str
    data: bytes
    pages: int
    rules: list[Rule]


def corpus(
    *, documents_per_department: int, pages: int, seed: int = 7, revision: int = 0
) -> list[GeneratedDocument]:
    """The documents; a `revision` above 0 opens each page with a line that says so (a new version
    of every file, with the same rules)."""
    rng = random.Random(seed)  # noqa: S311 (made-up documents, not secrets)
    made = []
    for department, subjects in SUBJECTS.items():
        for number in range(documents_per_department):
            name = f"{department}-policy-{number:03d}.pdf"
            rules, texts = [], []
            for page in range(1, pages + 1):
                rule = Rule(
                    department=department,
                    document=name,
                    page=page,
                    code=f"{department[:2].upper()}{number:03d}{page:02d}",
                    subject=rng.choice(subjects),
                    thing=rng.choice(OBJECTS),
                    days=rng.randint(2, 60),
                )
                rules.append(rule)
                texts.append(
                    (f"Revision {revision} of this page.\n\n" if revision else "") + _page(rule, rng)
                )
            made.append(GeneratedDocument(department, name, text_pdf(texts), pages, rules))
    return made


def _page(rule: Rule, rng: random.Random) -> str:
    """The rule, then paragraphs about the same subject in the department's words (as a policy page
    reads), with ordinary office prose between them: about 700 tokens, two passages."""
    subject, thing, desk = rule.subject, rule.thing, f"{rule.department} {rule.subject} desk"
    about = [
        f"The {desk} keeps the {thing} register for every {subject} case.",
        f"A {subject} {thing} names its owner, its date and the reason for the {subject}.",
        f"Questions about a {subject} {thing} go to the {desk} first.",
        f"When a {subject} {thing} is late, the desk tells the owner and records why.",
        f"Every {subject} {thing} under rule {rule.code} is reviewed once a year.",
    ]
    paragraphs = [rule.statement]
    for sentence in about * 2:
        filler = " ".join(rng.choice(FILLER) for _ in range(45))
        paragraphs.append(f"{sentence} {filler.capitalize()}.")
    return "\n\n".join(paragraphs)
