"""Make docs/serve-page.png: the web page after cartoonizing a photo, as headless Chromium shows it.

    .venv/bin/python docs/screenshot_serve.py

The service runs in this process on a free 127.0.0.1 port with one style: a seeded random
generator of the white-box architecture (no trained style ships with the repository), so the
"after" picture shows the page, not a trained style's look. The photo is scikit-image's
``astronaut`` (NASA, public domain). Needs chromium and chromedriver (Debian packages).
"""
from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "docs" / "serve-page.png"


def main() -> int:
    import numpy as np
    import torch
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from skimage import data

    from models import Generator
    from models.checkpoint import save_generator, weights_hash
    from serving.app import create_app
    from serving.config import ServeConfig
    from tests.serving import ServerThread
    from tests.serving.browser import Chromium, chromium_problem

    problem = chromium_problem()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        styles = tmp / "styles"
        styles.mkdir()
        for name, seed in (("random-a", 0), ("random-b", 1)):
            torch.manual_seed(seed)
            G = Generator().eval()
            with torch.no_grad():
                G.out.weight.mul_(0.35 / G(torch.rand(1, 3, 64, 64) * 2 - 1).std())
            save_generator(styles / f"{name}.pt", G, style=name, image_size=256, step=0,
                           pretrained_hash=weights_hash(G.state_dict()), kind="train", run=name)
        photo = tmp / "astronaut.png"
        Image.fromarray(data.astronaut()).resize((320, 320), Image.LANCZOS).save(photo)
        app = create_app(ServeConfig(styles_dir=styles, device="cpu", tmp_dir=tmp))
        with ServerThread(app) as srv, Chromium() as driver:
            driver.set_window_size(1200, 760)
            driver.get(srv.url + "/")
            wait = WebDriverWait(driver, 120)
            wait.until(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
            driver.find_element(By.ID, "file").send_keys(str(photo))
            driver.execute_script("const s = document.getElementById('strength'); s.value = '0.85';"
                                  "s.dispatchEvent(new Event('input'));")
            driver.find_element(By.ID, "go").click()
            wait.until(lambda d: d.execute_script(
                "const i = document.getElementById('after'); return i && i.dataset.ready === '1'"))
            png = driver.get_screenshot_as_png()
    im = Image.open(io.BytesIO(png)).convert("RGB")
    # a 256-colour palette keeps the file small; the page is mostly flat colour
    im.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(OUT, optimize=True)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KB, {im.width}x{im.height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
