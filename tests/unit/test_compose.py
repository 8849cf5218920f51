"""docker-compose.yml cannot be started here (no Docker engine): parse it and check that it
describes the deployment and that every command it runs exists in this project."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]


def test_every_part_of_the_deployment_is_there_with_a_health_check() -> None:
    assert {"redis", "postgres", "web", "worker", "beat", "flower"} <= set(SERVICES)
    for name in ("redis", "postgres", "web", "worker", "beat", "flower"):
        assert SERVICES[name].get("healthcheck", {}).get("test"), f"{name} has no health check"


def test_services_use_redis_and_postgres() -> None:
    env = SERVICES["web"]["environment"]
    assert env["NUMBERS_BROKER_URL"].startswith("redis://redis:")
    assert env["NUMBERS_DATABASE_URL"].startswith("postgresql://")
    assert SERVICES["worker"]["depends_on"]["redis"]["condition"] == "service_healthy"


@pytest.mark.parametrize(
    "service", [s for s in SERVICES if SERVICES[s].get("command", [""])[0] == "numbers"]
)
def test_numbers_commands_exist_with_their_options(service: str) -> None:
    args = SERVICES[service]["command"][1:]
    result = subprocess.run(
        [sys.executable, "-m", "cli", *args, "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_web_runs_the_app_factory_under_gunicorn() -> None:
    command = SERVICES["web"]["command"]
    assert command[0] == "gunicorn"
    assert shutil.which("gunicorn", path=str(Path(sys.executable).parent)) is not None
    module, _, call = command[-1].partition(":")
    factory = getattr(importlib.import_module(module), call.removesuffix("()"))
    assert factory().name == "webhooks.app"


def test_flower_and_celery_find_the_project_app() -> None:
    command = SERVICES["flower"]["command"]
    assert command[:3] == ["celery", "-A", "worker"] and command[3] == "flower"
    importlib.import_module("flower")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "celery"), "-A", "worker", "inspect", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
