"""Screenshots of every page of `carbonlake serve`, for docs/service.md.

    .venv/bin/python scripts/service_screenshots.py [--out docs/screenshots]

Runs the service for real on a loopback port over a fresh workspace, uploads the
shipped sample through the page in headless Chromium (Debian's ``chromium``), adds a
year of site energy and business travel and one file that fails data quality through
the API, then photographs each page.
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

from carbonlake.service import create_app
from carbonlake.service.server import ServerThread
from carbonlake.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src" / "carbonlake" / "data" / "sample-activity-8000.csv"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KEY = "screenshot-key"
HEADER = [
    "activity_event_id",
    "asset_id",
    "geo",
    "origin_measurement_timestamp",
    "scope",
    "category",
    "activity",
    "source",
    "raw_data",
    "units",
]


def site_energy(path: Path) -> None:
    """A year of purchased electricity (scope 2) and business travel (scope 3)."""
    rng = random.Random(7)
    sites = {"site-berlin": "RFCE", "site-austin": "ERCT", "site-seattle": "NWPP"}
    travel = [
        ("Passenger Car A", "vehicle-mile", 300, 2500),
        ("Air Travel - Medium Haul (>= 300 miles, < 2300 miles)", "passenger-mile", 800, 6000),
        ("Intercity Rail (i.e. Amtrak) C", "passenger-mile", 100, 900),
    ]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        n = 0
        for month in range(1, 13):
            for site, region in sites.items():
                n += 1
                kwh = rng.randint(20_000, 60_000) * (1.3 if month in (1, 2, 7, 8) else 1.0)
                writer.writerow(
                    [
                        f"energy-{n:05d}",
                        site,
                        "[0,0]",
                        f"2024-{month:02d}",
                        2,
                        "grid-region-location-based",
                        region,
                        "metering",
                        round(kwh),
                        "kWh",
                    ]
                )
            for _ in range(12):
                n += 1
                activity, unit, low, high = rng.choice(travel)
                writer.writerow(
                    [
                        f"travel-{n:05d}",
                        "travel-desk",
                        "[0,0]",
                        f"2024-{month:02d}",
                        3,
                        "transport",
                        activity,
                        "expenses",
                        rng.randint(low, high),
                        unit,
                    ]
                )


def failing_file(path: Path) -> None:
    """Fifty sample rows with a repeated record id and a scope of 7."""
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()[:51]
    lines[5] = lines[5].replace(",1,mobile-combustion,", ",7,mobile-combustion,")
    lines.append(lines[10])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def wait_for(client: httpx.Client, execution_id: str) -> dict[str, object]:
    for _ in range(600):
        execution: dict[str, object] = client.get(f"/executions/{execution_id}").json()
        if execution["status"] not in ("QUEUED", "RUNNING"):
            return execution
        time.sleep(0.1)
    raise RuntimeError(f"execution {execution_id} did not finish")


def upload(client: httpx.Client, path: Path, key: str) -> dict[str, object]:
    with path.open("rb") as handle:
        response = client.post("/uploads", files={"file": (path.name, handle)}, data={"key": key})
    response.raise_for_status()
    return wait_for(client, response.json()["execution_id"])


def shoot(page: Page, out: Path, name: str) -> None:
    page.wait_for_timeout(400)  # let the charts and fonts settle
    page.screenshot(path=str(out / f"{name}.png"), full_page=True)
    print(f"wrote {out / name}.png")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: apt-get install -y chromium", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="carbonlake-screens-"))
    try:
        settings = load_settings(work / "ws", environ={"CARBONLAKE_SERVER__API_KEYS": KEY})
        app = create_app(settings)
        with ServerThread(app) as url, sync_playwright() as p:
            client = httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=30)
            energy = work / "site-energy-2024.csv"
            site_energy(energy)
            upload(client, energy, "2024/site-energy.csv")
            bad = work / "fleet-march.csv"
            failing_file(bad)
            upload(client, bad, "2026/march/fleet.csv")

            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1360, "height": 860})
            page.goto(f"{url}#key={KEY}")
            page.set_input_files("#file-input", str(SAMPLE))
            page.fill("#object-key", "2026/fleet/sample-activity-8000.csv")
            page.click("#upload-button")
            page.wait_for_selector("#run-status[data-status=SUCCEEDED]", timeout=60_000)
            page.wait_for_selector("#result-stats")
            page.wait_for_selector("#quality")
            shoot(page, args.out, "upload")

            failed = client.get("/executions", params={"status": "FAILED"}).json()["executions"]
            page.goto(f"{url}#/executions/{failed[0]['execution_id']}")
            page.wait_for_selector("#quality")
            shoot(page, args.out, "execution-dq-failed")

            page.goto(f"{url}#/executions")
            page.wait_for_selector("#executions tbody tr[data-status]")
            shoot(page, args.out, "executions")

            page.goto(f"{url}#/emissions")
            page.wait_for_selector("#emissions-table tbody tr[data-id]")
            page.wait_for_selector(".chart[data-by=month] svg")
            shoot(page, args.out, "emissions")

            page.click("#emissions-table tbody tr[data-id]")
            page.wait_for_selector("#verify[data-ok]")
            shoot(page, args.out, "record")

            page.goto(f"{url}#/factors")
            page.wait_for_selector("#factors tbody tr[data-id]")
            page.fill("#factor-search", "diesel")
            page.wait_for_timeout(500)
            shoot(page, args.out, "factors")
            browser.close()
            client.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
