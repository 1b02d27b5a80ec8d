"""Helpers for the browser tests: waiting, clicking, screenshots, asking, logging in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
DESKTOP = (1280, 900)
PHONE = (390, 844)
TA_USER, TA_PASSWORD = "browser-ta", "a long browser password"


@dataclass
class Live:
    app: Flask
    url: str


def wait(
    driver: WebDriver, condition: Callable[[WebDriver], object], timeout: float = 30
) -> object:
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


def click(driver: WebDriver, element: WebElement) -> None:
    """Scroll the element to the middle of the window (clear of the sticky ask box), click."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def screenshot(driver: WebDriver, name: str, full_page: bool = False) -> Path:
    """Save a PNG of the window (or of the whole page, by growing the window for a moment)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    if full_page:
        size = driver.get_window_size()
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(size["width"], min(int(height) + 140, 4000))
        driver.save_screenshot(str(path))
        driver.set_window_size(size["width"], size["height"])
    else:
        driver.save_screenshot(str(path))
    return path


def log_in(driver: WebDriver, live: Live) -> None:
    driver.get(live.url + "/ta/login")
    driver.find_element(By.ID, "username").send_keys(TA_USER)
    driver.find_element(By.ID, "password").send_keys(TA_PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait(driver, lambda d: d.find_elements(By.ID, "logout"))


def ask(driver: WebDriver, question: str, timeout: float = 30) -> WebElement:
    """Ask in the chat and return the new turn once its answer is shown."""
    before = len(driver.find_elements(By.CSS_SELECTOR, "#conversation > .turn"))
    box = driver.find_element(By.ID, "question")
    box.clear()
    box.send_keys(question)
    click(driver, driver.find_element(By.ID, "ask-button"))
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#conversation > .turn")) > before)
    turn = driver.find_elements(By.CSS_SELECTOR, "#conversation > .turn")[-1]
    wait(
        driver,
        lambda d: turn.find_element(By.CSS_SELECTOR, "[data-content]").is_displayed(),
        timeout,
    )
    return turn
