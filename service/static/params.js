// Parameter forms built from an experiment's JSON schema (pydantic), checked before sending.
// The server checks again; its errors ({field: "params.<name>"}) are shown on the field.
(function () {
  "use strict";
  const RA = window.RA;
  let counter = 0;

  function kind(spec) {
    if (Array.isArray(spec.enum)) return "choice";
    if (spec.type === "boolean") return "boolean";
    if (spec.type === "integer") return "integer";
    if (spec.type === "number") return "number";
    if (spec.type === "array" && spec.items && spec.items.type === "integer") return "list";
    return "text";
  }

  // The page's language; a parameter's words in it (Japanese ones under "x-ja").
  function pageLang() {
    return document.documentElement.lang === "ja" ? "ja" : "en";
  }

  function words(name, spec) {
    const ja = pageLang() === "ja" ? (spec["x-ja"] || {}) : {};
    const units = spec["x-unit"] || {};
    return {
      title: ja.title || spec.title || name,
      help: ja.description || spec.description || "",
      unit: units[pageLang()] || "",
    };
  }

  function describe(name, spec) {
    const k = kind(spec);
    const w = words(name, spec);
    const parts = [];
    if (w.help) parts.push(w.help);
    if ((k === "integer" || k === "number") && spec.minimum !== undefined && spec.maximum !== undefined) {
      parts.push(RA.t("params.between", { min: spec.minimum, max: spec.maximum }) +
        (w.unit ? " " + w.unit : ""));
    }
    if (k === "list") {
      parts.push(RA.t("params.list_hint", {
        min: spec.items.minimum, max: spec.items.maximum,
        minItems: spec.minItems || 1, maxItems: spec.maxItems || 99,
      }));
    }
    return parts.join(" · ");
  }

  function buildInput(name, spec, value, id, describedBy) {
    const k = kind(spec);
    const common = { id: id, name: "param-" + name, "aria-describedby": describedBy };
    if (k === "boolean") {
      return RA.el("input", Object.assign(common, { type: "checkbox", value: "true", checked: !!value }));
    }
    if (k === "choice") {
      const select = RA.el("select", common);
      spec.enum.forEach((option) => {
        select.append(RA.el("option", { value: option, selected: option === value }, option));
      });
      return select;
    }
    if (k === "integer" || k === "number") {
      return RA.el("input", Object.assign(common, {
        type: "number", min: spec.minimum, max: spec.maximum,
        step: k === "integer" ? "1" : "any", inputmode: k === "integer" ? "numeric" : "decimal",
        value: value === undefined || value === null ? "" : String(value), required: true,
      }));
    }
    return RA.el("input", Object.assign(common, {
      type: "text", inputmode: k === "list" ? "numeric" : null, autocomplete: "off",
      value: Array.isArray(value) ? value.join(", ") : (value === undefined ? "" : String(value)),
    }));
  }

  // Reads one field; returns [value, error message or null].
  function readField(input, spec) {
    const k = kind(spec);
    if (k === "boolean") return [input.checked, null];
    if (k === "choice") {
      return spec.enum.includes(input.value) ? [input.value, null] : [null, RA.t("params.err_choice")];
    }
    if (k === "integer" || k === "number") {
      if (input.validity && input.validity.badInput) {
        return [null, RA.t(k === "integer" ? "params.err_integer" : "params.err_number")];
      }
      const raw = input.value.trim();
      if (raw === "") return [null, RA.t("params.err_required")];
      const value = Number(raw);
      if (!Number.isFinite(value)) return [null, RA.t("params.err_number")];
      if (k === "integer" && !Number.isInteger(value)) return [null, RA.t("params.err_integer")];
      if ((spec.minimum !== undefined && value < spec.minimum) ||
          (spec.maximum !== undefined && value > spec.maximum)) {
        return [null, RA.t("params.err_range", { min: spec.minimum, max: spec.maximum })];
      }
      return [value, null];
    }
    if (k === "list") {
      const parts = input.value.split(/[\s,、，]+/).filter((p) => p !== "");
      const values = [];
      for (const part of parts) {
        if (!/^-?\d+$/.test(part)) return [null, RA.t("params.err_integer")];
        const v = Number(part);
        if (v < spec.items.minimum || v > spec.items.maximum) {
          return [null, RA.t("params.err_range", { min: spec.items.minimum, max: spec.items.maximum })];
        }
        values.push(v);
      }
      const lo = spec.minItems || 1;
      const hi = spec.maxItems || 99;
      if (values.length < lo || values.length > hi) {
        return [null, RA.t("params.err_count", { minItems: lo, maxItems: hi })];
      }
      return [values, null];
    }
    return [input.value, null];
  }

  // Builds the fields into `container`; returns {read, showError, clearErrors, reset}.
  // Field ids are idPrefix + name (default: unique per form on the page).
  function build(container, schema, values, idPrefix) {
    const properties = (schema && schema.properties) || {};
    const prefix = idPrefix || "param" + (++counter) + "-";
    const fields = {};
    container.replaceChildren();

    function render(current) {
      container.replaceChildren();
      Object.entries(properties).forEach(([name, spec]) => {
        const id = prefix + name;
        const value = Object.prototype.hasOwnProperty.call(current, name) ? current[name] : spec.default;
        const help = RA.el("p", { class: "param-help", id: id + "-help" }, describe(name, spec));
        const error = RA.el("p", { class: "field-error", id: id + "-error" });
        const input = buildInput(name, spec, value, id, id + "-help " + id + "-error");
        // The code name stays visible in small type: it is what the API and the
        // provenance call the parameter.
        const label = RA.el("label", { for: id }, words(name, spec).title, " ",
          RA.el("code", { class: "param-code" }, name));
        const row = kind(spec) === "boolean"
          ? RA.el("div", { class: "param param-boolean", "data-param": name },
              RA.el("div", { class: "check-row" }, input, label), help, error)
          : RA.el("div", { class: "param", "data-param": name }, label, input, help, error);
        container.append(row);
        fields[name] = { input: input, error: error, spec: spec };
      });
    }

    function showError(name, message) {
      const field = fields[name];
      if (!field) return false;
      field.error.textContent = message;
      field.input.setAttribute("aria-invalid", "true");
      return true;
    }

    function clearErrors() {
      Object.values(fields).forEach((f) => {
        f.error.textContent = "";
        f.input.removeAttribute("aria-invalid");
      });
    }

    // -> {values, valid}; marks invalid fields and focuses the first one.
    function read() {
      clearErrors();
      const out = {};
      let first = null;
      Object.entries(fields).forEach(([name, f]) => {
        const [value, error] = readField(f.input, f.spec);
        if (error) {
          showError(name, error);
          if (!first) first = f.input;
        } else {
          out[name] = value;
        }
      });
      if (first) first.focus();
      return { values: out, valid: first === null };
    }

    render(values || {});
    return { read: read, showError: showError, clearErrors: clearErrors, reset: () => render(values || {}) };
  }

  RA.params = { build: build };
})();
