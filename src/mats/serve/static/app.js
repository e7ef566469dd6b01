// The page's logic: pick or record a sound, send it with the chosen verb, show the answer and why.
// No framework and nothing fetched from elsewhere: the page works offline.
"use strict";

const $ = (id) => document.getElementById(id);
let sound = null; // {blob, name}: what is sent

function setSound(blob, name) {
  sound = { blob, name };
  $("player").src = URL.createObjectURL(blob);
  $("player").classList.remove("hidden");
}

$("file").addEventListener("change", () => {
  const f = $("file").files[0];
  if (f) setSound(f, f.name);
});

// ---- recording: MediaRecorder's compressed output is decoded by the browser and sent as WAV,
// which the server reads without a codec of its own.
let recorder = null;

$("record").addEventListener("click", async () => {
  if (recorder) { recorder.stop(); return; }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    $("recstate").textContent = "no microphone: " + err.message;
    return;
  }
  const chunks = [];
  recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (e) => chunks.push(e.data);
  recorder.onstop = async () => {
    stream.getTracks().forEach((t) => t.stop());
    recorder = null;
    $("record").textContent = "Record";
    const ctx = new AudioContext();
    const decoded = await ctx.decodeAudioData(await new Blob(chunks).arrayBuffer());
    setSound(toWav(decoded), "recording.wav");
    $("recstate").textContent = decoded.duration.toFixed(1) + " s recorded";
  };
  recorder.start();
  $("record").textContent = "Stop";
  $("recstate").textContent = "recording...";
});

function toWav(buffer) {
  // Mono 16-bit PCM WAV of an AudioBuffer (channels averaged).
  const n = buffer.length, rate = buffer.sampleRate, chans = buffer.numberOfChannels;
  const view = new DataView(new ArrayBuffer(44 + 2 * n));
  const str = (o, s) => { for (let i = 0; i < s.length; i++) view.setUint8(o + i, s.charCodeAt(i)); };
  str(0, "RIFF"); view.setUint32(4, 36 + 2 * n, true); str(8, "WAVE"); str(12, "fmt ");
  view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, 2 * rate, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); str(36, "data"); view.setUint32(40, 2 * n, true);
  const data = [];
  for (let c = 0; c < chans; c++) data.push(buffer.getChannelData(c));
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let c = 0; c < chans; c++) s += data[c][i];
    s = Math.max(-1, Math.min(1, s / chans));
    view.setInt16(44 + 2 * i, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return new Blob([view], { type: "audio/wav" });
}

// ---- the verb's fields
function showFields() {
  const verb = $("verb").value;
  $("f-question").classList.toggle("hidden", !(verb === "ask" || verb === "choose"));
  $("f-labels").classList.toggle("hidden", verb !== "classify");
  $("f-choices").classList.toggle("hidden", verb !== "choose");
}
$("verb").addEventListener("change", showFields);

// ---- asking
function bar(value, scale) {
  const span = document.createElement("span");
  span.className = "bar";
  span.style.width = Math.max(2, Math.round(Math.max(0, value) * scale)) + "px";
  return span;
}

function row(tag, value, text, scale) {
  const el = document.createElement(tag);
  const w = document.createElement("span");
  w.className = "w";
  w.textContent = value.toFixed(3);
  el.append(w, bar(value, scale), document.createTextNode(text));
  return el;
}

function show(verb, doc) {
  const item = Array.isArray(doc) ? doc[0] : doc;
  $("answer").textContent = item.answer ?? item.caption ?? item.label ?? "";
  const scores = $("scores");
  scores.replaceChildren();
  $("scores-box").classList.toggle("hidden", verb !== "classify");
  if (verb === "classify") {
    $("gen-text").textContent = item.text || "";
    Object.entries(item.scores).sort((a, b) => b[1] - a[1]).slice(0, 8)
      .forEach(([label, s]) => scores.append(row("div", s, label, 200)));
  }
  const santa = item.santa;
  const list = $("santa");
  list.replaceChildren();
  $("santa-box").classList.toggle("hidden", !santa);
  if (!santa) return;
  if (santa.mode === "noise_only") {
    $("santa-head").textContent = "This model uses the audio embedding alone (no Santa memory).";
    return;
  }
  const keep = (1 - santa.lam).toFixed(2);
  $("santa-head").textContent =
    `Why: Santa (${santa.mode}) kept ${keep} of the audio embedding and pulled it, with weight ` +
    `${santa.lam}, towards these ${santa.neighbours.length} text memories, shared as below` +
    (santa.texts_saved ? ":" : " (this model was saved without its memory texts: entry numbers only):");
  const top = Math.max(...santa.neighbours.map((n) => n.weight), 1e-9);
  santa.neighbours.forEach((n) =>
    list.append(row("li", n.weight, n.text ?? `memory entry #${n.index}`, 200 / top)));
}

$("go").addEventListener("click", async () => {
  const verb = $("verb").value;
  $("result").classList.remove("hidden");
  $("error").textContent = "";
  $("answer").textContent = "";
  if (!sound) { $("error").textContent = "Choose a sound file or record one first."; return; }
  const form = new FormData();
  form.append("audio", sound.blob, sound.name);
  form.append("explain", "true");
  if (verb === "ask" || verb === "choose") form.append("question", $("question").value);
  if (verb === "classify") form.append("labels", $("labels").value);
  if (verb === "choose") form.append("choices", $("choices").value);
  $("busy").textContent = "thinking...";
  $("go").disabled = true;
  try {
    const res = await fetch("/v1/" + verb, { method: "POST", body: form });
    const doc = await res.json();
    if (!res.ok) throw new Error(doc.error || res.statusText);
    show(verb, doc);
  } catch (err) {
    $("error").textContent = err.message;
    $("santa-box").classList.add("hidden");
    $("scores-box").classList.add("hidden");
  } finally {
    $("busy").textContent = "";
    $("go").disabled = false;
  }
});

fetch("/v1/health").then((r) => r.json()).then((h) => {
  $("health").textContent =
    `Model: ${h.model} (encoder ${h.encoder.backend}, Santa ${h.santa.mode}, memory ${h.santa.memory_size}).`;
}).catch(() => {});
showFields();
