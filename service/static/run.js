// "Run the experiment": start a run, show progress, then the finding, metrics and figures.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  let timer = null;

  function reset() {
    if (timer) { clearTimeout(timer); timer = null; }
    $("run-status").textContent = "";
    $("run-finding").textContent = "";
    $("run-metrics").replaceChildren();
    $("run-figures").replaceChildren();
    $("run-button").disabled = false;
  }

  function showResult(run) {
    const lang = document.documentElement.lang === "ja" ? "ja" : "en";
    $("run-finding").textContent = run.finding ? (run.finding[lang] || run.finding.en) : "";
    const table = $("run-metrics");
    table.replaceChildren();
    Object.entries(run.metrics || {}).forEach(([name, value]) => {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.textContent = name;
      const td = document.createElement("td");
      td.textContent = typeof value === "number" ? Number(value.toPrecision(4)).toString() : String(value);
      tr.append(th, td);
      table.append(tr);
    });
    const figs = $("run-figures");
    figs.replaceChildren();
    (run.figures || []).forEach((url, i) => {
      const img = document.createElement("img");
      img.src = url;
      img.alt = "Figure " + (i + 1) + " of the experiment";
      img.width = 600; img.height = 400;
      figs.append(img);
    });
    const p = run.provenance || {};
    $("run-status").textContent = "Finished in " + (p.duration_s || 0).toFixed(1) + " s · seed " + run.seed +
      " · torch " + p.torch_version + " · code " + String(p.code_hash || "").slice(0, 10) +
      (run.cached ? " · cached result" : "");
  }

  async function poll(url) {
    const res = await fetch(url);
    const run = await res.json();
    if (run.status === "succeeded") { showResult(run); $("run-button").disabled = false; return; }
    if (run.status === "failed" || run.status === "timed_out") {
      $("run-status").textContent = "The run " + run.status.replace("_", " ") + ": " +
        (run.error ? run.error.message : "no details");
      $("run-button").disabled = false;
      return;
    }
    $("run-status").textContent = run.status === "running"
      ? "Running… " + (run.elapsed_s || 0).toFixed(0) + " s"
      : "Queued…";
    timer = setTimeout(() => poll(url), 700);
  }

  async function start() {
    const slug = $("experiment").dataset.slug;
    reset();
    $("run-button").disabled = true;
    $("run-status").textContent = "Starting…";
    try {
      const res = await fetch("/api/v1/entries/" + encodeURIComponent(slug) + "/runs", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
      });
      const run = await res.json();
      if (!res.ok) {
        $("run-status").textContent = run.error ? run.error.message : "Could not start the run.";
        $("run-button").disabled = false;
        return;
      }
      if (run.status === "succeeded") { showResult(run); $("run-button").disabled = false; return; }
      poll(run.url);
    } catch (e) {
      $("run-status").textContent = "The service could not be reached.";
      $("run-button").disabled = false;
    }
  }

  document.addEventListener("DOMContentLoaded", () => $("run-button").addEventListener("click", start));
  window.RunnableAnswers = { reset: reset };
})();
