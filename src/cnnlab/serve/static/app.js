// cnnlab serve: drop, pick or paste an image; read the top classes; see every registered method's map for any
// class. Everything is drawn from what the server answers: /api/model says which methods exist.

const $ = (id) => document.getElementById(id);
const state = {
  model: null, // /api/model
  file: null, // the image as the user gave it; sent whole with each request
  stem: "image", // for download names; never sent to the server
  prediction: null, // /api/predict
  target: null, // class index being explained
  generation: 0, // bumped by each new image or class: answers for an older one are dropped
  cards: [],
};
const PARALLEL = 2; // requests in flight at once: the server runs one, the next is ready when it ends

main();

async function main() {
  bindInput();
  bindOpacity();
  bindPicker();
  try {
    state.model = await api("api/model");
  } catch (error) {
    setStatus(`Cannot read the model: ${error.message}`, true);
    return;
  }
  describeModel(state.model);
  state.cards = state.model.methods.map((method) => new Card(method));
  $("grid").replaceChildren(...state.cards.map((card) => card.node));
  document.body.dataset.ready = "true";
}

// ---- talking to the server -------------------------------------------------------------------------------

async function api(url, options = {}) {
  for (let attempt = 0; ; attempt++) {
    const response = await fetch(url, { credentials: "same-origin", ...options });
    if (response.status === 503 && attempt < 30) {
      const wait = Math.max(1, Number(response.headers.get("Retry-After")) || 1);
      setStatus(`The server is busy; trying again in ${wait} s…`);
      await sleep(wait * 1000);
      continue;
    }
    const body = await response.json().catch(() => ({ detail: `HTTP ${response.status}` }));
    if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
    return body;
  }
}

function imageForm(fields) {
  const form = new FormData();
  form.append("image", state.file, "upload"); // the server never uses a file name
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  return form;
}

// ---- the image ---------------------------------------------------------------------------------------------

function bindInput() {
  const drop = $("drop");
  const input = $("file");
  input.addEventListener("change", () => input.files[0] && useFile(input.files[0]));
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (event) => { event.preventDefault(); drop.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, () => drop.classList.remove("over"));
  }
  // A file dropped anywhere is used, and never replaces the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = [...(event.dataTransfer?.files || [])][0];
    if (file) useFile(file);
  });
  document.addEventListener("paste", (event) => {
    const item = [...(event.clipboardData?.items || [])].find((i) => i.type.startsWith("image/"));
    if (item) useFile(item.getAsFile(), "pasted");
  });
}

async function useFile(file, name) {
  if (!state.model) return;
  state.file = file;
  state.stem = slug(name || file.name.replace(/\.[^.]*$/, "")) || "image";
  const generation = ++state.generation;
  setStatus("Reading the image…");
  let prediction;
  try {
    prediction = await api("api/predict", { method: "POST", body: imageForm({ top: "5" }) });
  } catch (error) {
    if (generation === state.generation) setStatus(error.message, true);
    return;
  }
  if (generation !== state.generation) return;
  state.prediction = prediction;
  showPreview(prediction);
  chooseClass(prediction.top[0].index);
}

function showPreview(prediction) {
  const [channels, height, width] = state.model.input_shape;
  const shown = $("shown");
  shown.src = prediction.image;
  shown.classList.toggle("pixelated", Math.max(prediction.width, prediction.height) < 128);
  $("shown-caption").textContent = `${state.stem}: ${prediction.width}×${prediction.height}`;
  $("seen").src = prediction.model_input;
  $("seen-caption").textContent = `what the network takes: ${width}×${height} ${channels === 1 ? "grey" : "RGB"}`;
  $("preview").hidden = false;
  $("predictions").hidden = false;
  $("maps").hidden = false;
  const list = $("top");
  list.replaceChildren(...prediction.top.map((entry) => {
    const button = el("button", { type: "button", className: "class-button", dataset: { index: entry.index } },
      el("span", { className: "name", textContent: entry.name }),
      el("span", { className: "prob", textContent: percent(entry.probability) }),
      el("span", { className: "bar" }, barFill(entry.probability)));
    button.addEventListener("click", () => chooseClass(entry.index));
    return el("li", {}, button);
  }));
}

function barFill(probability) {
  const fill = el("span");
  fill.style.width = `${(100 * probability).toFixed(1)}%`;
  return fill;
}

// ---- the class -------------------------------------------------------------------------------------------

function chooseClass(index) {
  state.target = index;
  const probability = state.prediction.probabilities[index];
  $("target-name").textContent = `${state.model.classes[index]}`;
  $("target-name").dataset.index = index;
  $("target-p").textContent = `class ${index}, p = ${probability.toFixed(3)}`;
  for (const button of document.querySelectorAll("#top .class-button")) {
    button.setAttribute("aria-pressed", String(Number(button.dataset.index) === index));
  }
  explainAll();
}

function bindPicker() {
  const input = $("class-search");
  const list = $("class-list");
  const hide = () => { list.hidden = true; input.setAttribute("aria-expanded", "false"); };
  input.addEventListener("input", () => showMatches(input.value));
  input.addEventListener("focus", () => showMatches(input.value));
  input.addEventListener("blur", hide);
  input.addEventListener("keydown", (event) => {
    const items = [...list.querySelectorAll("li")];
    const current = items.findIndex((item) => item.getAttribute("aria-selected") === "true");
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const next = Math.max(0, Math.min(items.length - 1, current + (event.key === "ArrowDown" ? 1 : -1)));
      items.forEach((item, i) => item.setAttribute("aria-selected", String(i === next)));
      items[next]?.scrollIntoView({ block: "nearest" });
    } else if (event.key === "Enter") {
      event.preventDefault();
      const item = items[Math.max(0, current)];
      if (item) pick(Number(item.dataset.index));
    } else if (event.key === "Escape") {
      hide();
    }
  });

  function pick(index) {
    input.value = "";
    hide();
    input.blur();
    if (state.prediction) chooseClass(index);
  }

  function showMatches(text) {
    if (!state.model) return;
    const query = text.trim().toLowerCase();
    const names = state.model.classes;
    const matches = [];
    for (let i = 0; i < names.length && matches.length < 60; i++) {
      if (!query || names[i].toLowerCase().includes(query) || String(i) === query) matches.push(i);
    }
    list.replaceChildren(...matches.map((index, rank) => {
      const item = el("li", { role: "option", dataset: { index } },
        el("span", { className: "idx", textContent: String(index) }),
        el("span", { className: "name", textContent: names[index] }));
      if (state.prediction) {
        item.append(el("span", { className: "prob", textContent: percent(state.prediction.probabilities[index]) }));
      }
      item.setAttribute("aria-selected", String(rank === 0 && query !== ""));
      // mousedown, not click: it comes before the input's blur hides the list
      item.addEventListener("mousedown", (event) => { event.preventDefault(); pick(index); });
      return item;
    }));
    list.hidden = matches.length === 0;
    input.setAttribute("aria-expanded", String(!list.hidden));
  }
}

// ---- the maps --------------------------------------------------------------------------------------------

async function explainAll() {
  const generation = ++state.generation;
  const automatic = state.cards.filter((card) => card.method.auto);
  for (const card of state.cards) card.reset();
  let done = 0;
  const started = performance.now();
  const report = () => setStatus(`Computing the maps for ${state.model.classes[state.target]}: ${done} of ` +
    `${automatic.length} done…`);
  report();
  const queue = [...automatic];
  const worker = async () => {
    while (queue.length && generation === state.generation) {
      await queue.shift().compute(generation);
      done += 1;
      if (generation === state.generation) report();
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  if (generation === state.generation) {
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const rest = state.cards.length - automatic.length;
    setStatus(`${automatic.length} maps for ${state.model.classes[state.target]} in ${seconds} s` +
      (rest ? `; ${rest === 1 ? "one slow method waits for its" : `${rest} slow methods wait for their`} ` +
        "Compute button." : "."));
  }
}

class Card {
  constructor(method) {
    this.method = method;
    this.request = 0;
    this.result = null;
    this.npyUrl = null;
    this.state = el("span", { className: "state" });
    this.base = el("img", { className: "base", alt: "" });
    this.heat = el("img", { className: "heat", alt: `${method.name} map` });
    this.stack = el("div", { className: "stack pending" }, this.base, this.heat);
    this.low = el("span");
    this.high = el("span");
    this.error = el("p", { className: "error", hidden: true });
    this.npy = el("a", { className: "npy", textContent: "⤓ .npy", title: "the raw map (float32, the network's " +
      "input resolution)", ariaDisabled: "true" });
    this.png = el("button", { type: "button", className: "png", textContent: "⤓ .png", disabled: true,
      title: "the overlay as shown, at the slider's opacity" });
    this.png.addEventListener("click", () => this.downloadPng());
    this.compute_button = el("button", { type: "button", className: "compute", hidden: method.auto,
      textContent: "Compute", title: "many passes per image: computed when asked" });
    this.compute_button.addEventListener("click", () => this.compute(state.generation));
    this.controls = this.optionControls();
    this.node = el("article", { className: "card", dataset: { method: method.name, state: "idle",
      auto: String(method.auto) } },
      el("header", {}, el("h3", { textContent: method.name }), this.state),
      this.stack,
      el("p", { className: "summary", textContent: method.summary }),
      el("div", { className: "scale" }, el("div", { className: "units", textContent: method.units }),
        el("div", { className: "colorbar" }), el("div", { className: "range" }, this.low, this.high)),
      this.error,
      el("div", { className: "actions" }, this.compute_button, this.npy, this.png),
      ...(this.controls ? [this.controls] : []));
    this.reset();
  }

  optionControls() {
    const fields = [];
    this.inputs = {};
    if (this.method.layer && state.model.layers.length) {
      const select = el("select", { name: "layer" },
        el("option", { value: "", textContent: "last convolution" }),
        ...state.model.layers.map((layer) => el("option", { value: layer, textContent: layer })));
      this.inputs.layer = select;
      fields.push(el("label", { title: "the layer whose activations are weighted" }, "layer", select));
    }
    for (const [name, option] of Object.entries(this.method.options)) {
      const input = el("input", { type: "number", name, step: option.type === "int" ? "1" : "any",
        placeholder: option.default === null ? "auto" : String(option.default), inputMode: "decimal" });
      if (option.minimum !== null) input.min = String(option.minimum);
      this.inputs[name] = input;
      fields.push(el("label", { title: option.help }, name, input));
    }
    if (!fields.length) return null;
    const apply = el("button", { type: "button", className: "apply", textContent: "Apply" });
    apply.addEventListener("click", () => this.compute(state.generation));
    return el("details", { className: "options" }, el("summary", { textContent: "Options" }), ...fields, apply);
  }

  options() {
    const chosen = {};
    for (const [name, input] of Object.entries(this.inputs)) {
      if (input.value === "") continue;
      chosen[name] = name === "layer" ? input.value : Number(input.value);
    }
    return chosen;
  }

  reset() {
    this.request += 1;
    this.result = null;
    this.node.dataset.state = "idle";
    delete this.node.dataset.target;
    this.base.src = state.prediction ? state.prediction.image : "";
    this.base.classList.toggle("pixelated", small());
    this.heat.classList.toggle("pixelated", small());
    this.stack.classList.add("pending");
    this.state.textContent = this.method.auto ? "" : "on request";
    this.compute_button.hidden = this.method.auto || !state.prediction;
    this.low.textContent = this.high.textContent = "";
    this.error.hidden = true;
    this.setDownloads(false);
  }

  async compute(generation) {
    if (!state.prediction) return;
    const request = ++this.request;
    const fresh = () => request === this.request && generation === state.generation;
    this.node.dataset.state = "busy";
    this.state.textContent = "computing…";
    this.error.hidden = true;
    this.compute_button.disabled = true;
    const fields = { method: this.method.name, target: String(state.target) };
    const options = this.options();
    if (Object.keys(options).length) fields.options = JSON.stringify(options);
    try {
      const result = await api("api/explain", { method: "POST", body: imageForm(fields) });
      if (fresh()) this.show(result);
    } catch (error) {
      if (fresh()) this.fail(error.message);
    } finally {
      this.compute_button.disabled = false;
    }
  }

  show(result) {
    this.result = result;
    this.heat.src = result.heat;
    this.stack.classList.remove("pending");
    this.low.textContent = number(result.minimum);
    this.high.textContent = number(result.maximum);
    this.state.textContent = `${result.seconds.toFixed(2)} s`;
    this.node.dataset.state = "done";
    this.node.dataset.target = String(result.target.index);
    this.compute_button.hidden = true;
    this.setDownloads(true);
  }

  fail(message) {
    this.node.dataset.state = "error";
    this.state.textContent = "failed";
    this.error.textContent = message;
    this.error.hidden = false;
    this.compute_button.hidden = this.method.auto;
  }

  fileName(extension) {
    const target = this.result.target;
    return `${state.stem}.${this.method.name}.${target.index}-${slug(target.name)}.${extension}`;
  }

  setDownloads(ready) {
    if (this.npyUrl) URL.revokeObjectURL(this.npyUrl);
    this.npyUrl = null;
    this.npy.removeAttribute("href");
    this.npy.setAttribute("aria-disabled", String(!ready));
    this.png.disabled = !ready;
    if (!ready) return;
    const bytes = Uint8Array.from(atob(this.result.map), (c) => c.charCodeAt(0));
    this.npyUrl = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
    this.npy.href = this.npyUrl;
    this.npy.download = this.fileName("npy");
  }

  // The overlay as shown: the image, then the coloured map at the slider's opacity (render.overlay's blend).
  async downloadPng() {
    const [base, heat] = await Promise.all([loadImage(state.prediction.image), loadImage(this.result.heat)]);
    const canvas = el("canvas", { width: heat.naturalWidth, height: heat.naturalHeight });
    const context = canvas.getContext("2d");
    context.drawImage(base, 0, 0, canvas.width, canvas.height);
    context.globalAlpha = Number($("opacity").value);
    context.drawImage(heat, 0, 0);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: this.fileName("png") });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }
}

function bindOpacity() {
  const slider = $("opacity");
  const update = () => {
    document.documentElement.style.setProperty("--opacity", slider.value);
    $("opacity-value").textContent = Number(slider.value).toFixed(2);
  };
  slider.addEventListener("input", update);
  update();
}

// ---- small helpers -------------------------------------------------------------------------------------

function describeModel(model) {
  const [channels, height, width] = model.input_shape;
  $("model-line").textContent = `${model.source} · ${width}×${height} ${channels === 1 ? "grey" : "RGB"} · ` +
    `${model.classes.length.toLocaleString()} classes · ${model.parameters.toLocaleString()} parameters · ` +
    `${model.device}`;
  $("summary").textContent = model.summary;
  $("limits").textContent = `PNG, JPEG, WebP, GIF or BMP, up to ${model.limits.max_mib} MiB`;
  $("class-search").placeholder = `search ${model.classes.length.toLocaleString()} classes`;
}

function small() {
  return Boolean(state.prediction) && Math.max(state.prediction.width, state.prediction.height) < 128;
}

function el(tag, properties = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(properties)) {
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "ariaDisabled") node.setAttribute("aria-disabled", value);
    else node[name] = value;
  }
  node.append(...children);
  return node;
}

function loadImage(source) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = reject;
    image.src = source;
  });
}

function setStatus(text, error = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", error);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const percent = (p) => `${(100 * p).toFixed(p >= 0.1 ? 1 : 2)}%`;
const number = (x) => (Math.abs(x) >= 0.01 || x === 0 ? x.toPrecision(3) : x.toExponential(2));
const slug = (text) => String(text).replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 60);
