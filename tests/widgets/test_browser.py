"""Launcher in a real browser: Voilà serves a notebook, headless Chromium drives it.

browser_launcher.ipynb (beside this file) displays ``estlab.widgets.Launcher``
for a tiny LinearRegressor with 200 steps preset. The test serves it with
Voilà on a free localhost port, opens it in Debian's Chromium through
Playwright, clicks Train and checks that the page shows the run: the progress
bar fills, the "step N, x steps/sec" text appears and the loss curve image is
drawn (its ``src`` is set and the PNG decodes).

Skipped only when /usr/bin/chromium is absent and ESTLAB_REQUIRE_BROWSER is
unset; CI (.ci/run) installs Chromium and sets it, so there it must run.
Every wait has a deadline; the Voilà process group is killed at the end.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pytest

CHROMIUM = "/usr/bin/chromium"
NOTEBOOK = os.path.join(os.path.dirname(__file__), "browser_launcher.ipynb")
_REQUIRED = bool(os.environ.get("ESTLAB_REQUIRE_BROWSER"))

if not os.path.exists(CHROMIUM) and not _REQUIRED:
  pytest.skip(f"{CHROMIUM} is absent (set ESTLAB_REQUIRE_BROWSER=1 to fail "
              "instead)", allow_module_level=True)

# Not importorskip: with Chromium here (or required) the test must run, and the
# `dev` extra installs both.
import voila  # pylint: disable=g-import-not-at-top,unused-import
from playwright import sync_api  # pylint: disable=g-import-not-at-top

_SERVER_DEADLINE = 30   # seconds for Voilà to answer HTTP
_RENDER_DEADLINE = 30   # the notebook executed and the Train button shown
_TRAIN_DEADLINE = 60    # 200 steps, compile included
_CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--no-first-run"]


def _free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _kill_group(proc: subprocess.Popen) -> None:
  """SIGTERM to the server's process group, SIGKILL if it lingers."""
  for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
    try:
      os.killpg(proc.pid, sig)
    except ProcessLookupError:
      return
    try:
      proc.wait(wait)
      return
    except subprocess.TimeoutExpired:
      continue


def _wait_http(url: str, proc: subprocess.Popen, log_path: str) -> None:
  deadline = time.monotonic() + _SERVER_DEADLINE
  error = None
  while time.monotonic() < deadline:
    if proc.poll() is not None:
      pytest.fail(f"voila exited with code {proc.returncode}:\n"
                  + _tail(log_path))
    try:
      # Any answer will do; not "/", which would render (run) the notebook.
      with urllib.request.urlopen(url + "api", timeout=2) as response:
        if response.status < 500:
          return
    except urllib.error.HTTPError as e:  # any answer means it is serving
      if e.code < 500:
        return
      error = e
    except OSError as e:
      error = e
    time.sleep(0.2)
  pytest.fail(f"voila did not answer {url} within {_SERVER_DEADLINE}s "
              f"({error!r}):\n" + _tail(log_path))


def _tail(path: str, n: int = 4000) -> str:
  try:
    with open(path, encoding="utf-8", errors="replace") as f:
      return f.read()[-n:]
  except OSError:
    return "(no log)"


@pytest.fixture
def voila_url(tmp_path):
  port = _free_port()
  log_path = str(tmp_path / "voila.log")
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  with open(log_path, "wb") as log:
    proc = subprocess.Popen(
        [sys.executable, "-m", "voila", NOTEBOOK, "--no-browser",
         f"--port={port}", "--Voila.ip=127.0.0.1",
         "--Voila.open_browser=False"],
        cwd=str(tmp_path), env=env, stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True)
  try:
    url = f"http://127.0.0.1:{port}/"
    _wait_http(url, proc, log_path)
    yield url, log_path
  finally:
    _kill_group(proc)


def test_train_in_browser_shows_progress_and_curve(voila_url, tmp_path):
  url, log_path = voila_url
  profile = tempfile.mkdtemp(prefix="estlab-chromium-", dir=str(tmp_path))
  with sync_api.sync_playwright() as p:
    context = p.chromium.launch_persistent_context(
        profile, executable_path=CHROMIUM, headless=True, args=_CHROMIUM_ARGS,
        timeout=_SERVER_DEADLINE * 1000)
    try:
      page = context.new_page()
      page.set_default_timeout(_RENDER_DEADLINE * 1000)
      errors = []
      page.on("pageerror", lambda e: errors.append(str(e)))
      try:
        page.goto(url, wait_until="domcontentloaded",
                  timeout=_RENDER_DEADLINE * 1000)
        train = page.get_by_role("button", name="Train")
        train.wait_for(state="visible", timeout=_RENDER_DEADLINE * 1000)
      except sync_api.TimeoutError:
        pytest.fail("the Launcher did not render in the page; voila log:\n"
                    + _tail(log_path) + f"\npage errors: {errors}")

      progress = page.locator(".widget-hprogress .progress-bar")
      image = page.locator(".widget-image")
      before = image.get_attribute("src", timeout=5000)
      assert float(progress.evaluate("e => parseFloat(e.style.width) || 0")) == 0
      assert page.locator("input[type=number]").first.input_value(
          timeout=5000) == "200"
      train.click(timeout=5000)

      # Progress: the bar fills to 100% and the steps text reads step 200.
      try:
        page.wait_for_function(
            """() => {
              const bar = document.querySelector('.widget-hprogress .progress-bar');
              return bar && parseFloat(bar.style.width) >= 100;
            }""", timeout=_TRAIN_DEADLINE * 1000)
        page.get_by_text(re.compile(r"done: global step 200")).wait_for(
            timeout=_TRAIN_DEADLINE * 1000)
      except sync_api.TimeoutError:
        pytest.fail("training did not finish in the page; status: "
                    f"{page.locator('.widget-html').all_inner_texts()!r}\n"
                    "voila log:\n" + _tail(log_path))
      assert float(progress.evaluate("e => parseFloat(e.style.width)")) >= 100
      assert page.get_by_text(re.compile(r"step 200, [\d.]+ steps/sec")).count()

      # The curve: the image's src was set to the PNG, and it decodes.
      page.wait_for_function(
          """() => {
            const img = document.querySelector('.widget-image');
            return img && img.src && img.complete && img.naturalWidth > 0;
          }""", timeout=_TRAIN_DEADLINE * 1000)
      after = image.get_attribute("src", timeout=5000)
      assert after and after != before, (before, after)
      width, height = image.evaluate("e => [e.naturalWidth, e.naturalHeight]")
      assert (width, height) == (400, 240), (width, height)  # 5x3 in at 80 dpi
      # The run's end re-enables Train (just after the status text is set).
      sync_api.expect(train).to_be_enabled(timeout=10000)
      assert not errors, errors
    finally:
      context.close()
  shutil.rmtree(profile, ignore_errors=True)
