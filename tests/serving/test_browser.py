"""The web page in a real browser: headless Chromium loads it from a uvicorn started here on a
free 127.0.0.1 port, uploads generated files (file picker and drag and drop), picks a style,
and finds the result with the input's size; an oversize upload shows the server's message; a
video shows its progress and ends as a playable result. Skips where Chromium is missing."""
from __future__ import annotations

import base64

import numpy as np
import pytest

from tests.serving import ServerThread, encode, png
from tests.serving.browser import Chromium, chromium_problem

pytestmark = pytest.mark.skipif(chromium_problem() is not None,
                                reason=f"needs headless Chromium: {chromium_problem()}")

MAX_BYTES = 30_000


@pytest.fixture()
def page(make_app):
    from selenium.webdriver.support.ui import WebDriverWait

    app, svc = make_app(max_bytes=MAX_BYTES)
    with ServerThread(app) as srv, Chromium() as driver:
        driver.get(srv.url + "/")
        WebDriverWait(driver, 30).until(
            lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
        yield driver, svc


def by_id(driver, element_id):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id)


def wait(driver, script: str, timeout: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: d.execute_script(script))


def pick_style(driver, name: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(by_id(driver, "style")).select_by_value(name)


def result_size(driver) -> tuple[int, int]:
    wait(driver, "const i = document.getElementById('after'); return i && i.dataset.ready === '1'")
    return tuple(driver.execute_script(
        "const i = document.getElementById('after'); return [i.naturalWidth, i.naturalHeight]"))


def test_upload_pick_a_style_and_see_the_result(page, tmp_path):
    driver, svc = page
    options = [o.get_attribute("value") for o in by_id(driver, "style").find_elements("tag name", "option")]
    assert options == ["Hard", "Soft"]
    assert "PNG or JPEG up to 29 KB and 3000 px" in by_id(driver, "limits").text
    path = tmp_path / "photo.png"
    path.write_bytes(png(40, 48))
    by_id(driver, "file").send_keys(str(path))
    wait(driver, "return document.getElementById('before') !== null")
    pick_style(driver, "Soft")
    driver.execute_script("const s = document.getElementById('strength'); s.value = '0.75';"
                          "s.dispatchEvent(new Event('input'));")
    assert by_id(driver, "strength-value").text == "0.75"
    by_id(driver, "go").click()
    assert result_size(driver) == (48, 40)
    assert "style Soft" in by_id(driver, "status").text
    link = by_id(driver, "download")
    assert link.is_displayed() and link.get_attribute("href").startswith("blob:")
    assert link.get_attribute("download") == "photo-cartoon.png"
    assert not by_id(driver, "error").is_displayed() and not by_id(driver, "cancel").is_displayed()


def test_drag_and_drop_an_image(page):
    driver, _ = page
    data = base64.b64encode(png(36, 52)).decode()
    driver.execute_script("""
        const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], 'dropped.png', {type: 'image/png'}));
        document.getElementById('drop').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true}));
    """, data)
    wait(driver, "return document.getElementById('before') !== null")
    assert "dropped.png" in by_id(driver, "drop-text").text
    by_id(driver, "go").click()
    assert result_size(driver) == (52, 36)


@pytest.mark.parametrize("size", ["over the file limit", "over the body limit"])
def test_an_oversize_upload_shows_the_servers_message(page, tmp_path, size):
    driver, svc = page
    side = 110 if size == "over the file limit" else 200  # noise PNG: ~36 KB / ~120 KB
    noise = np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8)
    path = tmp_path / "big.png"
    path.write_bytes(encode(noise))
    assert path.stat().st_size > MAX_BYTES
    by_id(driver, "file").send_keys(str(path))
    by_id(driver, "go").click()
    wait(driver, "return !document.getElementById('error').hidden")
    text = by_id(driver, "error").text
    assert "over the 29 KB limit (--max-bytes)" in text, text
    assert driver.execute_script("return document.getElementById('after')") is None
    # the page and the server both carry on
    path.write_bytes(png())
    by_id(driver, "file").send_keys(str(path))
    by_id(driver, "go").click()
    assert result_size(driver) == (48, 40)
    assert not by_id(driver, "error").is_displayed()


def test_a_file_the_browser_cannot_show_leaves_no_broken_image(page, tmp_path):
    """A refused upload (not an image at all): the Before pane says there is no preview instead
    of showing a broken-image icon, beside the server's message."""
    driver, _ = page
    path = tmp_path / "notes.png"
    path.write_bytes(b"these are not the pixels you are looking for\n" * 20)
    by_id(driver, "file").send_keys(str(path))
    wait(driver, "return document.getElementById('before') === null")
    assert "no preview" in by_id(driver, "before-frame").text
    by_id(driver, "go").click()
    wait(driver, "return !document.getElementById('error').hidden")
    assert "PNG or JPEG" in by_id(driver, "error").text or "not" in by_id(driver, "error").text
    assert driver.execute_script("return document.querySelector('#before-frame img')") is None
    # a good file afterwards shows its preview again
    good = tmp_path / "photo.png"
    good.write_bytes(png())
    by_id(driver, "file").send_keys(str(good))
    wait(driver, "const i = document.getElementById('before'); return i && i.complete && i.naturalWidth > 0")


def test_a_video_shows_progress_and_its_result(page, tmp_path):
    from tests.media.test_video import scene, write_clip

    driver, svc = page
    path = write_clip(tmp_path / "clip.mp4", [scene(32, 48, i) for i in range(4)])
    by_id(driver, "file").send_keys(str(path))
    wait(driver, "return document.getElementById('before') !== null && "
                 "document.getElementById('before').tagName === 'VIDEO'")
    by_id(driver, "go").click()
    wait(driver, "const v = document.getElementById('after'); return v && v.tagName === 'VIDEO'")
    assert driver.execute_script("return document.getElementById('progress').value") == 1
    assert "4 / 4 frames" in by_id(driver, "status").text
    wait(driver, "return document.getElementById('after').videoWidth > 0")
    assert driver.execute_script("const v = document.getElementById('after');"
                                 "return [v.videoWidth, v.videoHeight]") == [48, 32]
    assert by_id(driver, "download").get_attribute("download") == "clip-cartoon.mp4"
    assert not by_id(driver, "cancel").is_displayed()  # shown only while the job runs
