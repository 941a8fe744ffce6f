"""The web page's GHG inventory in real headless Chromium against the service on loopback:
both scope 2 methods side by side (never added), biogenic CO2, coverage, the charts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from carbonlake.cli import cli
from carbonlake.service import create_app
from carbonlake.service.server import ServerThread
from carbonlake.settings import load_settings

from .test_inventory import BIOGENIC, HEADER, LOCATION, MARKET, ROWS, SCOPE_1, SCOPE_3, add
from .test_service_browser import CHROMIUM, CHROMIUM_ARGS, KEY, MISSING

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=MISSING)

if CHROMIUM.exists():
    from playwright.sync_api import Page, expect, sync_playwright


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("report-browser")
    source = tmp / "activity.csv"
    source.write_text(HEADER + "\n" + "\n".join(ROWS) + "\n", encoding="utf-8")
    workspace = tmp / "ws"
    ran = CliRunner().invoke(cli, ["run", str(source), "--workspace", str(workspace)])
    assert ran.exit_code == 1  # two of the records cannot be calculated, by design
    app = create_app(load_settings(Path(workspace), environ={"CARBONLAKE_SERVER__API_KEYS": KEY}))
    with ServerThread(app) as url:
        yield url


@pytest.fixture
def page(server: str) -> Iterator[Page]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="en-US")
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{server}#key={KEY}")
        yield page
        browser.close()
        assert not errors, errors


def shown(value: object) -> str:
    return f"{float(value):,.3f}"  # type: ignore[arg-type]


def test_inventory_page_shows_both_methods_biogenic_and_coverage(page: Page) -> None:
    page.click("nav a[data-page=report]")
    table = page.locator("#inventory")
    expect(table.locator("tr[data-total=scope_2_location_based]")).to_contain_text(
        shown(LOCATION["ar5"])
    )
    expect(table.locator("tr[data-total=scope_2_market_based]")).to_contain_text(
        shown(MARKET["ar5"])
    )
    expect(table.locator("tr[data-total=total_location_based]")).to_contain_text(
        shown(add(SCOPE_1, LOCATION, SCOPE_3)["ar5"])
    )
    expect(table.locator("tr[data-total=total_market_based]")).to_contain_text(
        shown(add(SCOPE_1, MARKET, SCOPE_3)["ar5"])
    )
    expect(table.locator("tr[data-total=scope_3_category_6]")).to_contain_text("Business travel")
    expect(table.locator("tr[data-total=biogenic_co2_tonnes]")).to_contain_text(shown(BIOGENIC))
    expect(page.locator("#report-stats")).to_contain_text("Not calculated")
    expect(page.locator("#report-coverage li[data-reason=scope_mismatch]")).to_have_count(1)
    expect(page.locator("#report-coverage li[data-reason=units_invalid]")).to_have_count(1)
    # Charts: four scope bars; per month a location-based and a market-based bar.
    expect(page.locator("#report-scopes svg rect")).to_have_count(4)
    expect(page.locator("#paired-chart rect[data-method=location]")).to_have_count(5)
    expect(page.locator("#paired-chart rect[data-method=market]")).to_have_count(5)
    # AR4 changes the totals and the address keeps the choice.
    page.select_option("#report-gwp", "ar4")
    expect(table.locator("tr[data-total=total_market_based]")).to_contain_text(
        shown(add(SCOPE_1, MARKET, SCOPE_3)["ar4"])
    )
    assert "gwp=ar4" in page.evaluate("location.hash")
