"""The built wheel, installed outside the repository, runs the gateway: `migrate`, `serve`, `worker`.

The wheel is built from a copy of the sources the sdist would hold (setup.py maps `migrations/` into the
package as `app/_migrations`), with the dev venv's pinned setuptools and no download. It goes into a fresh
venv in the test's tmp dir with `--no-deps`; that venv sees the dev venv's site-packages for the
dependencies through a `.pth` path entry, which adds the directory but runs none of its `.pth` files, so
the editable install of the checkout stays invisible. Every command runs from an empty working directory
with no PYTHONPATH: what it imports and migrates with is the wheel's, and the test checks that it is.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.cli import main
from tests.conftest import CLIP_CACHE, REPO, free_port

pytestmark = [pytest.mark.slow, pytest.mark.one_database(reason="no sql")]

#: What the sdist holds (MANIFEST.in), hence all a wheel can be built from.
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE", "app", "migrations")
UV = Path(sys.executable).with_name("uv")
KEY = "wg_package-test-key-0123456789abcdef0123"
KEYS = f"package:{KEY}"
AUTH = {"Authorization": f"Bearer {KEY}"}


def _run(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The venv holding the wheel; returns its bin/ directory."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=ignore)
        else:
            shutil.copy2(REPO / name, source / name)
    dist = tmp / "dist"
    _run(UV, "build", "--wheel", "--no-build-isolation", "--python", sys.executable, "-o", dist, source)
    (wheel,) = dist.glob("wan_gateway-*.whl")
    venv = tmp / "venv"
    _run(UV, "venv", "--quiet", "--python", sys.executable, venv)
    python = venv / "bin" / "python"
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    (site / "dev-venv-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # Compiled at install time, as pip does: the suite's environment may forbid writing bytecode later,
    # and every command would compile the gateway from source again.
    _run(
        UV,
        "pip",
        "install",
        "--quiet",
        "--offline",
        "--no-deps",
        "--compile-bytecode",
        "--python",
        python,
        wheel,
    )
    return venv / "bin"


@pytest.fixture
def env(tmp_path: Path, installed: Path) -> dict[str, str]:
    """A child's environment: the venv first on PATH, the repository nowhere, everything under tmp_path."""
    keep = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return {
        **keep,
        "PATH": f"{installed}{os.pathsep}{keep.get('PATH', '')}",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}",
        "OUTPUT_DIR": str(tmp_path / "output"),
        "SANDBOX_STATE_PATH": str(tmp_path / "sandbox.db"),
        "SANDBOX_CLIP_CACHE_DIR": str(CLIP_CACHE),
        "SANDBOX_CLIP_CAPTIONS": "false",  # one cached clip per geometry (tests/conftest.py)
        "SANDBOX_CLIP_PICTURES": "false",
        "DASHSCOPE_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "LOG_LEVEL": "INFO",
    }


class _Child:
    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)

    def answers(self, url: str, *, within: float = 90) -> httpx.Response:  # a loaded CI machine
        deadline = time.monotonic() + within
        while True:
            assert self.proc.poll() is None, f"exited {self.proc.returncode}:\n{self.log.read_text()}"
            try:
                return httpx.get(url, timeout=5)
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{url} never answered:\n{self.log.read_text()}") from None
                time.sleep(0.05)  # polling a port for a condition, with a deadline: no fixed wait

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@pytest.fixture
def children() -> Iterator[list[_Child]]:
    started: list[_Child] = []
    yield started
    for child in started:
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.wait(timeout=10)


def test_the_wheel_migrates_serves_and_works_outside_the_repo(
    tmp_path: Path, installed: Path, env: dict[str, str], children: list[_Child]
) -> None:
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    gateway = str(installed / "wan-gateway")

    # What runs is the wheel's: the package and its migrations live in the venv, not in the checkout.
    where = json.loads(
        _run(
            installed / "python",
            "-c",
            "import json, sys, app, app.db.migrate as m; "
            "print(json.dumps([app.__file__, str(m.migrations_dir()), sys.path]))",
            env=env,
            cwd=cwd,
        )
    )
    venv = str(installed.parent)
    assert where[0].startswith(venv) and where[1].startswith(venv), where
    assert where[1].endswith("app/_migrations"), where
    assert not [p for p in where[2] if p and Path(p).resolve() == REPO.resolve()], where[2]

    # Without migrations, --no-migrate says what to do (not "no such table"), and creates no database.
    refused = subprocess.run(
        [gateway, "serve", "--no-migrate"], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0
    assert "is not migrated" in refused.stderr and "wan-gateway migrate" in refused.stderr, refused.stderr
    assert "no such table" not in refused.stderr
    assert not (tmp_path / "gateway.db").exists()

    help_text = _run(gateway, "serve", "--help", env=env, cwd=cwd)
    assert "default: $HOST, else 127.0.0.1" in help_text and "default: $PORT, else 8000" in help_text

    assert "database at head" in _run(gateway, "migrate", env=env, cwd=cwd)

    # serve (on HOST/PORT from the environment) and a worker (with its health port), side by side.
    port, health_port = free_port(), free_port()
    serve = _Child(
        [gateway, "serve", "--no-migrate"],
        {**env, "HOST": "127.0.0.1", "PORT": str(port), "WORKERS_ENABLED": "false", "GATEWAY_API_KEYS": KEYS},
        cwd,
        tmp_path / "serve.log",
    )
    children.append(serve)
    worker = _Child(
        [gateway, "worker", "--no-migrate", "--health-port", str(health_port)],
        env,
        cwd,
        tmp_path / "worker.log",
    )
    children.append(worker)

    base = f"http://127.0.0.1:{port}"
    assert serve.answers(f"{base}/healthz").status_code == 200
    docs = httpx.get(f"{base}/docs", timeout=5)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    jobs = httpx.get(f"{base}/v1/jobs", headers=AUTH, timeout=5)  # a query on the migrated schema
    assert jobs.status_code == 200 and jobs.json()["data"] == [], jobs.text
    models = httpx.get(f"{base}/v1/models", headers=AUTH, timeout=5)
    if models.status_code != 404:  # the model registry's route (issue 13), once it is there
        assert models.status_code == 200 and models.json()["data"], models.text
    assert worker.answers(f"http://127.0.0.1:{health_port}/healthz").status_code == 200

    assert worker.stop() == 0, worker.log.read_text()
    assert "worker stopped" in worker.log.read_text()
    assert serve.stop() in (0, -signal.SIGTERM), serve.log.read_text()  # uvicorn re-raises the signal
    for log in (serve.log, worker.log):
        assert "Traceback" not in log.read_text(), log.read_text()


def test_openapi_prints_the_document_unless_told_where_to_write_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    main(["openapi"])
    printed = capsys.readouterr()
    assert json.loads(printed.out) == json.loads((REPO / "openapi" / "openapi.json").read_text())
    assert not list(tmp_path.iterdir()), "openapi wrote into the working directory"
    main(["openapi", "--output", "api/openapi.json"])
    assert (tmp_path / "api" / "openapi.json").read_text() == printed.out
    assert capsys.readouterr().out == ""  # `wrote …` goes to stderr
