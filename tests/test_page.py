"""`serve`'s page in a real browser: headless Chromium (Debian's chromium and chromium-driver),
driven by selenium, pastes an article and reads its title off the page.

    apt-get install chromium chromium-driver && pip install selenium
    python -m pytest -q -m browser          # SCREENSHOT=docs/serve_page.png keeps the picture
"""
import os
import shutil

import pytest

from conftest import ALPHABET
from test_serve import ARTICLES, Server, generated  # noqa: F401 (generated: a fixture)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    missing = [p for p in ("/usr/bin/chromium", "/usr/bin/chromedriver") if not os.path.exists(p)]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (pip install selenium)")
    if missing:
        pytest.fail(f"the browser test needs {', '.join(missing)}: apt-get install chromium chromium-driver; "
                    "pip install selenium")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=900,760"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    yield driver
    driver.quit()


def test_the_page_titles_a_pasted_article(cli_model, generated, browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = Server(cli_model[0])
    try:
        browser.get(server.url + "/")
        WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#options tr"))
        options = {r.find_elements(By.TAG_NAME, "td")[0].text: r.find_elements(By.TAG_NAME, "td")[1].text
                   for r in browser.find_elements(By.CSS_SELECTOR, "#options tr")}
        assert options["decoder"] == "incremental" and options["topk"] == "3" and options["max_title_len"] == "8"
        for article, title in list(zip(ARTICLES, generated))[:2]:
            box = browser.find_element(By.ID, "article")
            box.clear()
            box.send_keys(article)
            browser.find_element(By.ID, "go").click()
            WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "title").text)
            assert browser.find_element(By.ID, "title").text == title and set(title) <= set(ALPHABET)
            assert browser.find_element(By.ID, "meta").text.startswith("score -")
        box.clear()
        box.send_keys("   ")
        browser.find_element(By.ID, "go").click()
        WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "error").text)
        assert browser.find_element(By.ID, "error").text.startswith("instances[0]: the article is empty")
        shot = tmp_path / "page.png"
        browser.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000
        if os.environ.get("SCREENSHOT"):
            shutil.copy(shot, os.environ["SCREENSHOT"])
    finally:
        server.stop()
