// icgen serve: the page's only script. Every text from the server (user- or model-written included) is shown
// with textContent, never as markup.
"use strict";

const $ = (id) => document.getElementById(id);
const CORE = ["gain", "ugb", "pm", "gm", "bw", "power"];
let info = null;
let jobId = null;
let pollTimer = null;
let leaseTimer = null;

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

async function api(method, path, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    return { status: 0, ok: false, data: { error: "the server cannot be reached: " + err } };
  }
  let data;
  try {
    data = await response.json();
  } catch (err) {
    data = { error: "HTTP " + response.status };
  }
  return { status: response.status, ok: response.ok, data };
}

function si(value, unit, digits = 4) {
  if (value === null || value === undefined || !isFinite(value)) return "—";
  const prefixes = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"], [1, ""], [1e-3, "m"], [1e-6, "µ"],
                    [1e-9, "n"], [1e-12, "p"], [1e-15, "f"]];
  const size = Math.abs(value);
  for (const [scale, prefix] of prefixes) {
    if (size >= scale * 0.9995 || scale === 1e-15) return Number((value / scale).toPrecision(digits)) + " " + prefix + unit;
  }
  return String(value);
}

function clearFieldErrors() {
  for (const node of document.querySelectorAll(".field-error")) node.textContent = "";
  for (const node of document.querySelectorAll("input.invalid")) node.classList.remove("invalid");
  $("size-error").textContent = "";
}

function showError(field, message) {
  const name = field ? String(field).replace(/^specs\./, "") : null;
  const slot = name ? $("err-" + name) : null;
  if (slot) {
    slot.textContent = message;
    const input = $("spec-" + name) || $(name);
    if (input) input.classList.add("invalid");
  } else {
    $("size-error").textContent = message;
  }
}

function specField(spec) {
  const label = el("label", null, "field");
  label.appendChild(el("span", spec.name, "name"));
  const input = el("input");
  input.id = "spec-" + spec.name;
  input.name = spec.name;
  input.type = "text";
  input.autocomplete = "off";
  if (spec.example) input.placeholder = spec.example;
  label.appendChild(input);
  label.appendChild(el("span", spec.help, "help"));
  const error = el("span", null, "field-error");
  error.id = "err-" + spec.name;
  label.appendChild(error);
  return label;
}

function fillSelect(select, names) {
  select.replaceChildren();
  for (const name of names) {
    const option = el("option", name);
    option.value = name;
    select.appendChild(option);
  }
}

async function start() {
  const got = await api("GET", "/api/info");
  if (!got.ok) {
    $("size-error").textContent = got.data.error || "the server did not answer";
    return;
  }
  info = got.data;
  $("version").textContent = "icgen " + info.version;
  for (const spec of info.specs) {
    (CORE.includes(spec.name) ? $("spec-fields") : $("more-fields")).appendChild(specField(spec));
  }
  $("budget").value = info.default_budget;
  $("budget").max = info.max_budget;
  fillSelect($("tech"), info.techs);
  fillSelect($("model"), info.models);
  fillSelect($("objective"), info.objectives.map((o) => o.name));
  $("objective").value = info.default_objective;
  $("objective").addEventListener("change", describeObjective);
  describeObjective();
  $("margin").value = info.default_margin;
  $("tech").addEventListener("change", fillCorners);
  fillCorners();
  $("validate-file").addEventListener("change", readValidateFile);
  $("size-form").addEventListener("submit", submitSize);
  $("cancel-button").addEventListener("click", () => jobId && api("POST", "/api/jobs/" + jobId + "/cancel"));
  $("copy-answer").addEventListener("click", copyAnswer);
  $("validate-form").addEventListener("submit", submitValidate);
  const match = /job=([0-9a-f]{32})/.exec(location.hash);
  if (match) follow(match[1]);  // a reload finds the same job
}

function describeObjective() {
  const chosen = info.objectives.find((o) => o.name === $("objective").value);
  $("objective-help").textContent = chosen ? "What to optimise once the specs are met: " + chosen.what + "." : "";
}

function fillCorners() {
  // Only a technology with corner sets offers them; "" sizes at the technology's own (nominal) models.
  const sets = info.corner_sets[$("tech").value] || [];
  const select = $("corners");
  select.replaceChildren();
  const none = el("option", "none (nominal models only)");
  none.value = "";
  select.appendChild(none);
  for (const name of sets) {
    const option = el("option", name + " (budget " + info.budget_per_corner + " per corner unless given)");
    option.value = name;
    select.appendChild(option);
  }
  $("corners-field").hidden = sets.length === 0;
}

function readValidateFile() {
  // The file is read here into the paste box: it then goes the paste's way (same size limit, same checks).
  $("err-file").textContent = "";
  const file = $("validate-file").files[0];
  if (!file) return;
  const limit = info.max_answer_bytes;
  if (file.size > limit) {
    $("err-file").textContent = file.name + ": " + file.size + " bytes is larger than the limit of " + limit +
      " bytes for an answer";
    return;
  }
  const reader = new FileReader();
  reader.onload = () => { $("validate-text").value = String(reader.result); };
  reader.onerror = () => { $("err-file").textContent = file.name + ": could not be read"; };
  reader.readAsText(file);
}

async function submitSize(event) {
  event.preventDefault();
  clearFieldErrors();
  const specs = {};
  for (const spec of info.specs) {
    const value = $("spec-" + spec.name).value.trim();
    if (value) specs[spec.name] = value;
  }
  const body = { specs, tech: $("tech").value, model: $("model").value, objective: $("objective").value,
                 margin: $("margin").value.trim() };
  if ($("corners").value) body.corners = $("corners").value;
  const budget = $("budget").value.trim();
  // With corners the server's per-corner budget applies unless one is typed over the default
  if (budget && !(body.corners && Number(budget) === info.default_budget)) body.budget = Number(budget);
  const got = await api("POST", "/api/size", body);
  if (!got.ok) {
    showError(got.data.field, got.data.error || "HTTP " + got.status);
    return;
  }
  follow(got.data.id);
}

function follow(id) {
  jobId = id;
  history.replaceState(null, "", "#job=" + id);
  $("result").hidden = true;
  $("progress").hidden = false;
  $("cancel-button").hidden = false;
  $("size-button").disabled = true;
  clearInterval(leaseTimer);
  leaseTimer = setInterval(() => api("POST", "/api/jobs/" + id + "/lease"), Math.max(1000, info.lease_s * 1000 / 3));
  poll();
}

async function poll() {
  clearTimeout(pollTimer);
  const id = jobId;
  const got = await api("GET", "/api/jobs/" + id);
  if (id !== jobId) return;
  if (!got.ok) {
    stopFollowing();
    $("progress").hidden = true;
    $("size-error").textContent = got.data.error || "HTTP " + got.status;
    return;
  }
  const job = got.data;
  $("progress-bar").max = Math.max(1, job.budget);
  $("progress-bar").value = job.simulations;
  const shortfall = job.best_shortfall === null ? "—" : Number(job.best_shortfall).toFixed(3);
  $("progress-text").textContent = job.state + ": " + job.simulations + " / " + job.budget +
    " simulations, best shortfall " + shortfall + (job.step ? " (" + job.step + ")" : "");
  if (job.done) {
    stopFollowing();
    showResult(job);
  } else {
    pollTimer = setTimeout(poll, info.poll_s * 1000);
  }
}

function stopFollowing() {
  clearTimeout(pollTimer);
  clearInterval(leaseTimer);
  $("cancel-button").hidden = true;
  $("size-button").disabled = false;
}

function cell(row, text, className) {
  row.appendChild(el("td", text, className));
}

function mv(volts) {
  return volts === null || volts === undefined ? "—" : Math.round(volts * 1000) + " mV";
}

function showResult(job) {
  const result = job.result;
  if (!result || !result.design) {
    $("size-error").textContent = job.error || ("the job ended (" + job.state + ")" +
      (job.cancel_reason ? ": " + job.cancel_reason : "") + " without a design");
    return;
  }
  $("result").hidden = false;
  const verdict = $("verdict");
  verdict.textContent = result.met ? "Meets every spec." :
    "Does NOT meet the specs: the closest design found" + (job.cancel_reason ? " (stopped: " + job.cancel_reason + ")" : "") + ".";
  verdict.className = "verdict " + (result.met ? "good" : "bad");
  $("answer").textContent = result.answer;
  const specBody = $("spec-table").querySelector("tbody");
  specBody.replaceChildren();
  for (const row of result.spec_table) {
    const tr = el("tr");
    cell(tr, row.label);
    cell(tr, row.target_text);
    cell(tr, row.achieved_text);
    cell(tr, row.margin_text);
    cell(tr, row.pass ? "yes" : "NO", row.pass ? "yes" : "no");
    specBody.appendChild(tr);
  }
  showCorners(result);
  const opBody = $("op-table").querySelector("tbody");
  opBody.replaceChildren();
  const health = result.health;
  if (health) {
    $("op-summary").textContent = "VOUT = " + mv(health.vout_v) + " of VDD = " + health.vdd_v + " V";
    for (const [name, d] of Object.entries(health.devices)) {
      const tr = el("tr");
      cell(tr, name);
      cell(tr, d.region === "subthreshold" ? "saturation, weak inv." : d.region);
      for (const v of [d.vgs_v, d.vth_v, d.vds_v, d.vdsat_v, d.saturation_margin_v]) cell(tr, mv(v));
      cell(tr, si(d.id_a, "A", 3));
      opBody.appendChild(tr);
    }
    $("op-flags").textContent = "flags: " + (health.flags.length ? health.flags.join("; ") :
      "none (healthy: output biased, all devices saturated)");
  } else {
    $("op-summary").textContent = "operating point: not available";
  }
  const base = "/api/jobs/" + job.id;
  $("bode").hidden = !result.sweep;
  if (result.sweep) $("bode").src = base + "/bode.svg";
  $("cost").textContent = "found by " + result.source + " after " + result.simulations + " simulations in " +
    Number(result.seconds).toFixed(1) + " s on " + result.tech + " (model " + result.model + "; " +
    result.invalid_model_answers + " of " + result.model_texts.length + " model answers unusable)";
  $("dl-answer").href = base + "/answer.txt";
  $("dl-json").href = base + "/result.json";
  $("dl-deck").href = base + "/deck.cir";
  $("dl-subckt").href = base + "/opamp.subckt";
  $("dl-svg").href = base + "/bode.svg";
  const texts = $("model-texts");
  texts.replaceChildren();
  for (const text of result.model_texts) texts.appendChild(el("pre", text, "model-text"));
  $("model-answers").hidden = result.model_texts.length === 0;
}

function showCorners(result) {
  const report = result.corner_report;
  $("corner-result").hidden = !report;
  if (!report) return;
  $("corner-summary").textContent = (report.passed ? "Passes at every corner of " : "Does NOT pass every corner of ") +
    result.corners + " (the spec table shows each figure at its worst corner)" +
    (result.corners_skipped.length ? "; not simulated: " + result.corners_skipped.join(", ") : "") + ".";
  const body = $("corner-table").querySelector("tbody");
  body.replaceChildren();
  for (const row of report.corners) {
    const tr = el("tr");
    cell(tr, row.corner ? row.corner.name : "—");
    cell(tr, row.status);
    cell(tr, row.passed ? "yes" : "NO", row.passed ? "yes" : "no");
    cell(tr, row.why || "");
    body.appendChild(tr);
  }
}

async function copyAnswer() {
  const text = $("answer").textContent;
  try {
    await navigator.clipboard.writeText(text);
    $("copied").textContent = "copied";
  } catch (err) {
    const range = document.createRange();
    range.selectNodeContents($("answer"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    $("copied").textContent = "selected: press Ctrl-C";
  }
}

const METRICS = [["gain_db", "DC gain", "dB"], ["bw3db_hz", "3 dB bandwidth", "Hz"], ["ugb_hz", "Unity-gain bandwidth", "Hz"],
                 ["pm_deg", "Phase margin", "deg"], ["gm_db", "Gain margin", "dB"], ["power_w", "Power", "W"]];

async function submitValidate(event) {
  event.preventDefault();
  $("validate-error").textContent = "";
  $("validate-button").disabled = true;
  const got = await api("POST", "/api/validate", { text: $("validate-text").value, tech: $("tech").value });
  $("validate-button").disabled = false;
  if (!got.ok) {
    $("validate-error").textContent = got.data.error || "HTTP " + got.status;
    $("validate-result").hidden = true;
    return;
  }
  const report = got.data;
  $("validate-result").hidden = false;
  const verdict = $("validate-verdict");
  verdict.textContent = report.valid ? "VALID: the answer parses, is in range, and simulates as a healthy amplifier" :
    "INVALID: " + report.problems.length + " problem(s)";
  verdict.className = "verdict " + (report.valid ? "good" : "bad");
  const list = $("validate-problems");
  list.replaceChildren();
  for (const problem of report.problems) list.appendChild(el("li", problem.where + ": " + problem.message));
  $("validate-answer").textContent = report.answer ? "re-rendered from typed values:\n" + report.answer : "";
  const body = $("validate-metrics").querySelector("tbody");
  body.replaceChildren();
  if (report.metrics) {
    for (const [key, label, unit] of METRICS) {
      const tr = el("tr");
      cell(tr, label);
      const value = report.metrics[key];
      cell(tr, unit === "dB" || unit === "deg" ? (value === null ? "—" : Number(value).toFixed(2) + " " + unit) : si(value, unit));
      body.appendChild(tr);
    }
  }
  const image = $("validate-bode");
  image.hidden = !report.bode_svg;
  if (report.bode_svg) image.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(report.bode_svg);
}

document.addEventListener("DOMContentLoaded", start);
