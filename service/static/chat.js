// Minimal chat: ask, show the sanitised answer, citations and related matches.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const form = $("ask-form");

  function text(tag, value, attrs) {
    const el = document.createElement(tag);
    el.textContent = value;
    Object.entries(attrs || {}).forEach(([k, v]) => el.setAttribute(k, v));
    return el;
  }

  function safeUrl(url) {
    try {
      const u = new URL(url, window.location.href);
      return (u.protocol === "http:" || u.protocol === "https:") ? u.href : null;
    } catch (e) { return null; }
  }

  function showCitations(citations) {
    const list = $("citations");
    list.replaceChildren();
    citations.forEach((c) => {
      const li = text("li", "", { id: "cite-" + c.key });
      li.append(c.authors.join(", ") + " (" + c.year + "). ");
      const href = c.url && safeUrl(c.url);
      li.append(href ? text("a", c.title, { href: href, rel: "noopener noreferrer nofollow" }) : c.title);
      li.append(". " + c.venue + ".");
      list.append(li);
    });
    $("citations-heading").hidden = citations.length === 0;
  }

  function showMatches(matches, skip) {
    const list = $("matches");
    list.replaceChildren();
    matches.filter((m) => m.slug !== skip).forEach((m) => {
      const li = document.createElement("li");
      li.append(text("a", m.question, { href: "/entries/" + encodeURIComponent(m.slug) }));
      list.append(li);
    });
  }

  function render(data) {
    $("result").hidden = false;
    const notice = $("notice");
    notice.replaceChildren();
    notice.className = "";
    if (data.abstained) {
      notice.className = "notice";
      notice.append(text("p", "I don't have a curated answer for this yet, so your question was sent to the TAs. " +
        "Here are the closest entries I know about."));
      $("answer-question").textContent = "";
      $("answer-body").replaceChildren();
      $("answer-body").hidden = true;
      showCitations([]);
      $("experiment").hidden = true;
    } else {
      const a = data.answer;
      if (data.did_you_mean && data.did_you_mean.length > 1) {
        notice.className = "notice";
        notice.append(text("p", "Two entries are close. Did you mean one of these?"));
        const ul = document.createElement("ul");
        data.did_you_mean.forEach((m) => {
          const li = document.createElement("li");
          li.append(text("a", m.question, { href: "/entries/" + encodeURIComponent(m.slug) }));
          ul.append(li);
        });
        notice.append(ul);
      }
      $("answer-question").textContent = a.question + " (confidence " + Math.round(data.confidence * 100) + "%)";
      // answer_html is sanitised on the server (nh3 allow-list, raw HTML disabled).
      $("answer-body").innerHTML = a.answer_html;
      $("answer-body").hidden = false;
      showCitations(a.citations);
      $("experiment").hidden = !a.runner;
      $("experiment").dataset.slug = a.slug;
      if (window.RunnableAnswers && window.RunnableAnswers.reset) window.RunnableAnswers.reset();
    }
    showMatches(data.matches, data.answer ? data.answer.slug : null);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const question = $("question").value;
    if (!question.trim()) { $("status").textContent = "Please type a question."; return; }
    $("ask-button").disabled = true;
    $("status").textContent = "Searching…";
    try {
      const res = await fetch("/api/v1/ask", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ question: question }),
      });
      const data = await res.json();
      if (!res.ok) { $("status").textContent = data.error ? data.error.message : "Request failed."; return; }
      $("status").textContent = "";
      render(data);
    } catch (e) {
      $("status").textContent = "The service could not be reached. Please try again.";
    } finally {
      $("ask-button").disabled = false;
    }
  });
})();
