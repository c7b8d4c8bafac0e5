"""The demo's grounded assistants: HR's handbook behind the HR policy helper and Marketing's brand
guide behind the Campaign writer, made through the same services as the pages (the data set, the
uploads, the grounding request the data owner's approval decides). The documents are read by the
worker when it starts, after it has provisioned the landing zone's search service."""

from dataclasses import dataclass

from grounding.demo_documents import BRAND_GUIDE, BRAND_GUIDE_NAME, HANDBOOK_NAME, HANDBOOK_PAGES
from grounding.grounding_services import grounding_request
from grounding.models import DataSet, Grounding
from grounding.pdf import text_pdf
from grounding.services import DataSetSpec, data_set_create, document_upload
from org.models import Department, User
from provisioning.models import DataClassification, ModelDeployment


@dataclass(frozen=True)
class DemoDataSet:
    department: str
    owner: str
    name: str
    description: str
    classification: str
    assistant: str
    purpose: str


DEMO_DATA_SETS = [
    DemoDataSet(
        "hr",
        "hana@example.com",
        "Employee handbook",
        "Leave, parental leave, sick leave, travel and expenses, remote work and equipment: the "
        "rules every employee asks HR about.",
        DataClassification.INTERNAL,
        "HR policy helper",
        "Employees ask the HR policy helper about leave, expenses and remote work; it answers from "
        "the handbook with the page.",
    ),
    DemoDataSet(
        "marketing",
        "lena@example.com",
        "Brand guide",
        "Our voice, logo, colours and typography, and the campaign checklist.",
        DataClassification.PUBLIC,
        "Campaign writer",
        "The campaign writer follows the brand guide's voice and rules and cites them.",
    ),
]


def _documents(demo: DemoDataSet) -> list[tuple[str, bytes]]:
    if demo.department == "hr":
        return [(HANDBOOK_NAME, text_pdf(HANDBOOK_PAGES))]
    return [(BRAND_GUIDE_NAME, BRAND_GUIDE.encode())]


def seed_grounding() -> list[str]:
    """The demo's data sets, documents and groundings; what was made, in words. Safe to run again:
    an unchanged file is not uploaded twice and an assistant already grounded is left alone."""
    made: list[str] = []
    for demo in DEMO_DATA_SETS:
        department = Department.objects.filter(slug=demo.department).first()
        owner = User.objects.filter(email=demo.owner).first()
        if department is None or owner is None:
            continue
        data_set = DataSet.objects.filter(department=department, name=demo.name).first()
        if data_set is None:
            spec = DataSetSpec(
                name=demo.name,
                description=demo.description,
                data_classification=demo.classification,
                owner=owner,
            )
            data_set = data_set_create(department=department, spec=spec, actor=owner)
        for name, data in _documents(demo):
            document_upload(data_set=data_set, name=name, data=data, actor=owner)
        assistant = (
            ModelDeployment.objects.live().filter(department=department, display_name=demo.assistant).first()
        )
        if assistant is None:
            continue
        grounded = Grounding.objects.current().filter(deployment=assistant, data_set=data_set).exists()
        if not grounded:
            grounding_request(deployment=assistant, data_set=data_set, purpose=demo.purpose, actor=owner)
        made.append(f"{data_set.name} behind {assistant.display_name}")
    return made
