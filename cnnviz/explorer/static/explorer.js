// The few interactions the server-rendered pages need; no build step.
"use strict";

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

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
    const query = new URLSearchParams();
    for (const name of ["target", "layer", "region", "box"]) { if (form.elements[name] && form.elements[name].value) query.set(name, form.elements[name].value); }
    location.href = form.dataset.base + encodeURIComponent(form.elements.method.value) + (query.size ? "?" + query : "");
  });
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
      const versus = (name, auc, r) => `${name} ${area(auc)} (random ${area(r.low)}-${area(r.high)}${r.beaten ? "" : ", ✗ not better than random"})`;
      out.textContent = versus("insertion AUC, higher is better:", s.insertion_auc, s.random.insertion) + "; " +
        versus("deletion AUC onto a blurred copy, lower is better:", s.deletion_auc, s.random.deletion) +
        (s.undefined ? `: ${s.undefined}` : "");
      out.appendChild(curveChart(s));
    } catch (error) { out.textContent = error.message; }
    button.disabled = false;
  });
}

function curveChart(scores) {
  // Two polylines in a 200 x 100 box: probability (0..1, up) against the fraction of pixels moved.
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 200 100"); svg.setAttribute("width", "300"); svg.setAttribute("id", "curves");
  for (const [name, colour] of [["deletion", "#c33"], ["insertion", "#36c"]]) {
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", scores.fractions.map((f, i) => `${200 * f},${100 - 100 * scores[name][i]}`).join(" "));
    line.setAttribute("fill", "none"); line.setAttribute("stroke", colour);
    svg.appendChild(line);
  }
  return svg;
}

function jobBoxes() {
  // A job box: data-start (the endpoint that starts it) and data-body (its JSON); shows state and the live picture.
  for (const box of document.querySelectorAll(".job")) {
    const start = box.querySelector(".job-start"), cancel = box.querySelector(".job-cancel");
    const state = box.querySelector(".job-state"), picture = box.querySelector(".job-image");
    const prediction = document.getElementById("job-prediction");
    let job = null;
    const show = (status) => {
      state.textContent = `${status.state}, step ${status.step} of ${status.steps}` + (status.error ? `: ${status.error}` : "") +
        (status.still ? ` (${status.still})` : "");
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
  form.addEventListener("submit", () => {
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

async function unitPatches() {
  const box = document.getElementById("patches"), state = document.getElementById("atlas-state");
  if (!box || !state) return;
  const { model, layer, channel } = box.dataset;
  const cancel = document.getElementById("atlas-cancel");
  const show = async () => {
    const answer = await api(`/api/models/${model}/units/${layer}/${channel}/patches`);
    const grid = document.getElementById("patch-grid");
    for (const p of answer.patches) {
      const figure = document.createElement("figure"), link = document.createElement("a"), img = document.createElement("img");
      link.href = `/m/${model}/image/${encodeURIComponent(p.item)}`; link.className = "patch";
      img.src = p.map; img.width = 96; img.alt = p.item;
      const caption = document.createElement("figcaption");
      caption.textContent = `${p.item} · ${p.activation.toPrecision(3)}`;
      link.appendChild(img); figure.append(link, caption); grid.appendChild(figure);
    }
    state.textContent = "done"; state.dataset.state = "done";
  };
  const poll = async (job) => {
    const status = await api(`/api/jobs/${job}`);
    state.textContent = `${status.state}: ${status.step} of ${status.steps} items scanned` + (status.error ? `: ${status.error}` : "");
    state.dataset.state = status.state;
    if (status.state === "done") { cancel.hidden = true; await show(); }
    else if (["cancelled", "failed"].includes(status.state)) cancel.hidden = true;
    else setTimeout(() => poll(job), 400);
  };
  const follow = (job) => {
    cancel.hidden = false;
    cancel.addEventListener("click", () => api(`/api/jobs/${job}/cancel`, { method: "POST" }));
    poll(job);
  };
  // Never scans unasked: shows a kept atlas, follows a running scan, or starts one on the click.
  if (state.dataset.kept === "true") { await show(); return; }
  if (state.dataset.job) { follow(state.dataset.job); return; }
  const start = document.getElementById("atlas-start");
  start.addEventListener("click", async () => {
    start.hidden = true;
    try {
      const status = await api("/api/atlas", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ model, layer, watch: true }) });
      if (status.kept) await show(); else follow(status.id);
    } catch (error) { state.textContent = error.message; }
  });
}

document.addEventListener("DOMContentLoaded", () => { imagePage(); explainPage(); jobBoxes(); optionsForm(); unitPatches(); });
