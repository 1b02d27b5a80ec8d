"""The API docs page renders under a CSP without 'unsafe-inline' (console errors fail)."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser.helpers import Live, wait


def test_the_docs_page_renders_every_operation(browser: WebDriver, live: Live) -> None:
    browser.get(live.url + "/api/docs/")
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= 10)
    summaries = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")]
    assert "/api/v1/ask" in summaries and "/api/v1/entries/{slug}" in summaries
