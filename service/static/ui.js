// Shared helpers: interface strings, DOM building without innerHTML, JSON requests.
(function () {
  "use strict";
  let strings = null;

  function t(key, values) {
    if (strings === null) {
      const node = document.getElementById("ui-strings");
      strings = node ? JSON.parse(node.textContent) : {};
    }
    let text = Object.prototype.hasOwnProperty.call(strings, key) ? strings[key] : key;
    Object.entries(values || {}).forEach(([name, value]) => {
      text = text.split("{" + name + "}").join(String(value));
    });
    return text;
  }

  // el("a", {href: "/x", class: "y"}, "text", childNode): attributes and text only.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([name, value]) => {
      if (value === null || value === undefined || value === false) return;
      node.setAttribute(name, value === true ? "" : String(value));
    });
    children.forEach((child) => {
      if (child === null || child === undefined) return;
      node.append(child instanceof Node ? child : String(child));
    });
    return node;
  }

  function safeUrl(url) {
    try {
      const parsed = new URL(url, window.location.href);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch (e) {
      return null;
    }
  }

  function csrfHeaders() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? { "X-CSRF-Token": meta.content } : {};
  }

  // -> {ok, status, data, headers}; throws only when the server cannot be reached.
  async function requestJSON(url, options) {
    const opts = Object.assign({ method: "GET" }, options || {});
    const headers = Object.assign({ Accept: "application/json" }, csrfHeaders(), opts.headers || {});
    if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(opts.json);
      delete opts.json;
    }
    opts.headers = headers;
    opts.credentials = "same-origin";
    const res = await fetch(url, opts);
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    return { ok: res.ok, status: res.status, data: data, headers: res.headers };
  }

  function errorMessage(response) {
    const err = response && response.data && response.data.error;
    return err && err.message ? err.message : t("common.request_failed");
  }

  function formatValue(value) {
    if (typeof value === "number") {
      if (Number.isInteger(value)) return value.toString();
      return Number(value.toPrecision(4)).toString();
    }
    if (typeof value === "boolean") return value ? "✓" : "✗";
    if (Array.isArray(value)) return value.map(formatValue).join(", ");
    return String(value);
  }

  const JAPANESE = /[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]/;
  function detectLang(text) {
    return JAPANESE.test(text) ? "ja" : "en";
  }

  window.RA = Object.assign(window.RA || {}, {
    t: t, el: el, safeUrl: safeUrl, requestJSON: requestJSON, errorMessage: errorMessage,
    formatValue: formatValue, detectLang: detectLang,
  });
})();
