"""Safe defaults: production unless the environment says development, and no emulator or
development secret key that the environment did not ask for."""

import os
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
# What a deployment's environment decides; the suite's own values must not leak into these runs.
DECIDED_BY_THE_ENVIRONMENT = {"DEBUG", "SECRET_KEY", "AZURE_MODE", "ALLOWED_HOSTS", "DJANGO_SETTINGS_MODULE"}
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "a-production-secret-key-of-more-than-fifty-characters-0123456789-abcdef",
    "ALLOWED_HOSTS": "switchyard.example.com",
}


def run(arguments: list[str], **environment: str) -> subprocess.CompletedProcess[str]:
    inherited = {name: value for name, value in os.environ.items() if name not in DECIDED_BY_THE_ENVIRONMENT}
    return subprocess.run(
        [sys.executable, *arguments],
        env={**inherited, "DJANGO_SETTINGS_MODULE": "portal.settings", **environment},
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def settings_value(name: str, **environment: str) -> str:
    started = run(["-c", f"from django.conf import settings; print(settings.{name})"], **environment)
    assert started.returncode == 0, started.stderr
    return started.stdout.strip()


def test_debug_is_off_unless_the_environment_turns_it_on():
    assert settings_value("DEBUG", SECRET_KEY=PRODUCTION["SECRET_KEY"], AZURE_MODE="azure") == "False"


def test_production_without_azure_mode_refuses_to_start_and_says_what_to_set():
    started = run(["-c", "from django.conf import settings; settings.DEBUG"], **PRODUCTION)

    assert started.returncode != 0
    assert "Set AZURE_MODE=azure for real Azure, or AZURE_MODE=emulator for the local emulator" in (
        started.stderr
    )


def test_an_empty_environment_refuses_to_start_and_names_everything_to_set():
    started = run(["-c", "from django.conf import settings; settings.DEBUG"])

    assert started.returncode != 0
    assert "SECRET_KEY" in started.stderr
    assert "AZURE_MODE" in started.stderr
    assert "DEBUG=true" in started.stderr  # how to say "this is development"


def test_development_gets_the_emulator_and_the_development_key_when_it_says_so():
    assert settings_value("AZURE_MODE", DEBUG="true") == "emulator"
    assert settings_value("SECRET_KEY", DEBUG="true").startswith("django-insecure-")
    assert settings_value("AZURE_MODE", DEBUG="true", AZURE_MODE="azure") == "azure"


def test_the_deploy_check_flags_the_emulator_in_production():
    emulated = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **PRODUCTION, AZURE_MODE="emulator"
    )
    real = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **PRODUCTION, AZURE_MODE="azure"
    )

    assert emulated.returncode != 0
    assert "AZURE_MODE=emulator: Switchyard talks to the local emulator, not Azure" in emulated.stderr
    assert real.returncode == 0, real.stderr


def test_the_deploy_check_refuses_password_sign_in_beside_entra():
    allowed = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        **PRODUCTION,
        AZURE_MODE="azure",
        PASSWORD_SIGN_IN_WITH_ENTRA="true",
    )

    assert allowed.returncode != 0
    assert "PASSWORD_SIGN_IN_WITH_ENTRA is set" in allowed.stderr
