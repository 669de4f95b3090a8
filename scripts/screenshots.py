"""Screenshots of the dashboard at desktop and phone widths, from a real server on demo data.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Builds a demo database (two sites, ~60 days of traffic written through the engine with a moving
clock, events and kudos), sets the dashboard password, starts `tinytrack serve` on a free
loopback port and drives Debian's Chromium (/usr/bin/chromium) with Playwright: it logs in and
captures the sites list, a site page, its settings, the API keys page and the public page. It
also reports any element wider than the viewport (something overflowing), and exits 1 if so.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tinytrack  # noqa: E402

PASSWORD = "demo-password"
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
AGENTS = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.0 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
]
IPS = ["8.8.8.8", "81.2.69.142", "85.214.132.117", "200.147.67.142", "1.1.1.1", "133.242.0.3"]
REFERRERS = [None, None, "https://www.google.com/", "https://news.ycombinator.com/",
             "https://mastodon.social/@someone", "https://duckduckgo.com/"]  # fmt: skip
PATHS = ["/", "/blog/", "/blog/sqlite-is-enough", "/blog/privacy-first", "/about", "/now"]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def build(db: Path) -> int:
    rng = random.Random(4)
    real_now = time.time()
    fake = Clock(real_now - 60 * 86400)
    async with tinytrack.open(db, clock=fake) as engine:
        site = await engine.create_site("https://blog.example.com", label="My blog", public=True)
        await engine.create_site("https://docs.example.com", label="Docs")
        await engine.create_key("read_only", name="grafana")
        for day in range(61):
            fake.now = real_now - (60 - day) * 86400
            visits = int(40 + 25 * (day / 60) + rng.randint(0, 20))
            hits = []
            for _ in range(visits):
                who = rng.randrange(300)
                for step in range(rng.choice([1, 1, 2, 3])):
                    hits.append(
                        tinytrack.HitIn(
                            path=rng.choice(PATHS),
                            referrer=rng.choice(REFERRERS) if step == 0 else None,
                            user_agent=AGENTS[who % len(AGENTS)],
                            ip_address=IPS[who % len(IPS)],
                            visitor_id=f"visitor-{who}",
                        )
                    )
            await engine.record_hits(site.id, hits)
            for _ in range(rng.randint(0, 6)):
                await engine.record_event(
                    site.id,
                    tinytrack.EventIn(
                        event="file.download", value=rng.choice(["guide.pdf", "cv.pdf"])
                    ),
                )
            if rng.random() < 0.3:
                await engine.create_kudo(site.id, tinytrack.KudoIn(path=rng.choice(PATHS[2:4])))
        fake.now = real_now
        await engine.set_owner_password(PASSWORD)
        await engine.build_journeys()
        return site.id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def overflowing(page: object) -> list[str]:
    return page.evaluate(  # type: ignore[attr-defined, no-any-return]
        """() => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
            .map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : ''))
            .slice(0, 10)"""
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "demo.db"
        site_id = asyncio.run(build(db))
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "tinytrack", "serve", "--db", str(db), "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        problems: list[str] = []
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(base + "/healthz", timeout=1).read()
                    break
                except OSError:
                    time.sleep(0.1)
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path="/usr/bin/chromium",
                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--no-first-run", "--disable-sync"],
                )  # fmt: skip
                for name, (width, height) in WIDTHS.items():
                    context = browser.new_context(viewport={"width": width, "height": height})
                    page = context.new_page()
                    page.goto(base + "/dashboard/login")
                    page.fill("#password", PASSWORD)
                    page.click("button[type=submit]")
                    page.wait_for_url(base + "/dashboard")
                    shots = {
                        "sites": "/dashboard",
                        "site": f"/dashboard/sites/{site_id}",
                        "settings": f"/dashboard/sites/{site_id}/settings",
                        "keys": "/dashboard/keys",
                    }
                    for shot, path in shots.items():
                        page.goto(base + path)
                        page.wait_for_load_state("networkidle")
                        page.screenshot(path=str(args.out / f"{shot}-{name}.png"), full_page=True)
                        problems += [f"{shot}-{name}: {e}" for e in overflowing(page)]
                    page.goto(base + f"/dashboard/sites/{site_id}/settings")
                    share = page.get_attribute("#share", "href")
                    public = browser.new_context(viewport={"width": width, "height": height})
                    anon = public.new_page()
                    anon.goto(str(share))
                    anon.wait_for_load_state("networkidle")
                    anon.screenshot(path=str(args.out / f"public-{name}.png"), full_page=True)
                    problems += [f"public-{name}: {e}" for e in overflowing(anon)]
                    public.close()
                    context.close()
                browser.close()
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    for line in problems:
        print("overflow:", line)
    print(f"screenshots in {args.out}: {sorted(p.name for p in args.out.glob('*.png'))}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
