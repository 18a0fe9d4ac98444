"""Screenshot of a report's first screen in headless Chromium (Debian's /usr/bin/chromium via Playwright).

Input: a run folder (its report/report.html) or a report.html. Output: a PNG of what a reader
sees first without scrolling, at a laptop-sized window (1280 x 900 by default).

    hybridtune report runs/demo
    python -m hybridtune.devtools.screenshot runs/demo docs/report_first_screen.png
"""
from __future__ import annotations

import argparse
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")


def screenshot(report: Path, out: Path, width: int = 1280, height: int = 900) -> Path:
    """Write the first `width` x `height` pixels of `report` (a report.html or a run folder) to `out`."""
    from playwright.sync_api import sync_playwright

    page_file = report / "report" / "report.html" if report.is_dir() else report
    if not page_file.is_file():
        raise SystemExit(f"{page_file}: no report; run `hybridtune report {report}` first")
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM}: missing; install Debian's chromium (`make browser`)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(page_file.resolve().as_uri())
            page.screenshot(path=str(out), full_page=False)
        finally:
            browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path, help="run folder or report.html")
    ap.add_argument("out", type=Path, help="PNG to write")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=900)
    a = ap.parse_args()
    print(screenshot(a.report, a.out, a.width, a.height))


if __name__ == "__main__":
    main()
