"""The Jinja2 environment of the public pages, with operator overrides.

An operator's ``[web] templates`` directory is searched before the built-in
templates (a ``ChoiceLoader``), so any page can be replaced by dropping a file
of the same name there — the tutorial's ``templateDirectory``. Autoescaping is
always on: a status of ``<script>`` is shown, never run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web
from markupsafe import Markup

from fingerplat.adapters.times import absolute_time, ago, as_utc, iso_utc
from fingerplat.domain.errors import InvalidInput
from fingerplat.domain.text import web_text

BUILTIN_TEMPLATES = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
PUBLIC_TEMPLATES: web.AppKey[jinja2.Environment] = web.AppKey(
    "fingerplat_public_templates", jinja2.Environment
)


class TemplateGeneration:
    """Counts template reloads: pages kept from older templates are never served."""

    def __init__(self) -> None:
        self.value = 0


TEMPLATE_GENERATION: web.AppKey[TemplateGeneration] = web.AppKey(
    "fingerplat_template_generation", TemplateGeneration
)


def relative_time(moment: datetime | None, now: datetime | None = None) -> str:
    """The ``ago`` filter: :func:`fingerplat.adapters.times.ago`, or a kept page's mark."""
    if moment is None:
        return ""
    mark = getattr(now, "mark", None)  # a kept page's PageClock (kept_pages.py)
    if mark is not None:
        return mark(moment)  # type: ignore[no-any-return]
    return ago(moment, now)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_micros(moment: datetime) -> int:
    """Microseconds since 1970 as an exact integer (no float rounding)."""
    delta = as_utc(moment) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class KeptMark(Markup):
    """A kept page's placeholder for a relative time (kept_pages.py): left as it is."""

    __slots__ = ()


def neutralise(value: object) -> object:
    """Jinja's ``finalize``: every value a template prints, before it is escaped.

    Stored text may hold control or bidi characters from older releases;
    they are shown (``^[``, ``\\u202e``) instead of reaching the browser, in
    the built-in templates and in operators' overrides alike, whatever
    filters a template applies (``|safe`` included: a control character is
    never markup). Only the kept-page marks pass untouched.
    """
    if not isinstance(value, str) or isinstance(value, KeptMark):
        return value
    shown = web_text(value)
    if shown is value:
        return value
    return Markup(shown) if isinstance(value, Markup) else shown  # noqa: S704 - was Markup; only controls changed


def make_loader(override_dir: str | None) -> jinja2.BaseLoader:
    builtin = jinja2.FileSystemLoader(str(BUILTIN_TEMPLATES))
    if not override_dir:
        return builtin
    directory = Path(override_dir)
    if not directory.is_dir():
        raise InvalidInput(f"web.templates: {directory} is not a directory")
    return jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(directory)), builtin])


def setup_templates(app: web.Application, override_dir: str | None) -> jinja2.Environment:
    env = aiohttp_jinja2.setup(
        app,
        loader=make_loader(override_dir),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        app_key=PUBLIC_TEMPLATES,
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=neutralise,
    )
    env.filters["ago"] = relative_time
    env.filters["abstime"] = absolute_time
    env.filters["isotime"] = iso_utc
    app[TEMPLATE_GENERATION] = TemplateGeneration()
    return env


def reload_templates(app: web.Application, override_dir: str | None) -> None:
    """Point the environment at a (new) override directory and forget compiled templates."""
    env = app[PUBLIC_TEMPLATES]
    env.loader = make_loader(override_dir)
    if env.cache is not None:
        env.cache.clear()
    app[TEMPLATE_GENERATION].value += 1
