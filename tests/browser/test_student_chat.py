"""A student in a real browser: asks in English and Japanese, runs the experiment, changes a
parameter and runs again, rates the answer, and reads on a phone-sized window."""

from __future__ import annotations

import time

import pytest
import requests
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from sqlalchemy import select

from knowledge.db import transaction
from knowledge.entry_store import upsert_entry
from knowledge.schema import EntryData
from knowledge.tables import Feedback
from tests.browser.helpers import PHONE, Live, ask, click, screenshot, wait
from tests.test_retrieval import CHECKPOINTING, CHECKPOINTING_COST

pytestmark = pytest.mark.browser


def in_turn(turn: WebElement, selector: str) -> WebElement:
    return turn.find_element(By.CSS_SELECTOR, selector)


def test_asks_in_english_and_japanese_and_sees_answers_with_citations(
    browser: WebDriver, live: Live
) -> None:
    browser.get(live.url + "/")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"

    english = ask(browser, "Why do we divide attention logits by sqrt(d)?")
    title = in_turn(english, "[data-answer-link]")
    assert title.text.startswith("Why are the softmax inputs in dot-product attention")
    assert title.get_attribute("href") == live.url + "/entries/attention-sqrt-d-scaling"
    assert "match" in in_turn(english, "[data-confidence]").text
    citation = in_turn(english, "[data-citations] li")
    assert "Attention Is All You Need" in citation.text and "(2017)" in citation.text
    link = citation.find_element(By.TAG_NAME, "a")
    assert link.get_attribute("href") == "https://arxiv.org/abs/1706.03762"
    # The numbered marker in the answer points at this turn's citation.
    marker = in_turn(english, "[data-answer-body] a.cite-ref")
    assert marker.text == "1"
    assert marker.get_attribute("href").endswith("#" + citation.get_attribute("id"))
    assert in_turn(english, "[data-experiment]").is_displayed()

    japanese = ask(browser, "バッチ正規化をVAEで使ってもいいですか？")
    body = in_turn(japanese, "[data-answer-body]")
    assert body.get_attribute("lang") == "ja"
    assert "VAE" in body.text and "バッチ" in body.text
    assert "VAE" in in_turn(japanese, "[data-answer-link]").text
    assert in_turn(japanese, "[data-answer-link]").get_attribute("lang") == "ja"
    assert in_turn(japanese, "[data-citations] li").text  # its sources are listed
    # The interface stays English; only the answer follows the question's language.
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    assert in_turn(japanese, "[data-feedback] .feedback-label").text == "Was this helpful?"
    screenshot(browser, "chat-with-answers")

    # Helpful / not helpful is stored.
    click(browser, in_turn(japanese, 'button[data-helpful="true"]'))
    wait(browser, lambda d: "Thanks" in in_turn(japanese, "[data-feedback-done]").text)
    with live.app.extensions["core"].sessions() as session:
        assert session.scalar(select(Feedback).where(Feedback.helpful.is_(True))) is not None

    # A related question is one click away and becomes the next turn.
    related = english.find_elements(By.CSS_SELECTOR, "[data-related] button")
    assert related
    turns = len(browser.find_elements(By.CSS_SELECTOR, "#conversation > .turn"))
    click(browser, related[0])
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#conversation > .turn")) > turns)


def test_declined_question_is_answered_kindly(browser: WebDriver, live: Live) -> None:
    browser.get(live.url + "/")
    turn = ask(browser, "What does spectral normalization do in a GAN discriminator?")
    notice = in_turn(turn, "[data-declined]")
    assert notice.is_displayed() and "passed on to the TAs" in notice.text
    assert not in_turn(turn, "[data-answer-head]").is_displayed()
    assert in_turn(turn, "[data-related-section]").is_displayed()
    # Logistics is not the Q&A's: said so, with where the course says to ask, no suggestions.
    with live.app.test_request_context():
        from knowledge.entry_store import set_course

        set_course(
            live.app.extensions["core"].sessions,
            "nyu-dl-f20",
            help_url="https://example.edu/dl/forum",
            help_en="Logistics (exams, rooms, deadlines) are answered on the course forum.",
        )
    other = ask(browser, "Where do I park my bicycle during the lecture?")
    offtopic = in_turn(other, "[data-offtopic]")
    assert offtopic.is_displayed() and "passed on" not in offtopic.text
    assert "course forum" in offtopic.text
    link = in_turn(other, "[data-course-help-link]")
    assert link.get_attribute("href") == "https://example.edu/dl/forum"
    assert not in_turn(other, "[data-declined]").is_displayed()
    assert not in_turn(other, "[data-related-section]").is_displayed()
    assert not in_turn(other, "[data-feedback]").is_displayed()
    set_course(live.app.extensions["core"].sessions, "nyu-dl-f20", help_url="", help_en="")


def test_runs_the_experiment_then_changes_a_parameter_and_reruns(
    browser: WebDriver, live: Live
) -> None:
    browser.get(live.url + "/")
    turn = ask(browser, "Why are attention scores divided by the square root of d?")
    panel = in_turn(turn, "[data-experiment]")
    wait(browser, lambda d: in_turn(panel, "[data-exp-title]").text)  # catalogue loaded
    click(browser, in_turn(panel, "[data-run]"))
    # Progress first: queued or running, with the seconds counting.
    wait(browser, lambda d: in_turn(panel, "[data-run-progress]").is_displayed(), 10)
    status = in_turn(panel, "[data-run-status-text]").text
    assert status.startswith(("Starting", "Queued", "Running")), status
    screenshot(browser, "experiment-running")
    result = in_turn(panel, "[data-run-result]")
    assert result.is_displayed()  # a placeholder holds the result's place meanwhile
    wait(browser, lambda d: result.find_elements(By.CSS_SELECTOR, ".figures img"), 120)
    assert "pending" not in result.get_attribute("class")
    figure = in_turn(result, ".figures img")
    wait(browser, lambda d: d.execute_script("return arguments[0].naturalWidth", figure) > 100)
    assert (
        in_turn(result, "[data-verdict]").text == "As the answer predicts, the effect shows here."
    )
    assert in_turn(result, "[data-finding]").text
    # The verdict's few measurements first, in words (the code name only as a tooltip);
    # the rest folded away below them.
    key_rows = result.find_elements(By.CSS_SELECTOR, "[data-metrics] tbody th")
    assert 2 <= len(key_rows) <= 4
    assert all(th.text and "_" not in th.text and th.get_attribute("title") for th in key_rows)
    more = in_turn(result, "[data-all-metrics]")
    assert more.get_attribute("open") is None and "All measurements" in more.text
    click(browser, in_turn(result, ".provenance summary"))
    provenance = in_turn(result, "[data-provenance]").text
    assert "PyTorch" in provenance and "2.13" in provenance
    first_run = provenance.split("Run id")[1].strip()
    screenshot(browser, "experiment-result", full_page=True)

    # Change a parameter: a value out of bounds is caught before anything is sent.
    click(browser, in_turn(panel, "[data-params-details] summary"))
    keys = in_turn(panel, 'input[name="param-n_keys"]')
    keys.clear()
    keys.send_keys("100000")
    click(browser, in_turn(panel, "[data-run-params]"))
    error = in_turn(panel, ".param[data-param=n_keys] .field-error")
    assert "2 to 256" in error.text and keys.get_attribute("aria-invalid") == "true"
    keys.clear()
    keys.send_keys("16")
    dims = in_turn(panel, 'input[name="param-dims"]')
    dims.clear()
    dims.send_keys("8, 32, 128")
    click(browser, in_turn(panel, "[data-run-params]"))
    wait(browser, lambda d: "stale" not in result.get_attribute("class"), 120)
    wait(browser, lambda d: first_run not in in_turn(result, "[data-provenance]").text, 120)
    provenance = in_turn(result, "[data-provenance]").get_attribute("textContent")
    assert "n_keys=16" in provenance and "dims=[8,32,128]" in provenance
    rows = result.find_elements(By.CSS_SELECTOR, "[data-metrics] tbody tr")
    assert rows

    # The default run again: cached, so it is back at once.
    started = time.monotonic()
    click(browser, in_turn(panel, "[data-run]"))
    wait(browser, lambda d: "earlier identical run" in in_turn(panel, "[data-run-status]").text)
    assert time.monotonic() - started < 5
    assert first_run in in_turn(result, "[data-provenance]").get_attribute("textContent")


def test_an_entry_with_script_and_javascript_links_renders_inert(
    browser: WebDriver, live: Live
) -> None:
    hostile = EntryData.model_validate(
        {
            "slug": "hostile-markup",
            "course": "nyu-dl-f20",
            "question": {"en": "Does the hostile markup entry execute anything in browsers?"},
            "answer": {
                "en": "Text <script>window.__xss = 1; alert(1)</script> and "
                "[click me](javascript:window.__xss=2) and "
                '<img src=x onerror="window.__xss=3"> and [fine](https://example.org).'
            },
        }
    )
    with transaction(live.app.extensions["core"].sessions) as session:
        upsert_entry(session, hostile, author="test")
    for check in ("chat", "permalink"):
        if check == "chat":
            browser.get(live.url + "/")
            turn = ask(browser, "Does the hostile markup entry execute anything in browsers?")
            body = in_turn(turn, "[data-answer-body]")
        else:
            browser.get(live.url + "/entries/hostile-markup")
            body = browser.find_element(By.CSS_SELECTOR, ".answer")
        assert "<script>window.__xss" in body.text  # shown as text
        assert browser.execute_script("return window.__xss") is None
        assert not browser.find_elements(By.CSS_SELECTOR, 'a[href^="javascript"]')
        assert not body.find_elements(By.CSS_SELECTOR, "script, img")
        assert body.find_element(By.LINK_TEXT, "fine").get_attribute("href") == (
            "https://example.org/"
        )
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.accept()


def test_keyboard_only(browser: WebDriver, live: Live) -> None:
    browser.get(live.url + "/")
    screenshot(browser, "chat-welcome")
    box = browser.find_element(By.ID, "question")
    box.click()
    box.send_keys("What is double")
    box.send_keys(Keys.SHIFT, Keys.ENTER)  # a new line, not a question
    assert browser.find_elements(By.CSS_SELECTOR, "#conversation > .turn") == []
    box.send_keys("descent?", Keys.ENTER)
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#conversation [data-answer-link]"))
    wait(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, "[data-answer-link]").text.strip() != "",
    )
    assert "double descent" in browser.find_element(By.CSS_SELECTOR, "[data-answer-link]").text
    # Tab reaches the run button, and Enter on it starts the run.
    focused = ""
    for _ in range(40):
        browser.switch_to.active_element.send_keys(Keys.TAB)
        focused = browser.switch_to.active_element.get_attribute("data-run")
        if focused is not None:
            break
    assert focused is not None, "the run button is not reachable with Tab"


def test_phone_width_chat_fits_without_sideways_scrolling(browser: WebDriver, live: Live) -> None:
    browser.set_window_size(*PHONE)
    browser.get(live.url + "/")
    turn = ask(browser, "Why does BatchNorm cause trouble in a VAE?")
    wait(browser, lambda d: in_turn(turn, "[data-exp-title]").text)
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    browser.execute_script("window.scrollTo(0, 0)")
    screenshot(browser, "chat-phone")
    # After a run, with every detail open, nothing is wider than the screen.
    panel = in_turn(turn, "[data-experiment]")
    click(browser, in_turn(panel, "[data-run]"))
    result = in_turn(panel, "[data-run-result]")
    wait(browser, lambda d: result.find_elements(By.CSS_SELECTOR, ".figures img"), 120)
    for details in panel.find_elements(By.CSS_SELECTOR, "details:not([open]) > summary"):
        click(browser, details)
    too_wide = browser.execute_script(
        "const w = document.documentElement.clientWidth;"
        "return [...document.querySelectorAll('body *')]"
        ".filter((e) => e.getBoundingClientRect().right > w + 1)"
        ".map((e) => e.tagName + '.' + e.className);"
    )
    assert too_wide == [], too_wide
    screenshot(browser, "experiment-result-phone", full_page=True)


def japanese(text: str) -> bool:
    return any("\u3040" <= ch <= "\u9fff" for ch in text)


def run_id_of(result: WebElement) -> str:
    """The run id the result panel's provenance names."""
    items = result.find_elements(By.CSS_SELECTOR, "[data-provenance] dd")
    return items[-1].get_attribute("textContent").strip()


def test_japanese_interface_is_remembered(browser: WebDriver, live: Live) -> None:
    browser.get(live.url + "/")
    click(browser, browser.find_element(By.CSS_SELECTOR, ".lang-switch"))
    wait(browser, lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "ja")
    browser.get(live.url + "/entries/double-descent")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "ja"
    assert browser.find_element(By.CSS_SELECTOR, "[data-run]").text == "実験を実行する"
    title = browser.find_element(By.TAG_NAME, "h1").text
    assert any("\u3040" <= ch <= "\u9fff" for ch in title)  # the Japanese content
    screenshot(browser, "entry-permalink-ja")

    # The experiment speaks Japanese too: parameter labels and help, the verdict's
    # measurements, the finding and the figure's own text.
    panel = browser.find_element(By.CSS_SELECTOR, "[data-experiment]")
    click(browser, in_turn(panel, "[data-params-details] summary"))
    label = in_turn(panel, ".param[data-param=ridge] label")
    assert "リッジ" in label.text and "ridge" in label.text  # the code name in small type
    assert japanese(in_turn(panel, ".param[data-param=ridge] .param-help").text)
    click(browser, in_turn(panel, "[data-run]"))
    result = in_turn(panel, "[data-run-result]")
    wait(browser, lambda d: result.find_elements(By.CSS_SELECTOR, ".figures img"), 120)
    assert japanese(in_turn(result, "[data-verdict]").text)
    assert japanese(in_turn(result, "[data-finding]").text)
    rows = result.find_elements(By.CSS_SELECTOR, "[data-metrics] tbody th")
    assert rows and all(japanese(th.text) for th in rows)
    run = requests.get(live.url + "/api/v1/runs/" + run_id_of(result)).json()
    src = in_turn(result, ".figures img").get_attribute("src")
    assert src.endswith(run["figures_by_lang"]["ja"][0]) and src not in run["figures"]
    screenshot(browser, "experiment-result-ja", full_page=True)


def test_did_you_mean_offers_both_close_answers(browser: WebDriver, live: Live) -> None:
    # Two entries on one technique: a question on the technique itself fits both.
    with transaction(live.app.extensions["core"].sessions) as session:
        for entry in (CHECKPOINTING, CHECKPOINTING_COST):
            upsert_entry(session, EntryData.model_validate(entry), author="test")
    question = "What is gradient checkpointing?"
    browser.get(live.url + "/")
    turn = ask(browser, question)
    notice = in_turn(turn, "[data-dym]")
    assert notice.is_displayed() and "Did you mean" in notice.text
    shown = in_turn(turn, "[data-answer-link]").text
    assert shown in notice.text and "(shown below)" in notice.text
    other = notice.find_element(By.CSS_SELECTOR, "button.choice")
    expected = other.text
    assert expected != shown
    screenshot(browser, "chat-did-you-mean")
    click(browser, other)
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#conversation > .turn")) == 2)
    second = browser.find_elements(By.CSS_SELECTOR, "#conversation > .turn")[-1]
    wait(browser, lambda d: in_turn(second, "[data-answer-link]").text == expected)


def test_not_helpful_asks_why_and_a_vote_can_be_changed(browser: WebDriver, live: Live) -> None:
    from selenium.webdriver.support.ui import Select

    browser.get(live.url + "/")
    turn = ask(browser, "What is double descent?")
    click(browser, in_turn(turn, 'button[data-helpful="false"]'))
    comment = in_turn(turn, "[data-feedback-comment]")
    wait(browser, lambda d: comment.is_displayed())
    comment.send_keys("It does not say where the peak is.")
    click(browser, in_turn(turn, "[data-feedback-more] button[type=submit]"))
    wait(browser, lambda d: "TAs will read it" in in_turn(turn, "[data-feedback-done]").text)
    click(browser, in_turn(turn, "[data-feedback-change]"))
    click(browser, in_turn(turn, 'button[data-helpful="true"]'))
    wait(browser, lambda d: "Glad it helped" in in_turn(turn, "[data-feedback-done]").text)
    with live.app.extensions["core"].sessions() as session:
        rows = session.scalars(
            select(Feedback).where(Feedback.comment == "It does not say where the peak is.")
        ).all()
        assert len(rows) == 1 and rows[0].helpful is True  # one vote, changed

    # A decline with close entries asks which one should have answered; one with none is quiet.
    declined = ask(browser, "What does spectral normalization do in a GAN discriminator?")
    assert in_turn(declined, "[data-declined]").is_displayed()
    pick = Select(in_turn(declined, "[data-feedback-suggest]"))
    slugs = [o.get_attribute("value") for o in pick.options if o.get_attribute("value")]
    assert slugs
    pick.select_by_value(slugs[0])
    click(browser, in_turn(declined, "[data-feedback-more] button[type=submit]"))
    wait(browser, lambda d: "TAs will read it" in in_turn(declined, "[data-feedback-done]").text)
    with live.app.extensions["core"].sessions() as session:
        assert session.scalar(select(Feedback).where(Feedback.suggested_slug == slugs[0]))
    quiet = ask(browser, "Where do I park my bicycle during the lecture?")
    assert not in_turn(quiet, "[data-related-section]").is_displayed()
    assert not in_turn(quiet, "[data-feedback]").is_displayed()


def test_the_conversation_survives_a_reload_and_follows_a_language_switch(
    browser: WebDriver, live: Live
) -> None:
    browser.get(live.url + "/")
    first = ask(browser, "Why do we divide attention logits by sqrt(d)?")
    assert in_turn(first, "[data-answer-body]").get_attribute("lang") == "en"
    ask(browser, "Where do I park my bicycle during the lecture?")
    browser.refresh()
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#conversation > .turn")) == 2)
    turns = browser.find_elements(By.CSS_SELECTOR, "#conversation > .turn")
    assert "sqrt(d)" in in_turn(turns[0], "[data-question]").text
    assert in_turn(turns[1], "[data-offtopic]").is_displayed()

    browser.get(live.url + "/lang/ja?next=/")  # the language switch
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#conversation > .turn")) == 2)
    body = browser.find_elements(By.CSS_SELECTOR, "#conversation > .turn")[0]
    wait(browser, lambda d: in_turn(body, "[data-answer-body]").get_attribute("lang") == "ja")
    assert in_turn(body, "[data-answer-link]").get_attribute("lang") == "ja"
