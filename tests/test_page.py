"""`serve`'s page in a real browser: headless Chromium (Debian's chromium and chromium-driver),
driven by selenium, pastes an article and reads its title off the page. A CJK font (Debian's
fonts-noto-cjk) renders the page's Chinese in the screenshot, instead of boxes.

    apt-get install chromium chromium-driver fonts-noto-cjk && pip install selenium
    python -m pytest -q -m browser          # SCREENSHOT=docs/serve_page.png keeps the picture
    MODEL=runs/lcsts_recipe_budget SCREENSHOT=docs/serve_page.png python -m pytest -q -m browser   # a trained model's
"""
import os
import shutil
import subprocess

import pytest

from conftest import ALPHABET, ROOT, run_cli
from titlegen.sources import read_jsonl
from test_serve import ARTICLES, Server, generated  # noqa: F401 (generated: a fixture)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    missing = [p for p in ("/usr/bin/chromium", "/usr/bin/chromedriver") if not os.path.exists(p)]
    fonts = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True) if shutil.which("fc-list") else None
    if not (fonts and fonts.stdout.strip()):
        missing.append("a CJK font (fonts-noto-cjk)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (pip install selenium)")
    if missing:
        pytest.fail(f"the browser test needs {', '.join(missing)}: apt-get install chromium chromium-driver "
                    "fonts-noto-cjk; pip install selenium")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=900,760"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    yield driver
    driver.quit()


def decoding_table(browser):
    """The page's decoding table: {setting: [value, where it came from]}."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#options td"))
    rows = [[td.text for td in r.find_elements(By.TAG_NAME, "td")] for r in browser.find_elements(By.CSS_SELECTOR,
                                                                                                 "#options tr")]
    return {row[0]: row[1:] for row in rows if row}  # the header row has no td


def paste(browser, article, shown="title"):
    """Paste an article, press the button, and return what the page shows in `shown` (title or error)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    box = browser.find_element(By.ID, "article")
    box.clear()
    box.send_keys(article)
    browser.find_element(By.ID, "go").click()
    WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, shown).text)
    return browser.find_element(By.ID, shown).text


def screenshot(browser, tmp_path, keep):
    shot = tmp_path / "page.png"
    browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000
    if keep and os.environ.get("SCREENSHOT"):
        shutil.copy(shot, os.environ["SCREENSHOT"])


def test_the_page_titles_a_pasted_article(cli_model, generated, browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By

    server = Server(cli_model[0])
    try:
        browser.get(server.url + "/")
        options = decoding_table(browser)
        assert options["decoder"] == ["incremental", "the model"] and options["topk"] == ["3", "the model"]
        assert options["max_title_len"] == ["8", "--max-len"] and options["no_new_double"] == ["false", "the model"]
        for article, title in list(zip(ARTICLES, generated))[:2]:
            assert paste(browser, article) == title and set(title) <= set(ALPHABET)
            assert browser.find_element(By.ID, "meta").text.startswith("score -")
        assert paste(browser, "   ", "error").startswith("instances[0]: the article is empty")
        screenshot(browser, tmp_path, keep=not os.environ.get("MODEL"))
    finally:
        server.stop()


@pytest.mark.skipif(not os.environ.get("MODEL"), reason="MODEL=DIR names a trained model to show")
def test_a_trained_models_page_shows_its_own_decoding(browser, tmp_path):
    """MODEL=DIR: the page of a trained model (the README's picture) decodes as `generate --model DIR`,
    every setting the model's own."""
    model, article = os.environ["MODEL"], read_jsonl(os.path.join(ROOT, "data", "lcsts", "dev.jsonl"))[0]["content"]
    expected = run_cli("generate", "--model", model, article)
    assert expected.returncode == 0, expected.stderr[-2000:]
    server = Server(model, max_len=None)
    try:
        browser.get(server.url + "/")
        table = decoding_table(browser)
        assert {table.pop("batch_size")[1], table.pop("batch_wait_ms")[1]} == {"the server"}
        assert {origin for _, origin in table.values()} == {"the model"}  # every decoding option the model's own
        assert paste(browser, article) == expected.stdout.strip()
        screenshot(browser, tmp_path, keep=True)
    finally:
        server.stop()
