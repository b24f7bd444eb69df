"""Package layout glue: the click app lives in cli/ and the migrations in alembic/.

The project layout keeps them at the top level; in the wheel they become the
importable packages ``fingerplat_cli`` and ``fingerplat_migrations``. The
``alembic/`` folder deliberately has no ``__init__.py`` so that it can never
shadow the alembic library when tests run from the repository root.
"""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["fingerplat", "fingerplat.*"]),
        *find_packages(where="cli", include=["fingerplat_cli", "fingerplat_cli.*"]),
        "fingerplat_migrations",
        "fingerplat_migrations.versions",
    ],
    package_dir={
        "fingerplat_cli": "cli/fingerplat_cli",
        "fingerplat_migrations": "alembic",
    },
)
