"""The test suite's settings: the project's one settings module, read as on a developer's machine.

The suite runs in development mode with the local emulator (as `make run` does) unless the
environment says otherwise. These defaults must be in place before Django first reads its
settings, which pytest-django does before any conftest.py is imported: hence a module that
pytest-django loads as the settings module, not a fixture.
"""

import os

os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("AZURE_MODE", "emulator")
# The processes the suite starts (workers, servers, commands) inherit the variables above and
# read the project's settings themselves: they need not find this module.
os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"

from portal.settings import *  # noqa: F403

# Beside the test database: a test run never overwrites the key that `make run` prints.
DEMO_API_KEY_FILE = VAR_DIR / "test-demo-api-key"  # noqa: F405
