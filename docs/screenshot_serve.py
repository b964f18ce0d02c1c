"""Make docs/serve-page.png: the web page after cartoonizing a photo, as headless Chromium shows it.

    make demo                                   # trains the styles 'pastel' and 'noir' (a few minutes)
    .venv/bin/python docs/screenshot_serve.py   # the page with 'pastel' chosen

The service runs in this process on a free 127.0.0.1 port with the trained styles of
``--styles-dir`` (default ``checkpoints/``, where ``make demo`` writes them; no trained style
ships with the repository, so the screenshot shows what a newcomer's first style looks like),
``--style`` chosen in the page at full strength. The photo is scikit-image's ``astronaut`` (NASA, public
domain). Needs chromium and chromedriver (Debian packages).
"""
from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "docs" / "serve-page.png"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--styles-dir", default="checkpoints", show_default=True,
              help="trained styles to serve (make demo writes 'pastel' and 'noir' there)")
@click.option("--style", default="pastel", show_default=True, help="the style chosen in the page")
def main(styles_dir: str, style: str) -> int:
    """Write docs/serve-page.png from the page cartoonizing the astronaut with STYLE."""
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from skimage import data

    from serving.app import create_app
    from serving.config import ServeConfig
    from tests.serving import ServerThread
    from tests.serving.browser import Chromium, chromium_problem

    problem = chromium_problem()
    if problem:
        raise click.ClickException(problem)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photo = tmp / "astronaut.png"
        Image.fromarray(data.astronaut()).resize((320, 320), Image.LANCZOS).save(photo)
        app = create_app(ServeConfig(styles_dir=Path(styles_dir), default_style=style, device="cpu",
                                      tmp_dir=tmp))
        with ServerThread(app) as srv, Chromium() as driver:
            driver.set_window_size(1200, 760)
            driver.get(srv.url + "/")
            wait = WebDriverWait(driver, 120)
            wait.until(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
            driver.find_element(By.ID, "file").send_keys(str(photo))
            driver.find_element(By.ID, "go").click()
            wait.until(lambda d: d.execute_script(
                "const i = document.getElementById('after'); return i && i.dataset.ready === '1'"))
            png = driver.get_screenshot_as_png()
    im = Image.open(io.BytesIO(png)).convert("RGB")
    # a 256-colour palette keeps the file small; the page is mostly flat colour
    im.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(OUT, optimize=True)
    click.echo(f"wrote {OUT} ({OUT.stat().st_size // 1024} KB, {im.width}x{im.height}), style '{style}'")
    return 0


if __name__ == "__main__":
    main()
