import os
import subprocess
import sys

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "production-settings-test-only-0123456789-0123456789-0123456789",
    "ALLOWED_HOSTS": "switchyard.example.com",
    "DJANGO_SETTINGS_MODULE": "portal.settings",
}


def test_pages_find_their_partials_with_production_settings():
    # Production caches compiled templates; every page that includes a partial
    # ("reports/parts.html#month-picker") must still find it there.
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.template.loader import get_template; "
            "get_template('reports/parts.html#month-picker'); print('found')",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **PRODUCTION},
    )
    assert found.stdout.strip() == "found", found.stderr[-500:]
