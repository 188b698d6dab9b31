"""``ns-viewer --load-config`` on an eavatar run, in headless Chromium (Debian's) driven by Selenium.

What a new user sees: the expression sliders in the control panel and, without touching the
camera, the head seen from the front (the view our own renderer makes from the face's side),
not viser's default z-up corner view of the top of the head. Skipped without /usr/bin/chromium
and /usr/bin/chromedriver (bash scripts/install_browser.sh), except under CI. Every wait is bounded.
"""

from __future__ import annotations

import io
import re
import subprocess
import time

import numpy as np
import pytest
import torch

from eavatar.ns.viewer import front_view
from eavatar.render.camera import look_at_c2w
from tests.ns.conftest import ns_script
from tests.test_browser_notebook import ARTIFACTS, browser, free_port, require_browser, stop_group, wait_for  # noqa: F401 (browser: the same headless Chromium fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: A pixel is background when every channel is at least this: the avatar's background is white (255 in the
#: JPEG stream too) and a head trained for a few steps is still pale.
WHITE = 250


@pytest.fixture(scope="module")
def viewer(ns_run, tmp_path_factory):
    """ns-viewer on 127.0.0.1:<free port>, in its own process group, ended (by id) after the module."""
    require_browser()
    port = free_port()
    log_path = tmp_path_factory.mktemp("ns_viewer") / "ns-viewer.log"
    log = log_path.open("w")
    cmd = [ns_script("ns-viewer"), "--load-config", str(ns_run.config), "--viewer.websocket-host", "127.0.0.1", "--viewer.websocket-port", str(port)]
    proc = subprocess.Popen(cmd, cwd=ns_run.root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def up():
        if proc.poll() is not None:
            pytest.fail(f"ns-viewer exited with {proc.returncode}: {log_path.read_text()[-3000:]}")
        import urllib.request

        try:
            return urllib.request.urlopen(url, timeout=2).status == 200
        except OSError:
            return False

    try:
        wait_for(up, 180, "ns-viewer to serve its page")
        yield url, log_path
    finally:
        stop_group(proc)
        log.close()


#: The 3D view: viser's largest canvas, in CSS pixels (the headless window has devicePixelRatio 1).
CANVAS_RECT = """
const cs = [...document.querySelectorAll('canvas')].map(c => c.getBoundingClientRect()).sort((a, b) => b.width * b.height - a.width * a.height);
if (!cs.length || cs[0].width < 100) return null;
return [cs[0].left, cs[0].top, cs[0].width, cs[0].height, window.devicePixelRatio];
"""


def canvas_image(driver, aspect: float) -> np.ndarray:  # [H, W, 3] uint8, what the 3D view shows
    """The render in the page: the canvas' full height and, from its left, ``aspect`` x that
    (the control panel floats over the rest; the viewer renders only the part left of it)."""
    from PIL import Image

    left, top, width, height, ratio = driver.execute_script(CANVAS_RECT)
    shot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    box = [round(v * ratio) for v in (left, top, left + min(width, height * aspect), top + height)]
    return np.asarray(shot.crop(box))


def foreground(image: np.ndarray) -> np.ndarray:  # [H, W] bool
    return (image < WHITE).any(-1)


def centre(mask: np.ndarray, frac: float = 0.3) -> np.ndarray:
    h, w = mask.shape
    dh, dw = int(h * frac / 2), int(w * frac / 2)
    return mask[h // 2 - dh : h // 2 + dh, w // 2 - dw : w // 2 + dw]


def front_reference(loaded, width: int, height: int) -> np.ndarray:  # [H, W] bool
    """The avatar's silhouette from the viewer's intended first camera, by the model itself."""
    from nerfstudio.cameras.cameras import Cameras

    _, pipeline, _, _ = loaded
    view = front_view(pipeline.datamanager.train_dataparser_outputs.metadata["subject"])
    c2w = look_at_c2w(torch.tensor(view.position), torch.tensor(view.look_at), view.up).float()
    focal = height / 2 / np.tan(view.fov / 2)
    camera = Cameras(camera_to_worlds=c2w[None, :3, :4], fx=focal, fy=focal, cx=width / 2, cy=height / 2, width=width, height=height)
    rgb = pipeline.model.get_outputs_for_camera(camera)["rgb"]
    return foreground((rgb.clamp(0, 1) * 255).round().byte().numpy())


def test_ns_viewer_shows_the_expression_sliders_and_the_face(viewer, browser, loaded, ns_run):
    from PIL import Image

    url, log_path = viewer
    browser.get(url)
    labels = list(loaded[1].model.expression_labels)
    text = lambda: browser.execute_script("return document.body.innerText")  # noqa: E731
    wait_for(lambda: all(label in text() for label in labels), 90, f"the expression sliders {labels}")
    assert "Custom Elements" in text() and "reset expression" in text()

    def rendered():  # the stats say "Resolution: 512x393px" once a render has arrived
        m = re.search(r"Resolution:\s*(\d+)\D+(\d+)px", text())
        return int(m.group(1)) / int(m.group(2)) if m is not None and int(m.group(1)) * int(m.group(2)) > 0 else None

    try:
        aspect = wait_for(rendered, 180, "the first render to reach the page", every=1)
    except BaseException:
        print(log_path.read_text()[-4000:])
        raise

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "ns_viewer_first_view.png"
    last = {}

    def head_in_view():
        last["image"] = image = canvas_image(browser, aspect)
        browser.save_screenshot(str(shot))
        return centre(foreground(image)).mean() > 0.3

    time.sleep(2)  # the full-resolution render follows the first, lower-resolution one
    try:
        wait_for(head_in_view, 60, "the head in the centre of the 3D view", every=1)
    except BaseException:
        print(f"screenshot: {shot}; foreground in the centre: {centre(foreground(last['image'])).mean():.2f}")
        raise
    seen = foreground(last["image"])
    assert 0.02 < seen.mean() < 0.9, seen.mean()  # a head on the white background, not a blank or filled view
    # what the page shows is the model's render from the front view (silhouettes, at the canvas' aspect)
    h, w = seen.shape
    small = (160, round(160 * h / w))
    ours = front_reference(loaded, *small)
    seen_small = np.asarray(Image.fromarray(seen.astype(np.uint8) * 255).resize(small, Image.BILINEAR)) > 127
    iou = (ours & seen_small).sum() / max((ours | seen_small).sum(), 1)
    Image.fromarray(np.concatenate([seen_small, ours], 1).astype(np.uint8) * 255).save(ARTIFACTS / "ns_viewer_silhouettes.png")  # page | ours
    assert iou > 0.7, f"the first view does not match the front view of the head (IoU {iou:.2f}); screenshot in {ARTIFACTS}"
