// The few interactions the server-rendered pages need; no build step.
"use strict";

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function working(form) {
  // A form that starts a computation runs it once: its button is disabled and shows the time spent, and a
  // second press joins the first (nothing more is sent). False when one already runs.
  if (form.dataset.working) return false;
  form.dataset.working = "yes";
  const button = form.querySelector("button[type=submit]"), state = form.querySelector(".working");
  if (button) button.disabled = true;
  const started = Date.now(), doing = (button && button.dataset.doing) || "loading";
  const tick = () => { if (state) state.textContent = `${doing}… ${Math.round((Date.now() - started) / 1000)} s`; };
  tick();
  form.ticking = setInterval(tick, 1000);
  return true;
}

function idle(form) {
  delete form.dataset.working;
  clearInterval(form.ticking);
  const button = form.querySelector("button[type=submit]"), state = form.querySelector(".working");
  if (button) button.disabled = false;
  if (state) state.textContent = "";
}

// Back to a page kept by the browser: its forms are ready again.
window.addEventListener("pageshow", (e) => { if (e.persisted) document.querySelectorAll("form[data-working]").forEach(idle); });

function imagePage() {
  const select = document.getElementById("image-select");
  if (!select) return;
  const model = select.dataset.model;
  select.addEventListener("change", () => { location.href = `/m/${model}/image/${encodeURIComponent(select.value)}`; });
  const upload = async (file) => {
    const form = new FormData();
    form.append("image", file);
    try {
      const answer = await api("/api/upload", { method: "POST", body: form });
      location.href = `/m/${model}/image/${encodeURIComponent(answer.image)}`;
    } catch (error) { document.getElementById("upload-error").textContent = error.message; }
  };
  document.getElementById("upload").addEventListener("change", (e) => e.target.files[0] && upload(e.target.files[0]));
  const drop = document.getElementById("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); upload(e.dataTransfer.files[0]); });
  const form = document.getElementById("explain-form");
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!working(form)) return;
    const query = new URLSearchParams();
    for (const name of ["target", "layer", "region", "box"]) { if (form.elements[name] && form.elements[name].value) query.set(name, form.elements[name].value); }
    location.href = form.dataset.base + encodeURIComponent(form.elements.method.value) + (query.size ? "?" + query : "");
  });
}

function methodSwitch() {
  // Another method on the same image, class and region; the layer only for a method that takes one.
  const form = document.getElementById("switch-form");
  if (!form) return;
  const select = form.elements.method;
  select.addEventListener("change", () => {
    if (!working(form)) return;
    const query = new URLSearchParams();
    const keep = ["target", "region", "box", ...(select.selectedOptions[0].dataset.layer === "yes" ? ["layer"] : [])];
    for (const name of keep) { if (form.elements[name] && form.elements[name].value) query.set(name, form.elements[name].value); }
    location.href = form.dataset.base + encodeURIComponent(select.value) + (query.size ? "?" + query : "");
  });
  form.addEventListener("submit", (e) => e.preventDefault());
}

function explainPage() {
  const slider = document.getElementById("opacity");
  if (!slider) return;
  slider.addEventListener("input", () => { document.getElementById("overlay").style.opacity = slider.value; });
  const button = document.getElementById("faithfulness"), out = document.getElementById("faithfulness-result");
  button.addEventListener("click", async () => {
    button.disabled = true; out.textContent = "computing...";
    try {
      const s = await api("/api/faithfulness", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ key: button.dataset.key }) });
      const area = (v) => (v === null ? "undefined" : v.toFixed(3));
      const line = (name, auc, r) => {
        const item = document.createElement("li");
        item.textContent = `${name} ${area(auc)} (random ${area(r.low)}-${area(r.high)}` +
          `${r.beaten ? ": better than random" : ", ✗ not better than random"})`;
        return item;
      };
      const list = document.createElement("ul");
      list.id = "faithfulness-scores";
      list.append(line("insertion AUC, higher is better:", s.insertion_auc, s.random.insertion),
                  line("deletion AUC onto a blurred copy, lower is better:", s.deletion_auc, s.random.deletion));
      out.replaceChildren(list, curveChart(s));
      if (s.undefined) out.prepend(`undefined: ${s.undefined}`);
    } catch (error) { out.textContent = error.message; }
    button.disabled = false;
  });
}

const CURVES = [["insertion", "#36c", "insertion"], ["deletion", "#c33", "deletion onto blur"]];

function svg(tag, attributes, text) {
  const element = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

function curveChart(scores) {
  // The class's probability (0..1, up) against the fraction of pixels inserted or deleted (0..1, right),
  // with numbered axes, their titles and a legend beside the plot.
  const [left, top, width, height] = [44, 10, 220, 120];
  const x = (f) => left + width * f, y = (p) => top + height * (1 - p);
  const chart = svg("svg", { viewBox: `0 0 ${left + width + 110} ${top + height + 40}`, width: 500, id: "curves",
    role: "img", "aria-label": "insertion and deletion curves", "font-size": 9, "font-family": "sans-serif" });
  const axes = svg("g", { class: "axis", stroke: "#999" });
  axes.append(svg("line", { x1: left, y1: y(0), x2: x(1), y2: y(0) }), svg("line", { x1: left, y1: y(0), x2: left, y2: y(1) }));
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    axes.append(svg("line", { x1: x(tick), y1: y(0), x2: x(tick), y2: y(0) + 3 }),
                svg("text", { x: x(tick), y: y(0) + 12, "text-anchor": "middle", stroke: "none", fill: "#333" }, String(tick)),
                svg("line", { x1: left - 3, y1: y(tick), x2: left, y2: y(tick) }),
                svg("text", { x: left - 5, y: y(tick) + 3, "text-anchor": "end", stroke: "none", fill: "#333" }, String(tick)));
  }
  axes.append(svg("text", { x: x(0.5), y: y(0) + 26, "text-anchor": "middle", stroke: "none", fill: "#333" },
                  "fraction of pixels inserted / deleted"),
              svg("text", { x: 10, y: y(0.5), "text-anchor": "middle", stroke: "none", fill: "#333",
                            transform: `rotate(-90 10 ${y(0.5)})` }, "class probability"));
  chart.appendChild(axes);
  const legend = svg("g", { class: "legend" });
  CURVES.forEach(([name, colour, label], i) => {
    chart.appendChild(svg("polyline", { class: name, fill: "none", stroke: colour, "stroke-width": 1.5,
      points: scores.fractions.map((f, j) => `${x(f)},${y(scores[name][j])}`).join(" ") }));
    const at = top + 6 + 12 * i;
    legend.append(svg("line", { x1: x(1) + 10, y1: at, x2: x(1) + 26, y2: at, stroke: colour, "stroke-width": 2 }),
                  svg("text", { x: x(1) + 30, y: at + 3, fill: "#333" }, label));
  });
  chart.appendChild(legend);
  return chart;
}

function progress(step, steps, octaves) {
  // Steps as the user set them: DeepDream's run is its steps once per octave, so it counts within the octave.
  if (octaves <= 1) return `step ${step} of ${steps}`;
  const per = Math.max(1, Math.round(steps / octaves)), octave = Math.min(Math.floor(step / per), octaves - 1);
  return `step ${step - per * octave} of ${per}, octave ${octave + 1} of ${octaves}`;
}

function jobBoxes() {
  // A job box: data-start (the endpoint that starts it) and data-body (its JSON); shows state and the live picture.
  for (const box of document.querySelectorAll(".job")) {
    const start = box.querySelector(".job-start"), cancel = box.querySelector(".job-cancel");
    const state = box.querySelector(".job-state"), picture = box.querySelector(".job-image");
    const prediction = document.getElementById("job-prediction");
    let job = null;
    const show = (status) => {
      state.textContent = `${status.state}, ${progress(status.step, status.steps, Number(box.dataset.octaves || 1))}` +
        (status.error ? `: ${status.error}` : "") + (status.still ? ` (${status.still})` : "");
      state.dataset.state = status.state;
      if (status.image) { picture.src = `${status.image}?step=${status.step}`; picture.hidden = false; }
      if (prediction && status.prediction) prediction.textContent = `→ ${status.prediction.name} (${(100 * status.prediction.probability).toFixed(1)}%)`;
      const over = ["done", "cancelled", "failed"].includes(status.state);
      cancel.disabled = over; start.disabled = !over;
      if (!over) setTimeout(poll, 300);
    };
    const poll = async () => { if (job) show(await api(`/api/jobs/${job}`)); };
    start.addEventListener("click", async () => {
      start.disabled = true;
      try {
        const status = await api(box.dataset.start, { method: "POST", headers: { "Content-Type": "application/json" },
          body: box.dataset.body });
        job = status.id; show(status);
      } catch (error) { state.textContent = error.message; start.disabled = false; }
    });
    cancel.addEventListener("click", async () => { if (job) show(await api(`/api/jobs/${job}/cancel`, { method: "POST" })); });
  }
}

function optionsForm() {
  // The filled option widgets become the options JSON of the URL; empty ones keep the method's default.
  const form = document.getElementById("options-form");
  if (!form) return;
  form.addEventListener("submit", (e) => {
    if (!working(form)) { e.preventDefault(); return; }
    const options = {};
    for (const input of form.querySelectorAll("[data-option]")) {
      if (input.value === "") continue;
      const type = input.dataset.type;
      options[input.dataset.option] = type === "boolean" ? input.value === "true"
        : type === "integer" || type === "number" ? Number(input.value) : input.value;
      input.disabled = true;  // not sent as a field of its own
    }
    form.elements.options.value = JSON.stringify(options);
    for (const input of form.querySelectorAll("input[name]")) { if (input.value === "" || input.value === "{}") input.disabled = true; }
  });
}

function layerTable() {
  // BatchNorm and Identity rows are hidden until "show every layer" is ticked.
  const toggle = document.getElementById("show-all"), table = document.getElementById("layer-table");
  if (!toggle || !table) return;
  const apply = () => table.classList.toggle("compact", !toggle.checked);
  toggle.addEventListener("change", apply);
  apply();
}

function patchFigure(model, p) {
  const figure = document.createElement("figure"), link = document.createElement("a"), img = document.createElement("img");
  link.href = `/m/${model}/image/${encodeURIComponent(p.item)}`; link.className = "patch";
  img.src = p.map; img.width = 64; img.alt = p.item;
  const caption = document.createElement("figcaption");
  caption.textContent = `${p.item} · ${p.activation.toPrecision(3)}`;
  link.appendChild(img); figure.append(link, caption);
  return figure;
}

async function semanticDictionary() {
  // A page that names channels ([data-sheet]) shows what each looks for, from its layer's sheet: drawn in the page
  // when kept; else the sheet is started in the background (cancelled once no page polls it) and the page fills
  // in as it arrives: the pictures first, then the patches of the items scanned so far, then the statistics.
  const box = document.querySelector("[data-sheet]"), state = document.getElementById("sheet-state");
  if (!box) return;
  const { model, layer, channels } = box.dataset, shown = Number(box.dataset.patches || 4);
  const patchState = document.getElementById("patch-state");
  const fill = (answer) => {
    for (const unit of answer.units) {
      for (const cell of document.querySelectorAll(`.dictionary[data-channel="${unit.channel}"]`)) {
        const img = cell.querySelector("img.looks-for"), words = cell.querySelector(".words"), grid = cell.querySelector(".patches");
        if (img && unit.picture && img.getAttribute("src") !== unit.picture) { img.src = unit.picture; img.hidden = false; }
        if (words && unit.words) words.textContent = unit.words;
        if (grid && unit.patches.length && grid.dataset.scanned !== String(answer.scanned)) {
          grid.replaceChildren(...unit.patches.slice(0, shown).map((p) => patchFigure(model, p)));
          grid.dataset.scanned = String(answer.scanned);
        }
      }
    }
    const text = answer.state === "kept" ? "kept" : answer.state === "making"
      ? (answer.units.some((u) => u.picture) ? `pictures made; ${answer.scanned} of ${answer.items} items scanned` : "making the pictures…")
      : `${answer.state}${answer.error ? ": " + answer.error : ""}`;
    if (state) { state.textContent = text; state.dataset.state = answer.state; }
    if (patchState) patchState.textContent = answer.state === "kept" ? `all ${answer.items} items` : `${answer.scanned} of ${answer.items} items scanned so far`;
  };
  const query = channels ? `?channels=${channels}` : "";
  const poll = async () => {
    try {
      const answer = await api(`/api/models/${model}/sheets/${layer}${query}`);
      fill(answer);
      if (answer.state === "making") setTimeout(poll, 600);
    } catch (error) { if (state) state.textContent = error.message; }
  };
  if (box.dataset.sheet !== "kept") {
    try {
      await api("/api/sheets", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ model, layer, watch: true, ...(channels ? { channels } : {}) }) });
    } catch (error) { if (state) state.textContent = error.message; return; }
  }
  poll();
}

function auditJob() {
  // The data view before its audit: start it (or follow the one running), show its progress, cancel it; the page
  // shows the audit once it is done.
  const box = document.getElementById("audit-job"), state = document.getElementById("audit-state");
  if (!box || !state) return;
  const start = document.getElementById("audit-start"), cancel = document.getElementById("audit-cancel");
  const poll = async (job) => {
    const status = await api(`/api/jobs/${job}`);
    state.textContent = `${status.state}: step ${status.step} of ${status.steps}` + (status.detail ? ` (${status.stage}: ${status.detail})` : "") +
      (status.error ? `: ${status.error}` : "");
    state.dataset.state = status.state;
    if (status.state === "done") location.reload();
    else if (["cancelled", "failed"].includes(status.state)) { cancel.hidden = true; start.hidden = false; start.textContent = "Resume the audit"; }
    else setTimeout(() => poll(job), 400);
  };
  const follow = (job) => {
    cancel.hidden = false; start.hidden = true;
    cancel.onclick = () => api(`/api/jobs/${job}/cancel`, { method: "POST" });
    poll(job);
  };
  if (box.dataset.job) { follow(box.dataset.job); return; }
  start.addEventListener("click", async () => {
    start.hidden = true;
    try {
      const status = await api("/api/audit", { method: "POST", headers: { "Content-Type": "application/json" }, body: box.dataset.body });
      if (status.kept) location.reload(); else follow(status.id);
    } catch (error) { state.textContent = error.message; start.hidden = false; }
  });
}


document.addEventListener("DOMContentLoaded", () => { imagePage(); methodSwitch(); explainPage(); jobBoxes(); optionsForm(); layerTable(); semanticDictionary(); auditJob(); });
