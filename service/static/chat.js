// The chat: each question becomes a turn with its answer (or a kind decline), citations,
// confidence, "did you mean" choices, related questions, the experiment and feedback.
(function () {
  "use strict";
  const RA = window.RA;
  const $ = (id) => document.getElementById(id);
  const form = $("ask-form");
  const input = $("question");
  const button = $("ask-button");
  const conversation = $("conversation");
  const status = $("status");
  let turns = 0;

  function announce(text) {
    status.textContent = "";
    window.setTimeout(() => { status.textContent = text; }, 50);
  }

  function askButton(question) {
    return RA.el("button", { type: "button", class: "choice", lang: RA.detectLang(question) }, question);
  }

  function confidenceText(value) {
    const level = value >= 0.9 ? "chat.conf_high" : value >= 0.7 ? "chat.conf_mid" : "chat.conf_low";
    return { level: level, text: RA.t(level), value: RA.t("chat.conf_value", { percent: Math.round(value * 100) }) };
  }

  function citationItem(c, prefix) {
    const href = c.url && RA.safeUrl(c.url);
    const title = href ? RA.el("a", { href: href, rel: "noopener noreferrer nofollow" }, c.title) : c.title;
    return RA.el("li", { id: prefix + c.key },
      RA.el("span", { class: "authors" }, c.authors.join(", ")), " (" + c.year + "). ",
      title, ". ", RA.el("em", {}, c.venue), ".");
  }

  // Citation markers link to #cite-<key>; a conversation holds many answers, so each turn
  // gets its own prefix.
  function localiseCitationLinks(body, prefix) {
    body.querySelectorAll('a[href^="#cite-"]').forEach((a) => {
      a.setAttribute("href", "#" + prefix + a.getAttribute("href").slice("#cite-".length));
      a.classList.add("cite-ref");
    });
  }

  function showAnswer(turn, data, number) {
    const q = (name) => turn.querySelector("[data-" + name + "]");
    const answer = data.answer;
    const prefix = "t" + number + "-cite-";
    const shown = new Set();

    if ((data.abstained || !answer) && data.off_topic) {
      q("offtopic").hidden = false;
      const help = data.course_help;
      if (help && (help.text || help.url)) {
        q("course-help").hidden = false;
        q("course-help-text").textContent = help.text ? help.text + " " : "";
        const url = help.url && RA.safeUrl(help.url);
        if (url) {
          q("course-help-link").setAttribute("href", url);
          q("course-help-link").hidden = false;
        }
      }
    } else if (data.abstained || !answer) {
      q("declined").hidden = false;
      q("related-heading").textContent = RA.t("chat.related_declined");
    } else {
      shown.add(answer.slug);
      const head = q("answer-head");
      head.hidden = false;
      const link = q("answer-link");
      link.textContent = answer.question;
      link.setAttribute("href", RA.safeUrl(answer.url) || "/entries/" + encodeURIComponent(answer.slug));
      link.setAttribute("title", RA.t("chat.open_permalink"));
      link.setAttribute("lang", answer.lang);
      const conf = confidenceText(data.confidence);
      const badge = q("confidence");
      badge.className = "confidence " + conf.level.replace("chat.", "");
      badge.replaceChildren(RA.el("span", { class: "level" }, conf.text), " ",
        RA.el("span", { class: "muted" }, "(" + conf.value + ")"));

      if (data.did_you_mean && data.did_you_mean.length > 1) {
        q("dym").hidden = false;
        q("dym-list").replaceChildren(...data.did_you_mean.map((m) => {
          shown.add(m.slug);
          if (m.slug === answer.slug) {
            return RA.el("li", {}, RA.el("span", { class: "choice current" },
              RA.el("span", { lang: RA.detectLang(m.question) }, m.question), " ",
              RA.el("span", { class: "muted" }, RA.t("chat.shown_below"))));
          }
          return RA.el("li", {}, askButton(m.question));
        }));
      }

      const body = q("answer-body");
      body.setAttribute("lang", answer.lang);
      // answer_html is sanitised on the server (nh3 allow-list; raw HTML in Markdown is escaped).
      body.innerHTML = answer.answer_html;
      localiseCitationLinks(body, prefix);

      if (answer.citations && answer.citations.length) {
        q("citations-section").hidden = false;
        q("citations").replaceChildren(...answer.citations.map((c) => citationItem(c, prefix)));
      }
      if (answer.runner) {
        const panel = $("experiment-template").content.firstElementChild.cloneNode(true);
        panel.dataset.slug = answer.slug;
        panel.dataset.runner = answer.runner.name;
        panel.dataset.params = JSON.stringify(answer.runner.params || {});
        panel.dataset.lang = answer.lang;
        panel.querySelectorAll("[lang]").forEach((node) => node.setAttribute("lang", answer.lang));
        q("experiment-slot").replaceWith(panel);
        RA.runs.init(panel);
      }
    }

    const related = (data.matches || []).filter((m) => !shown.has(m.slug));
    if (related.length) {
      q("related-section").hidden = false;
      q("related").replaceChildren(...related.map((m) => RA.el("li", {}, askButton(m.question))));
    }

    if (data.question_id) setUpFeedback(turn, data, related);
    announce(answer && !data.abstained ? RA.t("chat.answered", { title: answer.question })
      : RA.t("chat.declined_status"));
  }

  // One vote per question, changeable: "No" (and a decline) asks what was missing and,
  // with related entries, which one should have answered.
  function setUpFeedback(turn, data, related) {
    const q = (name) => turn.querySelector("[data-" + name + "]");
    const box = q("feedback");
    const declined = data.abstained || !data.answer;
    box.hidden = false;
    if (related.length) {
      q("suggest-row").hidden = false;
      q("feedback-suggest").append(...related.map((m) =>
        RA.el("option", { value: m.slug, lang: RA.detectLang(m.question) }, m.question)));
    }
    const votes = q("feedback-votes");
    const more = q("feedback-more");
    const change = q("feedback-change");
    if (declined) {  // nothing to rate as helpful: say what should have answered it
      votes.hidden = true;
      more.hidden = !related.length;
      box.hidden = !related.length;
    }
    const send = async (body, thanks) => {
      box.querySelectorAll("button, select, textarea").forEach((b) => { b.disabled = true; });
      try {
        const res = await RA.requestJSON("/api/v1/feedback", {
          method: "POST", json: Object.assign({ question_id: data.question_id }, body),
        });
        if (!res.ok) throw new Error(RA.errorMessage(res));
        q("feedback-done").textContent = RA.t(thanks);
        return true;
      } catch (e) {
        q("feedback-done").textContent = e.message || RA.t("common.network_error");
        return false;
      } finally {
        box.querySelectorAll("button, select, textarea").forEach((b) => { b.disabled = false; });
      }
    };
    box.querySelectorAll("button[data-helpful]").forEach((b) => {
      b.addEventListener("click", async () => {
        const helpful = b.dataset.helpful === "true";
        if (await send({ helpful: helpful }, helpful ? "chat.thanks_yes" : "chat.thanks_no")) {
          votes.hidden = true;
          more.hidden = helpful;
          change.hidden = false;
          if (!helpful) q("feedback-comment").focus();
        }
      });
    });
    more.addEventListener("submit", async (event) => {
      event.preventDefault();
      const comment = q("feedback-comment").value.trim();
      const slug = q("feedback-suggest").value;
      const body = { helpful: false, comment: comment || null, suggested_slug: slug || null };
      if (await send(body, "chat.thanks_more")) {
        more.hidden = true;
        votes.hidden = declined;
        change.hidden = declined;
      }
    });
    change.addEventListener("click", () => {
      change.hidden = true;
      votes.hidden = false;
      more.hidden = true;
      q("feedback-done").textContent = "";
    });
  }

  function showError(turn, text) {
    const content = turn.querySelector("[data-content]");
    content.replaceChildren(RA.el("p", { class: "notice error", role: "alert" }, text));
  }

  async function ask(raw) {
    const question = raw.trim();
    const error = $("ask-error");
    error.textContent = "";
    if (!question) {
      error.textContent = RA.t("chat.empty");
      input.focus();
      return;
    }
    const [turn, number] = addTurn(question);
    turn.scrollIntoView({ block: "start" });
    input.value = "";
    button.disabled = true;
    announce(RA.t("chat.searching"));

    const card = turn.querySelector(".answer-card");
    try {
      const res = await RA.requestJSON("/api/v1/ask", { method: "POST", json: { question: question } });
      turn.querySelector("[data-placeholder]").hidden = true;
      turn.querySelector("[data-content]").hidden = false;
      if (!res.ok) {
        showError(turn, RA.errorMessage(res));
      } else {
        showAnswer(turn, res.data, number);
        remember(question, res.data);
      }
    } catch (e) {
      turn.querySelector("[data-placeholder]").hidden = true;
      turn.querySelector("[data-content]").hidden = false;
      showError(turn, RA.t("common.network_error"));
    } finally {
      card.setAttribute("aria-busy", "false");
      button.disabled = false;
    }
  }

  function addTurn(question) {
    const number = ++turns;
    const turn = $("turn-template").content.firstElementChild.cloneNode(true);
    turn.id = "turn-" + number;
    const bubble = turn.querySelector("[data-question]");
    bubble.textContent = question;
    bubble.setAttribute("lang", RA.detectLang(question));
    conversation.append(turn);
    document.body.classList.add("has-conversation");
    return [turn, number];
  }

  // The conversation survives a reload and a language switch (this tab, this session).
  // After a switch, each answer is shown in the new interface language when its entry
  // has it (the entry's answer block, fetched without asking again).
  const STORE = "ra-conversation-v1";
  const MAX_KEPT = 30;

  function stored() {
    try {
      const items = JSON.parse(window.sessionStorage.getItem(STORE) || "[]");
      return Array.isArray(items) ? items : [];
    } catch (e) {
      return [];
    }
  }

  function remember(question, data) {
    try {
      const items = stored().concat([{ question: question, data: data }]).slice(-MAX_KEPT);
      window.sessionStorage.setItem(STORE, JSON.stringify(items));
    } catch (e) { /* storage full or disabled: the conversation just is not kept */ }
  }

  async function inInterfaceLanguage(data) {
    const lang = document.documentElement.lang;
    const answer = data.answer;
    if (!answer || answer.lang === lang) return data;
    try {
      const res = await RA.requestJSON("/api/v1/entries/" + encodeURIComponent(answer.slug) +
        "/answer?lang=" + encodeURIComponent(lang) + "&course=" + encodeURIComponent(answer.course));
      if (res.ok && res.data.lang === lang) return Object.assign({}, data, { answer: res.data });
    } catch (e) { /* keep the answer as it was */ }
    return data;
  }

  async function restore() {
    for (const item of stored()) {
      if (!item || typeof item.question !== "string" || !item.data) continue;
      const [turn, number] = addTurn(item.question);
      turn.querySelector("[data-placeholder]").hidden = true;
      turn.querySelector("[data-content]").hidden = false;
      turn.querySelector(".answer-card").setAttribute("aria-busy", "false");
      showAnswer(turn, await inInterfaceLanguage(item.data), number);
    }
  }
  restore();

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ask(input.value);
  });
  input.addEventListener("keydown", (event) => {
    // Enter sends; Shift+Enter is a new line; Enter that confirms an IME conversion is not.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      ask(input.value);
    }
  });
  // Example chips, related questions and "did you mean" choices ask their text.
  document.addEventListener("click", (event) => {
    const target = event.target.closest("button.choice, button.chip");
    if (!target) return;
    ask(target.dataset.ask || target.textContent);
  });
})();
