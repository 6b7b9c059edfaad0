"""Build step only (the project is declared in pyproject.toml): the wheel carries `migrations/` inside the
package, as `app/_migrations`, so an installed gateway can migrate without the repository
(app/db/migrate.py looks there first). The repository keeps `migrations/` at its top; an editable install
reads it in place."""

from __future__ import annotations

from setuptools import setup
from setuptools.command.build_py import build_py

#: Packages of the wheel that are directories elsewhere in the repository.
MAPPED = {"app._migrations": "migrations", "app._migrations.versions": "migrations/versions"}


class BuildPy(build_py):
    """build_py with the migrations mapped into the package (for this command only: the distribution's
    own package list, which an editable install follows, stays `app*`)."""

    def finalize_options(self) -> None:
        super().finalize_options()
        self.packages = [*(self.packages or ()), *MAPPED]
        self.package_dir = {**self.package_dir, **MAPPED}
        self.package_data = {**self.package_data, "app._migrations": ["*.mako"]}


setup(cmdclass={"build_py": BuildPy})
