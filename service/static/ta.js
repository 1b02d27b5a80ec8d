// The TA entry editor: live preview, citation rows, experiment parameters, similar entries.
(function () {
  "use strict";
  const RA = window.RA;
  const dataNode = document.getElementById("editor-data");
  const form = document.getElementById("entry-form");
  if (!dataNode || !form) return;
  const editor = JSON.parse(dataNode.textContent);

  function debounce(fn, ms) {
    let timer = null;
    return (...args) => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    };
  }

  // -- citations ---------------------------------------------------------------
  const rows = document.getElementById("citation-rows");
  const rowTemplate = document.getElementById("citation-template");

  function citationKeys() {
    return Array.from(rows.querySelectorAll('input[name$="-key"]'))
      .map((input) => input.value.trim()).filter((key) => key !== "");
  }

  function nextIndex() {
    let max = -1;
    rows.querySelectorAll('input[name$="-key"]').forEach((input) => {
      const match = /^cite-(\d+)-key$/.exec(input.name);
      if (match) max = Math.max(max, Number(match[1]));
    });
    return max + 1;
  }

  document.getElementById("add-citation").addEventListener("click", () => {
    // The template holds only our own static markup; "__i__" becomes the row number.
    rows.insertAdjacentHTML("beforeend", rowTemplate.innerHTML.split("__i__").join(String(nextIndex())));
    const added = rows.lastElementChild;
    added.querySelector("input").focus();
  });
  rows.addEventListener("click", (event) => {
    const button = event.target.closest("[data-remove-citation]");
    if (!button) return;
    const row = button.closest("[data-citation-row]");
    const next = row.nextElementSibling || row.previousElementSibling;
    row.remove();
    (next ? next.querySelector("input") : document.getElementById("add-citation")).focus();
    schedulePreviews();
  });
  rows.addEventListener("input", (event) => {
    if (event.target.name && event.target.name.endsWith("-key")) schedulePreviews();
  });

  // -- live preview -------------------------------------------------------------
  async function preview(textarea) {
    const lang = textarea.dataset.answerInput;
    const target = document.getElementById("preview-" + lang);
    const warning = document.getElementById("preview-warning-" + lang);
    try {
      const res = await RA.requestJSON("/ta/preview", {
        method: "POST", json: { markdown: textarea.value, keys: citationKeys() },
      });
      if (!res.ok) { warning.textContent = RA.errorMessage(res); return; }
      // The server sanitises the HTML (same renderer as the student pages).
      target.innerHTML = res.data.html;
      warning.textContent = res.data.unknown_keys.length
        ? RA.t("ta_js.unknown_keys", { keys: res.data.unknown_keys.map((k) => "@" + k).join(", ") })
        : "";
    } catch (e) {
      warning.textContent = RA.t("common.network_error");
    }
  }
  const answerInputs = Array.from(form.querySelectorAll("[data-answer-input]"));
  const previewers = new Map(answerInputs.map((t) => [t, debounce(() => preview(t), 300)]));
  answerInputs.forEach((t) => t.addEventListener("input", previewers.get(t)));
  const schedulePreviews = debounce(() => answerInputs.forEach(preview), 300);
  answerInputs.forEach(preview);

  // -- experiment and its parameters ----------------------------------------------
  const runnerSelect = document.getElementById("runner");
  const paramBox = document.getElementById("runner-params");
  let paramForm = null;

  function buildParams(name, values, errors) {
    paramForm = null;
    paramBox.replaceChildren();
    const exp = editor.experiments[name];
    document.getElementById("runner-params-help").hidden = !exp;
    if (!exp) return;
    paramForm = RA.params.build(paramBox, exp.params_schema, values || {}, "param-");
    Object.entries(errors || {}).forEach(([field, message]) => paramForm.showError(field, message));
  }
  runnerSelect.addEventListener("change", () => {
    const same = runnerSelect.value === editor.runner;
    buildParams(runnerSelect.value, same ? editor.params : {}, {});
  });
  buildParams(editor.runner, editor.params, editor.param_errors);

  form.addEventListener("submit", (event) => {
    if (paramForm && !paramForm.read().valid) event.preventDefault();
  });

  // -- new entries: slug suggestion and similar existing entries -----------------------
  if (editor.mode !== "new") return;
  const slug = document.getElementById("slug");
  const english = document.getElementById("question_en");
  let slugEdited = slug.value !== "";
  slug.addEventListener("input", () => { slugEdited = slug.value !== ""; });
  function suggestSlug() {
    if (slugEdited) return;
    slug.value = english.value.toLowerCase().normalize("NFKD").replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "").split("-").slice(0, 8).join("-").slice(0, 80).replace(/-+$/, "");
  }
  english.addEventListener("input", suggestSlug);
  suggestSlug();

  // The slug's problem in words as soon as the TA leaves the field (and again on submit:
  // the server checks too, but this saves a round trip for the most common slip).
  const slugError = document.getElementById("err-slug");
  function checkSlug() {
    slug.value = slug.value.trim();
    const message = slug.validity.valueMissing ? slug.dataset.missing
      : slug.validity.patternMismatch ? slug.dataset.mismatch : "";
    slugError.textContent = message;
    if (message) slug.setAttribute("aria-invalid", "true");
    else slug.removeAttribute("aria-invalid");
    return !message;
  }
  slug.addEventListener("blur", checkSlug);
  slug.addEventListener("input", () => { if (slugError.textContent) checkSlug(); });
  form.addEventListener("submit", (event) => {
    if (!checkSlug()) { event.preventDefault(); slug.focus(); }
  });

  const panel = document.getElementById("similar-panel");
  const list = document.getElementById("similar-list");
  const questionInputs = Array.from(form.querySelectorAll("[data-question-input]"));

  async function findSimilar() {
    const questions = {};
    questionInputs.forEach((input) => {
      if (input.value.trim().length >= 3) questions[input.name.slice("question_".length)] = input.value;
    });
    if (!Object.keys(questions).length) { panel.hidden = true; return; }
    try {
      const res = await RA.requestJSON("/ta/similar", { method: "POST", json: { questions: questions } });
      if (!res.ok) return;
      const matches = res.data.matches;
      panel.hidden = matches.length === 0;
      list.replaceChildren(...matches.map((m) => RA.el("li", {},
        RA.el("a", { href: m.edit_url }, m.question), " ",
        RA.el("span", { class: m.likely_duplicate ? "field-error" : "muted" },
          "(" + Math.round(m.confidence * 100) + "%" +
          (m.likely_duplicate ? " · " + RA.t("ta_js.likely_duplicate") : "") + ")"))));
    } catch (e) { /* the panel is advisory; saving checks again */ }
  }
  const scheduleSimilar = debounce(findSimilar, 500);
  questionInputs.forEach((input) => input.addEventListener("input", scheduleSimilar));
  findSimilar();
})();
