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
    for (const name of ["target", "layer"]) { if (form.elements[name].value) query.set(name, form.elements[name].value); }
    location.href = form.dataset.base + encodeURIComponent(form.elements.method.value) + (query.size ? "?" + query : "");
  });
}

function explainPage() {
  const slider = document.getElementById("opacity");
  if (!slider) return;
  slider.addEventListener("input", () => { document.getElementById("overlay").style.opacity = slider.value; });
}

function unitPage() {
  const box = document.getElementById("actmax");
  if (!box) return;
  const start = document.getElementById("job-start"), cancel = document.getElementById("job-cancel");
  const state = document.getElementById("job-state"), picture = document.getElementById("actmax-image");
  let job = null;
  const show = (status) => {
    state.textContent = `${status.state}, step ${status.step} of ${status.steps}` + (status.error ? `: ${status.error}` : "");
    state.dataset.state = status.state;
    if (status.image) { picture.src = `${status.image}?step=${status.step}`; picture.hidden = false; }
    const over = ["done", "cancelled", "failed"].includes(status.state);
    cancel.disabled = over; start.disabled = !over;
    if (!over) setTimeout(poll, 300);
  };
  const poll = async () => { if (job) show(await api(`/api/jobs/${job}`)); };
  start.addEventListener("click", async () => {
    start.disabled = true;
    try {
      const status = await api("/api/jobs", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ model: box.dataset.model, layer: box.dataset.layer, channel: Number(box.dataset.channel) }) });
      job = status.id; show(status);
    } catch (error) { state.textContent = error.message; start.disabled = false; }
  });
  cancel.addEventListener("click", async () => { if (job) show(await api(`/api/jobs/${job}/cancel`, { method: "POST" })); });
}

document.addEventListener("DOMContentLoaded", () => { imagePage(); explainPage(); unitPage(); });
