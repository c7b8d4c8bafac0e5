"""Retrieval for a grounded turn (chat or gateway): the question embedded, a hybrid query on the
zone's passages index filtered on the server by the data sets the assistant is grounded on (its
active groundings, read here, never anything the caller sends)."""

from collections.abc import Sequence
from dataclasses import dataclass

from grounding.models import DataSet
from provisioning.models import ModelDeployment


@dataclass(frozen=True)
class Passage:
    number: int  # its citation number in this answer: [1], [2], ...
    id: str  # the chunk id in the index
    document_id: int
    document_name: str
    data_set_id: int
    data_set_name: str
    department_name: str  # whose documents answered
    page: int | None  # page, slide or sheet; None when the format has none
    heading: str
    text: str
    score: float


def grounded_data_sets(deployment: ModelDeployment) -> list[DataSet]:
    """The data sets the assistant is grounded on now (active groundings): read at every turn, so
    removing one takes effect on the next turn."""
    raise NotImplementedError  # CONTRACT: the ingestion helper writes this


async def retrieve(
    *,
    deployment: ModelDeployment,
    data_sets: Sequence[DataSet],
    question: str,
    paying_department_id: int,
    user_id: int | None,
    source: str,
) -> list[Passage]:
    """The top passages (settings.GROUNDING_TOP_PASSAGES) that answer `question`, best first, only
    from `data_sets`; an empty list when nothing is relevant. The question's embedding tokens are
    metered as a usage record on the zone's embeddings deployment for the paying department."""
    raise NotImplementedError  # CONTRACT: the ingestion helper writes this
