"""Screenshots of every admin UI page, at phone and desktop widths, into docs/screenshots/.

Run from the checkout after `pip install -e '.[test]'` (Playwright drives
Debian's /usr/bin/chromium; no browser is downloaded):

    .venv/bin/python scripts/screenshots.py

It starts a real `fingerplat serve` on a throwaway SQLite database, fills it
through the CLI (two tenants, a few users with statuses and a plan, a tenant
admin, a token), signs in as a platform admin and saves one PNG per page and
width. Re-run it after changing a template so the pictures stay current.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.async_api import async_playwright

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
FINGERPLAT = str(Path(sys.executable).with_name("fingerplat"))
CHROMIUM = os.environ.get("FINGERPLAT_TEST_CHROMIUM", "/usr/bin/chromium")
WIDTHS = {"phone": (390, 844), "desktop": (1280, 860)}
PASSWORD = "correct-horse-battery"

PAGES = {
    "tenants": "/admin/tenants",
    "tenant": "/admin/tenants/acme",
    "users": "/admin/tenants/acme/users",
    "user": "/admin/tenants/acme/users/carol",
    "new-user": "/admin/tenants/acme/new-user",
    "tokens": "/admin/tenants/acme/tokens",
    "audit": "/admin/audit",
    "admins": "/admin/admins",
}


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    subprocess.run([FINGERPLAT, *args], env=env, input=stdin, text=True, check=True,  # noqa: S603
                   capture_output=True)


def seed(env: dict[str, str]) -> None:
    cli(env, "tenant", "add", "acme", "--name", "ACME Corp", "--domain", "acme.example")
    for name, full, status in (("carol", "Carol Acme", "at the anvil factory"),
                               ("dave", "Dave Coyote", "chasing a roadrunner"),
                               ("erin", "Erin Engineer", "in the lab until 3")):
        cli(env, "user", "add", name, "--tenant", "acme", "--full-name", full,
            "--office", "B-12")
        cli(env, "user", "set", name, status, "--tenant", "acme")
    cli(env, "user", "set", "carol", "back from lunch", "--tenant", "acme")
    cli(env, "user", "plan", "carol", "-", "--tenant", "acme",
        stdin="Ship the rocket skates.\nReview the anvil drop test.\n")
    cli(env, "user", "add", "alice", "--full-name", "Alice Liddell")
    cli(env, "user", "set", "alice", "down the rabbit hole")
    cli(env, "token", "create", "--tenant", "acme", "--user", "carol", "--expires", "30")
    cli(env, "admin", "add", "root", stdin=PASSWORD + "\n")
    cli(env, "admin", "add", "acme-ops", "--tenant", "acme", stdin=PASSWORD + "\n")


async def shoot(base: str) -> list[Path]:
    saved = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                           args=["--no-sandbox", "--disable-gpu"])
        for label, (width, height) in WIDTHS.items():
            context = await browser.new_context(viewport={"width": width, "height": height},
                                                device_scale_factor=1)
            page = await context.new_page()
            await page.goto(base + "/admin/login")
            saved.append(OUT / f"login-{label}.png")
            await page.screenshot(path=saved[-1], full_page=True)
            await page.fill("input[name=name]", "root")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_load_state()
            for name, path in PAGES.items():
                response = await page.goto(base + path)
                assert response is not None and response.ok, (path, response)
                saved.append(OUT / f"{name}-{label}.png")
                await page.screenshot(path=saved[-1], full_page=True)
            await context.close()
        await browser.close()
    return saved


async def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fingerplat-shots-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FINGERPLAT_")}
        env["FINGERPLAT_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp}/shots.db"
        seed(env)
        server = await asyncio.create_subprocess_exec(
            FINGERPLAT, "serve", "--finger", "127.0.0.1:0", "--setter", "127.0.0.1:0",
            "--web", "127.0.0.1:0", env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)
        try:
            assert server.stdout is not None
            base = None
            while True:
                line = (await asyncio.wait_for(server.stdout.readline(), 60)).decode()
                if not line:
                    raise SystemExit("serve stopped before it was ready")
                found = re.search(r"web listening on (http://\S+)", line)
                if found:
                    base = found.group(1)
                if line.strip() == "ready":
                    break
            assert base is not None
            for path in await shoot(base):
                print(path.relative_to(ROOT))
        finally:
            server.terminate()
            await server.wait()


if __name__ == "__main__":
    asyncio.run(main())
