// "Run the experiment": start or reuse a run, show its progress, then the verdict, finding,
// figures, metrics and provenance. Earlier results stay (dimmed) while a new run is going,
// so the page does not jump.
(function () {
  "use strict";
  const RA = window.RA;
  const POLL_MS = 800;
  let catalogue = null;

  function experiments() {
    if (!catalogue) {
      catalogue = RA.requestJSON("/api/v1/experiments").then((res) => {
        const byName = {};
        if (res.ok && res.data) res.data.items.forEach((exp) => { byName[exp.name] = exp; });
        return byName;
      }).catch(() => ({}));
    }
    return catalogue;
  }

  function pick(texts, lang) {
    if (!texts) return "";
    return texts[lang] || texts.en || Object.values(texts)[0] || "";
  }

  function init(section) {
    if (section.dataset.ready) return;
    section.dataset.ready = "1";
    const q = (name) => section.querySelector("[data-" + name + "]");
    const slug = section.dataset.slug;
    const lang = section.dataset.lang || "en";
    let defaults = {};
    try { defaults = JSON.parse(section.dataset.params || "{}"); } catch (e) { defaults = {}; }
    const runButton = q("run");
    const paramButton = q("run-params");
    const progress = q("run-progress");
    const bar = q("run-bar");
    const statusText = q("run-status-text");
    const message = q("run-status");
    const result = q("run-result");
    let meta = null;
    let form = null;
    let poller = null;
    let ticker = null;

    experiments().then((byName) => {
      meta = byName[section.dataset.runner] || null;
      if (!meta) return;
      q("exp-title").textContent = pick(meta.title, lang);
      q("exp-claim").textContent = pick(meta.claim, lang);
      const values = Object.assign({}, defaults);
      form = RA.params.build(q("param-fields"), meta.params_schema, values);
    });

    // While a run is going, an earlier result stays (dimmed); without one, a placeholder
    // of the figure's size holds its place so the page does not jump when it arrives.
    function busy(on) {
      runButton.disabled = on;
      paramButton.disabled = on;
      section.setAttribute("aria-busy", on ? "true" : "false");
      result.classList.toggle("stale", on && !result.hidden);
      if (on && result.hidden) {
        result.hidden = false;
        result.classList.add("pending");
      }
      if (!on) {
        progress.hidden = true;
        stopTimers();
        if (result.classList.contains("pending")) {
          result.classList.remove("pending");
          result.hidden = !result.dataset.shown;
        }
      }
    }

    function stopTimers() {
      if (poller) { clearTimeout(poller); poller = null; }
      if (ticker) { clearInterval(ticker); ticker = null; }
    }

    // Progress line: queued (indeterminate bar) or running (bar against the time budget).
    function showProgress(status, elapsedAtPoll) {
      progress.hidden = false;
      const budget = meta ? Math.round(meta.time_budget_s) : 0;
      const since = performance.now();
      const update = () => {
        const seconds = Math.floor(elapsedAtPoll + (performance.now() - since) / 1000);
        if (status === "running") {
          bar.max = Math.max(budget, 1);
          bar.value = Math.min(seconds, bar.max);
          statusText.textContent = RA.t("run.running", { seconds: seconds, budget: budget });
        } else {
          bar.removeAttribute("value");
          statusText.textContent = status === "queued"
            ? RA.t("run.queued", { seconds: seconds }) : RA.t("run.starting");
        }
      };
      if (ticker) clearInterval(ticker);
      update();
      ticker = setInterval(update, 250);
    }

    // A metric's row in the page's language: its label (the code name as a tooltip),
    // its value with the unit; yes/no in words.
    function metricRow(name, value, label) {
      const head = label
        ? RA.el("th", { scope: "row", title: name }, lang === "ja" ? label.ja : label.en)
        : RA.el("th", { scope: "row" }, RA.el("code", {}, name));
      const unit = label ? (lang === "ja" ? label.unit_ja : label.unit) : "";
      const shown = typeof value === "boolean" ? RA.t(value ? "run.yes" : "run.no")
        : RA.formatValue(value) + (unit ? (unit === "×" || unit === "%" ? unit : " " + unit) : "");
      return RA.el("tr", {}, head, RA.el("td", {}, shown));
    }

    // The few metrics the verdict rests on first; the rest folded away below them.
    function showMetrics(run) {
      const metrics = run.metrics || {};
      const labels = run.metric_labels || {};
      const key = (run.verdict_metrics || []).filter((name) => name in metrics);
      const all = Object.keys(metrics);
      // Without verdict metrics (an older run), every metric is in the first table.
      const first = key.length ? key : all;
      const rest = all.filter((name) => !first.includes(name));
      const rows = (names) => names.map((name) => metricRow(name, metrics[name], labels[name]));
      q("metrics").querySelector("tbody").replaceChildren(...rows(first));
      const more = q("all-metrics");
      more.hidden = rest.length === 0;
      q("all-metrics-summary").textContent = RA.t("run.all_metrics", { count: rest.length });
      more.querySelector("tbody").replaceChildren(...rows(rest));
    }

    function provenanceItems(run) {
      const p = run.provenance || {};
      const rows = [
        ["run.prov_experiment", p.experiment],
        ["run.prov_params", Object.entries(p.params || {})
          .map(([name, value]) => name + "=" + JSON.stringify(value)).join(", ")],
        ["run.prov_seed", p.seed],
        ["run.prov_code", String(p.code_hash || "").slice(0, 12)],
        ["run.prov_torch", p.torch_version],
        ["run.prov_isolation", p.isolation],
        ["run.prov_duration", p.duration_s !== null && p.duration_s !== undefined ? p.duration_s.toFixed(2) + " s" : ""],
        ["run.prov_cpu", p.cpu_s !== null && p.cpu_s !== undefined ? p.cpu_s.toFixed(2) + " s" : ""],
        ["run.prov_memory", p.peak_rss_mb ? Math.round(p.peak_rss_mb) + " MB" : ""],
        ["run.prov_finished", p.finished_at ? new Date(p.finished_at).toLocaleString() : ""],
        ["run.prov_run", run.id],
      ];
      const out = [];
      rows.forEach(([key, value]) => {
        if (value === undefined || value === null || value === "") return;
        out.push(RA.el("dt", {}, RA.t(key)), RA.el("dd", {}, RA.el("code", {}, String(value))));
      });
      return out;
    }

    function showResult(run, cached) {
      result.dataset.shown = "1";
      busy(false);
      const verdict = q("verdict");
      let says = run.supports_claim === null ? "undecided" : run.supports_claim ? "supports" : "not_supports";
      if (run.as_expected === true) says = run.supports_claim ? "expected_shows" : "expected_absent";
      if (run.as_expected === false) says = run.supports_claim ? "unexpected_shows" : "unexpected_absent";
      verdict.textContent = RA.t("run." + says);
      verdict.className = "verdict " + (run.as_expected === true || (run.as_expected !== false && run.supports_claim) ? "good" : "warn");
      q("finding").textContent = pick(run.finding, lang);
      const byLang = run.figures_by_lang || {};
      q("figures").replaceChildren(...(byLang[lang] || run.figures || []).map((url, i) =>
        RA.el("figure", {}, RA.el("img", {
          src: url, alt: RA.t("run.figure_alt", { n: i + 1 }), width: 600, height: 400,
          decoding: "async",
        }))));
      showMetrics(run);
      q("provenance").replaceChildren(...provenanceItems(run));
      result.hidden = false;
      const seconds = (run.provenance && run.provenance.duration_s) || 0;
      message.textContent = RA.t("run.finished", { seconds: seconds.toFixed(1) }) +
        (cached ? " " + RA.t("run.cached") : "");
      message.className = "run-message";
    }

    function fail(text) {
      busy(false);
      message.textContent = text;
      message.className = "run-message error";
    }

    async function poll(url) {
      let res;
      try {
        res = await RA.requestJSON(url);
      } catch (e) {
        poller = setTimeout(() => poll(url), POLL_MS * 2);
        return;
      }
      if (!res.ok) { fail(RA.errorMessage(res)); return; }
      const run = res.data;
      if (run.status === "succeeded") { showResult(run, false); return; }
      if (run.status === "timed_out") { fail(RA.t("run.timed_out")); return; }
      if (run.status === "failed") {
        fail(RA.t("run.failed", { message: run.error ? run.error.message : "?" }));
        return;
      }
      if (run.status !== section.dataset.lastStatus) {
        section.dataset.lastStatus = run.status;
        const elapsed = run.status === "running" ? (run.elapsed_s || 0)
          : (performance.now() - Number(section.dataset.startedAt || performance.now())) / 1000;
        showProgress(run.status, elapsed);
      }
      poller = setTimeout(() => poll(url), POLL_MS);
    }

    async function start(params) {
      stopTimers();
      busy(true);
      message.textContent = "";
      message.className = "run-message";
      section.dataset.lastStatus = "";
      section.dataset.startedAt = String(performance.now());
      showProgress("starting", 0);
      let res;
      try {
        res = await RA.requestJSON("/api/v1/entries/" + encodeURIComponent(slug) + "/runs", {
          method: "POST", json: params ? { params: params } : {},
        });
      } catch (e) {
        fail(RA.t("common.network_error"));
        return;
      }
      if (res.status === 400 && res.data && res.data.error) {
        const field = String(res.data.error.field || "");
        const name = field.startsWith("params.") ? field.split(".")[1] : null;
        q("params-details").open = true;
        if (name && form && form.showError(name, res.data.error.message)) {
          fail(RA.t("run.fix_params"));
        } else {
          fail(RA.errorMessage(res));
        }
        return;
      }
      if (res.status === 503) { fail(RA.t("run.queue_full")); return; }
      if (!res.ok) { fail(RA.errorMessage(res)); return; }
      const run = res.data;
      if (run.status === "succeeded") { showResult(run, true); return; }
      poll(run.url);
    }

    runButton.addEventListener("click", () => {
      if (form) form.clearErrors();
      start(null);
    });
    q("param-form").addEventListener("submit", (event) => {
      event.preventDefault();
      if (!form) return;
      const read = form.read();
      if (!read.valid) {
        message.textContent = RA.t("run.fix_params");
        message.className = "run-message error";
        return;
      }
      start(read.values);
    });
    q("reset-params").addEventListener("click", () => { if (form) form.reset(); });
  }

  function initAll(root) {
    (root || document).querySelectorAll("[data-experiment]").forEach(init);
  }

  RA.runs = { init: init, initAll: initAll };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => initAll());
  } else {
    initAll();
  }
})();
