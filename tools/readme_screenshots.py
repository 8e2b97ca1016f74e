"""The README's admin screenshots, taken from a running product (`make run`) at 1366 px:

    ADMIN_PASSWORD=pw-for-shots make run          # in another terminal, on the demo data
    .venv/bin/python tools/readme_screenshots.py --password pw-for-shots

Writes docs/screenshots/dashboard.png, order.png (an order's page, with the stock its lines
hold) and order-timeline.png. Drives Debian's Chromium (/usr/bin/chromium) with Playwright."""

import argparse
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
VIEWPORT = {"width": 1366, "height": 900}
ORDER_REFERENCE = "DEMO-1001"  # seed_demo: open, two lines, raised then reduced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password", required=True)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        page = browser.new_page(viewport=VIEWPORT, base_url=args.base_url)
        page.goto("/admin/login/")
        page.fill("#id_username", args.username)
        page.fill("#id_password", args.password)
        page.click('input[type="submit"]')
        expect(page.locator("#dashboard")).to_be_visible()
        page.screenshot(path=args.out / "dashboard.png", full_page=True)

        page.goto(f"/admin/orders/order/?q={ORDER_REFERENCE}")
        page.locator("#result_list tbody tr th a").first.click()
        expect(page.locator("#order-stock")).to_be_visible()
        page.screenshot(path=args.out / "order.png", full_page=True)

        page.get_by_role("link", name="Timeline", exact=True).click()
        expect(page.locator("#timeline")).to_be_visible()
        page.screenshot(path=args.out / "order-timeline.png", full_page=True)
        browser.close()
    for name in ("dashboard", "order", "order-timeline"):
        print(args.out / f"{name}.png")


if __name__ == "__main__":
    main()
