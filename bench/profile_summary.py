"""Where a server's CPU goes, by concern: a summary of `bench/api.py --profile` output (py-spy raw stacks).

Each sample is charged to the concern of the frame nearest its leaf that belongs to one (the JSON encoder
under the presenter is "present"; SQLite's execute under the ORM's flush is "driver"), so the shares add
up to 100 %. With `--cpu-ms` (the CPU per request bench/api.py printed for that run) each share is also
given in milliseconds per request, which is what to compare with the minimal app's total.

    .venv/bin/python bench/api.py --profile /tmp/prof --profile-args "--rate 250 --gil"
    .venv/bin/python bench/profile_summary.py /tmp/prof/gateway-post.txt --cpu-ms 7.6
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

#: (concern, path fragments of its frames). Checked leaf to root; the first frame that matches decides.
CONCERNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("image check", ("app/jobs/images.py", "PIL/")),
    ("db driver", ("aiosqlite/", "asyncpg/", "sqlite3/", "sqlalchemy/dialects/")),
    ("orm", ("sqlalchemy/orm/",)),
    ("sqlalchemy core", ("sqlalchemy/",)),
    ("validation", ("pydantic", "app/jobs/intake.py", "app/providers/", "app/jobs/fingerprint.py")),
    ("present", ("app/jobs/presenter.py", "json/", "app/jobs/schemas.py")),
    ("logging", ("logging/", "app/logsafety.py")),
    ("domain", ("app/jobs/", "app/tenants/", "app/db/")),
    ("http framework", ("starlette/", "fastapi/", "uvicorn/", "httptools", "app/serving.py", "app/api/")),
    ("event loop", ("asyncio/", "uvloop", "concurrent/futures/", "threading.py")),
)
_LOCATION = re.compile(r"\(([^()]*)\)$")


def concern(stack: list[str]) -> str:
    for frame in reversed(stack):
        found = _LOCATION.search(frame)
        where = found.group(1) if found else frame
        for name, fragments in CONCERNS:
            if any(fragment in where for fragment in fragments):
                return name
    return "other"


def summarize(path: Path) -> tuple[Counter[str], int]:
    shares: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            shares[concern(stack.split(";"))] += int(count)
    return shares, sum(shares.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path, nargs="+", help="py-spy raw output (DIR/<side>-<route>.txt)")
    parser.add_argument("--cpu-ms", type=float, nargs="*", help="CPU ms per request of each profile's run")
    args = parser.parse_args()
    for index, path in enumerate(args.profile):
        shares, total = summarize(path)
        cpu = args.cpu_ms[index] if args.cpu_ms and index < len(args.cpu_ms) else None
        print(f"{path.name}: {total} samples" + (f", {cpu} ms CPU per request" if cpu else ""))
        for name, samples in shares.most_common():
            share = samples / total
            ms = f"  {share * cpu:5.2f} ms" if cpu else ""
            print(f"  {name:<16} {100 * share:5.1f} %{ms}")


if __name__ == "__main__":
    main()
