"""The web page at `/` for a causal LM: a chat box that streams the answer token by token and keeps the
conversation.

One inline HTML document, no external scripts, fonts or styles, so it works offline. It posts the conversation to
POST /v1/chat/completions with `stream: true` (with a bearer key when one is typed in) and reads the server-sent
events as they come; Stop aborts the request, which cancels the generation on the server. A model without a chat
template gets a plain continuation box on /v1/completions instead. Element ids (#log, #text, #send, #stop, #reset,
#key, #max-tokens, #temperature, #error, #model) and `body[data-state]` (busy/done) are what a browser test drives.
"""
from __future__ import annotations

CHAT_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>TuneForge chat</title>
<style>
  body { font: 16px/1.45 system-ui, sans-serif; max-width: 44rem; margin: 1.5rem auto; padding: 0 1rem; color: #222; }
  #log { border: 1px solid #ddd; border-radius: 6px; padding: .5rem; min-height: 12rem; max-height: 60vh;
         overflow-y: auto; }
  .msg { white-space: pre-wrap; margin: .4rem 0; padding: .4rem .6rem; border-radius: 6px; }
  .user { background: #e8f0fe; margin-left: 3rem; }
  .assistant { background: #f3f3f3; margin-right: 3rem; }
  textarea { width: 100%; box-sizing: border-box; font: inherit; padding: .5rem; margin-top: .5rem; }
  button { font: inherit; padding: .35rem 1rem; }
  input { font: inherit; }
  .row { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem; margin: .4rem 0; }
  #error { color: #b00020; }
  small { color: #666; }
</style>
</head>
<body>
<h1>TuneForge chat</h1>
<p><small id="model">loading model info...</small></p>
<div id="log" aria-live="polite"></div>
<textarea id="text" rows="3" placeholder="Type a message (Enter sends, Shift+Enter for a new line)"></textarea>
<div class="row"><button id="send">Send</button><button id="stop" disabled>Stop</button>
  <button id="reset">New chat</button>
  <small><label for="max-tokens">max tokens</label></small><input id="max-tokens" type="number" value="256" min="1" style="width:5rem">
  <small><label for="temperature">temperature</label></small><input id="temperature" type="number" value="0.7" min="0" step="0.1" style="width:4rem"></div>
<div class="row"><small><label for="key">API key (if the server needs one)</label></small>
  <input id="key" type="password" autocomplete="off" style="width:14rem"></div>
<p id="error" role="alert"></p>
<script>
const $ = id => document.getElementById(id);
let messages = [], controller = null, chatMode = true, infoShown = false;
function auth() { const key = $("key").value; return key ? {"Authorization": "Bearer " + key} : {}; }
function bubble(role, text) {
  const div = document.createElement("div"); div.className = "msg " + role; div.textContent = text;
  $("log").append(div); $("log").scrollTop = $("log").scrollHeight; return div;
}
function busy(on) {
  document.body.dataset.state = on ? "busy" : "done";
  $("send").disabled = on; $("stop").disabled = !on;
}
async function readEvents(response, onData) {
  const reader = response.body.getReader(), decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, {stream: true});
    let cut;
    while ((cut = buffer.indexOf("\\n\\n")) >= 0) {
      const line = buffer.slice(0, cut).trim(); buffer = buffer.slice(cut + 2);
      if (!line.startsWith("data: ")) continue;
      const data = line.slice(6);
      if (data === "[DONE]") return;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      onData(chunk);
    }
  }
}
async function send() {
  const text = $("text").value;
  $("error").textContent = "";
  if (!text.trim()) { $("error").textContent = "Type a message first."; return; }
  const sampling = {max_tokens: Number($("max-tokens").value) || 256, temperature: Number($("temperature").value)};
  const body = chatMode ? {messages: [...messages, {role: "user", content: text}], stream: true, ...sampling}
                        : {prompt: text, stream: true, ...sampling};
  bubble("user", text); $("text").value = "";
  const answer = bubble("assistant", "");
  controller = new AbortController(); busy(true);
  try {
    const r = await fetch(chatMode ? "v1/chat/completions" : "v1/completions", {method: "POST",
      body: JSON.stringify(body), signal: controller.signal,
      headers: {"Content-Type": "application/json", ...auth()}});
    if (!r.ok) {
      const err = await r.json().catch(() => ({}));
      throw new Error(typeof err.message === "string" ? err.message :
                      typeof err.detail === "string" ? err.detail : "HTTP " + r.status);
    }
    await readEvents(r, chunk => {
      const choice = chunk.choices[0];
      const piece = choice ? (chatMode ? choice.delta.content : choice.text) : "";
      if (piece) { answer.textContent += piece; $("log").scrollTop = $("log").scrollHeight; }
    });
    if (chatMode) messages.push({role: "user", content: text}, {role: "assistant", content: answer.textContent});
    if (!infoShown) loadInfo();  // the key may have been typed after the page loaded
  } catch (e) {
    if (e.name === "AbortError") {  // stopped: keep what came, as the conversation's answer
      if (chatMode) messages.push({role: "user", content: text}, {role: "assistant", content: answer.textContent});
    } else { answer.remove(); $("error").textContent = "Error: " + e.message; }
  } finally { controller = null; busy(false); }
}
$("send").addEventListener("click", send);
$("stop").addEventListener("click", () => controller && controller.abort());
$("reset").addEventListener("click", () => { messages = []; $("log").replaceChildren(); $("error").textContent = ""; });
$("text").addEventListener("keydown", e => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send(); } });
function loadInfo() {
  fetch("v1/model", {headers: auth()}).then(r => r.ok ? r.json() : null).then(info => {
    infoShown = Boolean(info);
    if (info) chatMode = info.chat !== false;
    $("model").textContent = info ? `${info.name} · ${info.task} · context ${info.max_length} tokens` +
      (chatMode ? "" : " · no chat template: the box continues your text") : "model info needs the API key";
  }).catch(() => {});
}
loadInfo();
</script>
</body>
</html>
"""
