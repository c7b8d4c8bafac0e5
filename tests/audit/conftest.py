import pytest

from audit.models import AuditEvent
from audit.services import audit_record
from org.models import Department
from tests.factories import make_department


@pytest.fixture
def write_events(db):
    """Write `count` events through the audit service, about one department."""

    departments: list[Department] = []

    def write(count: int) -> list[AuditEvent]:
        if not departments:
            departments.append(make_department(name="Marketing"))
        department = departments[0]
        return [
            audit_record(
                actor=None,
                verb="department.budget_changed",
                target=department,
                department=department,
                before={"monthly_budget": str(1000 + number)},
                after={"monthly_budget": str(1001 + number), "note": "Ünïcode ✓"},
            )
            for number in range(count)
        ]

    return write
