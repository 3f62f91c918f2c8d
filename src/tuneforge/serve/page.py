"""The web pages at `/`: for a classifier or encoder, type a text and see the predicted label and the probabilities
as bars (`PAGE`); for an encoder-decoder, type sentences and read their translations (`TRANSLATE_PAGE`).

Each is one inline HTML document, no external scripts, fonts or styles, so it works offline. `PAGE` calls POST
/v1/predict, `TRANSLATE_PAGE` POST /v1/translate (one sentence per line, empty lines kept), with a bearer key when one
is typed in. Element ids (#text, #go, #key, #result, #label, #bars, #error; the translate page: #text, #go, #key,
#beams, #result, #translation, #error) are what the browser tests drive.
"""
from __future__ import annotations

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>TuneForge</title>
<style>
  body { font: 16px/1.4 system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  textarea { width: 100%; box-sizing: border-box; font: inherit; padding: .5rem; }
  button { font: inherit; padding: .4rem 1.2rem; margin-top: .5rem; }
  #key { font: inherit; width: 14rem; }
  .row { display: flex; align-items: center; gap: .5rem; margin: .25rem 0; }
  .name { width: 8rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .track { flex: 1; background: #eee; height: 1.1rem; }
  .fill { background: #3b7dd8; height: 100%; }
  .pct { width: 4rem; text-align: right; font-variant-numeric: tabular-nums; }
  #label { font-size: 1.3rem; font-weight: 600; }
  #error { color: #b00020; }
  small { color: #666; }
</style>
</head>
<body>
<h1>TuneForge</h1>
<p><small id="model">loading model info...</small></p>
<label for="text">Text</label>
<textarea id="text" rows="4" placeholder="Type a sentence"></textarea>
<div class="row"><button id="go">Predict</button>
  <small><label for="key">API key (if the server needs one)</label></small>
  <input id="key" type="password" autocomplete="off"></div>
<div id="result" hidden><p>Label: <span id="label"></span></p><div id="bars"></div></div>
<p id="error" role="alert"></p>
<script>
function auth() {
  const key = document.getElementById("key").value;
  return key ? {"Authorization": "Bearer " + key} : {};
}
function show(prediction) {
  const label = prediction.label;
  document.getElementById("label").textContent = Array.isArray(label) ? (label.join(", ") || "(none)") : label;
  const bars = document.getElementById("bars");
  bars.replaceChildren();
  for (const [name, p] of Object.entries(prediction.probabilities).sort((a, b) => b[1] - a[1])) {
    const row = document.createElement("div"); row.className = "row";
    const n = document.createElement("span"); n.className = "name"; n.textContent = name; n.title = name;
    const track = document.createElement("div"); track.className = "track";
    const fill = document.createElement("div"); fill.className = "fill"; fill.style.width = (100 * p).toFixed(1) + "%";
    const pct = document.createElement("span"); pct.className = "pct"; pct.textContent = (100 * p).toFixed(1) + "%";
    track.append(fill); row.append(n, track, pct); bars.append(row);
  }
  document.getElementById("result").hidden = false;
}
async function predict() {
  const error = document.getElementById("error");
  const text = document.getElementById("text").value;
  error.textContent = "";
  if (!text.trim()) { error.textContent = "Type some text first."; return; }
  document.body.dataset.state = "busy";
  try {
    const r = await fetch("v1/predict", {method: "POST", body: JSON.stringify({texts: [text]}),
                                         headers: {"Content-Type": "application/json", ...auth()}});
    const body = await r.json();
    if (!r.ok) throw new Error(typeof body.message === "string" ? body.message :
                               typeof body.detail === "string" ? body.detail : "HTTP " + r.status);
    show(body.predictions[0]);
    if (!infoShown) loadInfo();  // the key may have been typed after the page loaded
  } catch (e) {
    document.getElementById("result").hidden = true;
    error.textContent = "Error: " + e.message;
  } finally {
    document.body.dataset.state = "done";
  }
}
document.getElementById("go").addEventListener("click", predict);
document.getElementById("text").addEventListener("keydown", e => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) predict();
});
let infoShown = false;
function loadInfo() {
  fetch("v1/model", {headers: auth()}).then(r => r.ok ? r.json() : null).then(info => {
    infoShown = Boolean(info);
    document.getElementById("model").textContent = info ?
      `${info.name} · ${info.task} · labels: ${info.labels.join(", ") || "none"} · ${info.backend}` :
      "model info needs the API key";
  }).catch(() => {});
}
loadInfo();
</script>
</body>
</html>
"""

TRANSLATE_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>TuneForge translate</title>
<style>
  body { font: 16px/1.4 system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  textarea { width: 100%; box-sizing: border-box; font: inherit; padding: .5rem; }
  button { font: inherit; padding: .4rem 1.2rem; }
  input { font: inherit; }
  #key { width: 14rem; }
  #beams { width: 4rem; }
  .row { display: flex; align-items: center; gap: .5rem; margin: .5rem 0; flex-wrap: wrap; }
  #translation { white-space: pre-wrap; background: #f4f6fa; padding: .6rem; min-height: 2rem; }
  #error { color: #b00020; }
  small { color: #666; }
</style>
</head>
<body>
<h1>TuneForge translate</h1>
<p><small id="model">loading model info...</small></p>
<label for="text">Source text (one sentence per line)</label>
<textarea id="text" rows="5" placeholder="Type a sentence"></textarea>
<div class="row"><button id="go">Translate</button>
  <small><label for="beams">beams</label></small>
  <input id="beams" type="number" min="1" value="4">
  <small><label for="key">API key (if the server needs one)</label></small>
  <input id="key" type="password" autocomplete="off"></div>
<div id="result" hidden><p>Translation</p><div id="translation"></div></div>
<p id="error" role="alert"></p>
<script>
function auth() {
  const key = document.getElementById("key").value;
  return key ? {"Authorization": "Bearer " + key} : {};
}
async function translate() {
  const error = document.getElementById("error");
  const lines = document.getElementById("text").value.split("\n");
  error.textContent = "";
  if (!lines.some(line => line.trim())) { error.textContent = "Type some text first."; return; }
  const beams = parseInt(document.getElementById("beams").value, 10);
  const body = {texts: lines};
  if (beams >= 1) body.beams = beams;
  document.body.dataset.state = "busy";
  try {
    const r = await fetch("v1/translate", {method: "POST", body: JSON.stringify(body),
                                           headers: {"Content-Type": "application/json", ...auth()}});
    const answer = await r.json();
    if (!r.ok) throw new Error(typeof answer.message === "string" ? answer.message :
                               typeof answer.detail === "string" ? answer.detail : "HTTP " + r.status);
    document.getElementById("translation").textContent = answer.translations.join("\n");
    document.getElementById("result").hidden = false;
    if (!infoShown) loadInfo();  // the key may have been typed after the page loaded
  } catch (e) {
    document.getElementById("result").hidden = true;
    error.textContent = "Error: " + e.message;
  } finally {
    document.body.dataset.state = "done";
  }
}
document.getElementById("go").addEventListener("click", translate);
document.getElementById("text").addEventListener("keydown", e => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) translate();
});
let infoShown = false;
function loadInfo() {
  fetch("v1/model", {headers: auth()}).then(r => r.ok ? r.json() : null).then(info => {
    infoShown = Boolean(info);
    if (info && info.translation) document.getElementById("beams").max = info.translation.max_beams;
    document.getElementById("model").textContent = info ?
      `${info.name} · ${info.task} · up to ${info.max_length} source tokens · ${info.backend}` :
      "model info needs the API key";
  }).catch(() => {});
}
loadInfo();
</script>
</body>
</html>
"""
