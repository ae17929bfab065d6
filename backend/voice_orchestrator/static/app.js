// The page: talk over the WebSocket, upload to the REST endpoint, watch the status.
// No build step and no dependency: everything the browser needs is in this folder.

const $ = (id) => document.getElementById(id);
const STAGES = ["stt", "llm", "tts"];
const BARS = [
  ["stt_ms", "speech-to-text"],
  ["llm_first_token_ms", "LLM first token"],
  ["llm_ms", "LLM"],
  ["tts_first_audio_ms", "TTS first audio"],
  ["tts_ms", "TTS"],
  ["first_audio_ms", "first audio"],
  ["total_ms", "total"],
];

// Test hooks: counters a browser test (or a curious person) can read.
const debug = { scheduledBuffers: 0, stoppedBuffers: 0, pauses: 0, resumes: 0, marks: 0, events: [], turns: [] };
window.voDebug = debug;

// -- API key -----------------------------------------------------------------------------

const keyInput = $("key");
keyInput.value = localStorage.getItem("vo-api-key") || "";
keyInput.addEventListener("change", () => localStorage.setItem("vo-api-key", keyInput.value.trim()));
const apiKey = () => keyInput.value.trim();
const authHeaders = () => (apiKey() ? { "X-API-Key": apiKey() } : {});

// -- errors: every one is shown ----------------------------------------------------------

function showError(text) {
  const div = document.createElement("div");
  div.className = "error";
  div.textContent = text;
  $("errors").prepend(div);
  while ($("errors").children.length > 5) $("errors").lastChild.remove();
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (body && body.error) return `${body.error.code}: ${body.error.message}`;
  } catch (_) { /* not JSON */ }
  return `HTTP ${response.status}`;
}

// -- waterfall ---------------------------------------------------------------------------

// Bars are placed on one time axis: STT from 0, the LLM after STT, TTS from the LLM's first
// token, first audio and total from 0, so a glance shows where the time went.
function drawWaterfall(container, timings, title) {
  const t = timings || {};
  const stt = t.stt_ms || 0;
  const starts = {
    stt_ms: 0, llm_first_token_ms: stt, llm_ms: stt,
    tts_first_audio_ms: stt + (t.llm_first_token_ms || 0), tts_ms: stt + (t.llm_first_token_ms || 0),
    first_audio_ms: 0, total_ms: 0,
  };
  const end = Math.max(1, ...BARS.map(([key]) => (starts[key] || 0) + (t[key] || 0)));
  const block = document.createElement("div");
  const heading = document.createElement("h3");
  heading.textContent = title;
  block.append(heading);
  for (const [key, label] of BARS) {
    if (typeof t[key] !== "number") continue;
    const row = document.createElement("div");
    row.className = "row";
    const name = document.createElement("span");
    name.textContent = label;
    const track = document.createElement("div");
    track.className = "track";
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.dataset.key = key;
    bar.style.left = `${(100 * starts[key]) / end}%`;
    bar.style.width = `${Math.max(0.5, (100 * t[key]) / end)}%`;
    track.append(bar);
    const value = document.createElement("span");
    value.textContent = `${t[key].toFixed(0)} ms`;
    row.append(name, track, value);
    block.append(row);
  }
  container.prepend(block);
  while (container.children.length > 4) container.lastChild.remove();
}

// -- playback: its own AudioContext (paused on a possible barge-in while the microphone goes
// on), buffers scheduled back to back; what was played is reported as playback marks --------

let audioContext = null;
const context = () => (audioContext ||= new AudioContext());
let playbackContext = null;
const playback = () => (playbackContext ||= new AudioContext());
const playing = new Set();
let playhead = 0;
let outputRate = 22050;
let currentTurn = null;
let playedMs = 0;
let lastMarkAt = 0;

function reportPlayed() {
  if (!currentTurn || !socket || socket.readyState !== WebSocket.OPEN) return;
  socket.send(JSON.stringify({ type: "playback.mark", turn_id: currentTurn, played_ms: Math.round(playedMs) }));
  debug.marks += 1;
}

function schedulePcm(data) {
  const ctx = playback();
  const samples = new Int16Array(data);
  if (!samples.length) return;
  const buffer = ctx.createBuffer(1, samples.length, outputRate);
  const channel = buffer.getChannelData(0);
  for (let i = 0; i < samples.length; i++) channel[i] = samples[i] / 32768;
  const source = ctx.createBufferSource();
  source.buffer = buffer;
  source.connect(ctx.destination);
  playhead = Math.max(playhead, ctx.currentTime + 0.03);
  source.start(playhead);
  playhead += buffer.duration;
  playing.add(source);
  const turn = currentTurn;
  source.onended = () => {
    if (!playing.delete(source) || turn !== currentTurn) return;
    playedMs += buffer.duration * 1000;
    if (performance.now() - lastMarkAt > 200) { lastMarkAt = performance.now(); reportPlayed(); }
  };
  debug.scheduledBuffers += 1;
}

function pausePlayback() {
  if (playbackContext && playbackContext.state === "running") playbackContext.suspend();
  debug.pauses += 1;
}

function resumePlayback() {
  if (playbackContext && playbackContext.state === "suspended") playbackContext.resume();
  debug.resumes += 1;
}

function stopPlayback() {
  for (const source of playing) {
    try { source.stop(); } catch (_) { /* already ended */ }
    debug.stoppedBuffers += 1;
  }
  playing.clear();
  playhead = 0;
  if (playbackContext && playbackContext.state === "suspended") playbackContext.resume();
}

// -- talk: microphone -> worklet -> WebSocket -> events and audio ---------------------------

let socket = null;
let capture = null;
const bubbles = new Map();  // turn_id -> assistant <li>

function bubble(kind, text) {
  const li = document.createElement("li");
  li.className = kind;
  li.textContent = text;
  $("transcript").append(li);
  li.scrollIntoView({ block: "nearest" });
  return li;
}

function assistantBubble(turnId) {
  if (!bubbles.has(turnId)) bubbles.set(turnId, bubble("assistant", ""));
  return bubbles.get(turnId);
}

function onEvent(event) {
  debug.events.push(event.type);
  switch (event.type) {
    case "session.started":
      $("session-id").textContent = event.session_id;
      sessionStorage.setItem("vo-session", event.session_id);
      break;
    case "speech.started": $("talk-state").textContent = "listening…"; break;
    case "speech.stopped": $("talk-state").textContent = "thinking…"; break;
    case "transcript.final": bubble("user", event.text); break;
    case "response.text.delta": assistantBubble(event.turn_id).textContent += event.text; break;
    case "response.audio.start":
      outputRate = event.sample_rate;
      currentTurn = event.turn_id;
      playedMs = 0;
      $("talk-state").textContent = "speaking";
      break;
    case "response.audio.paused": pausePlayback(); break;
    case "response.audio.resumed": resumePlayback(); break;
    case "response.interrupted": stopPlayback(); break;
    case "response.done": {
      const li = assistantBubble(event.turn_id);
      if (event.interrupted) {
        li.textContent = event.text;
        const mark = document.createElement("span");
        mark.className = "cut";
        mark.textContent = " (interrupted)";
        li.append(mark);
      }
      debug.turns.push(event);
      drawWaterfall($("talk-waterfall"), event.timings_ms, event.interrupted ? "turn (interrupted)" : "turn");
      $("talk-state").textContent = "listening";
      break;
    }
    case "error": showError(`${event.code}: ${event.message}`); break;
    case "session.ended": $("talk-state").textContent = "ended"; break;
  }
}

async function startTalking() {
  const ctx = context();
  await ctx.resume();
  await playback().resume();
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
  });
  await ctx.audioWorklet.addModule("/static/worklet.js");
  const source = ctx.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(ctx, "pcm-capture", { processorOptions: { targetRate: 16000 } });
  const mute = ctx.createGain();
  mute.gain.value = 0;  // the worklet must be pulled by the graph, but nothing should be heard
  source.connect(node).connect(mute).connect(ctx.destination);

  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = apiKey() ? `?api_key=${encodeURIComponent(apiKey())}` : "";
  socket = new WebSocket(`${scheme}//${location.host}/api/v1/orchestrator/ws${query}`);
  socket.binaryType = "arraybuffer";
  socket.onopen = () => {
    const previous = sessionStorage.getItem("vo-session");
    socket.send(JSON.stringify(previous ? { type: "session.start", session_id: previous } : { type: "session.start" }));
    node.port.onmessage = (message) => {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(message.data);
    };
  };
  socket.onmessage = (message) => {
    if (typeof message.data === "string") onEvent(JSON.parse(message.data));
    else schedulePcm(message.data);
  };
  socket.onclose = (close) => {
    if (close.code !== 1000 && close.code !== 1005) {
      showError(close.code === 1006 ? "The connection failed (a wrong API key?)." : `Connection closed (${close.code}).`);
    }
    stopTalking();
  };
  capture = { stream, node };
  $("talk-state").textContent = "listening";
}

function stopTalking() {
  if (capture) {
    capture.stream.getTracks().forEach((track) => track.stop());
    capture.node.disconnect();
    capture = null;
  }
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "session.end" }));
  socket = null;
  stopPlayback();
  $("mic").setAttribute("aria-pressed", "false");
  $("mic").textContent = "🎤 Start talking";
  $("talk-state").textContent = "idle";
}

$("mic").addEventListener("click", async () => {
  if (capture) { stopTalking(); return; }
  $("mic").setAttribute("aria-pressed", "true");
  $("mic").textContent = "■ Stop";
  try {
    await startTalking();
  } catch (error) {
    showError(`Microphone: ${error.message}`);
    stopTalking();
  }
});

// -- upload: a file, a drop or a recording -> POST /api/orchestrator/dialogue ----------------

async function upload(blob, name) {
  const form = new FormData();
  form.append("audio", blob, name);
  const sessionId = sessionStorage.getItem("vo-session");
  if (sessionId) form.append("session_id", sessionId);
  // Opus is a fifteenth of the WAV's size; ask for it where this browser can play it.
  const opus = new Audio().canPlayType('audio/ogg; codecs="opus"') !== "";
  form.append("response_format", opus ? "opus" : "wav");
  let response;
  try {
    response = await fetch("/api/orchestrator/dialogue", {
      method: "POST", body: form, headers: { Accept: "application/json", ...authHeaders() },
    });
  } catch (error) {
    showError(`Upload failed: ${error.message}`);
    return;
  }
  if (!response.ok) { showError(await errorText(response)); return; }
  const body = await response.json();
  $("upload-result").hidden = false;
  $("upload-transcript").textContent = body.transcript;
  $("upload-answer").textContent = body.response_text;
  const player = $("upload-audio");
  const type = body.audio.format === "opus" ? "audio/ogg" : "audio/wav";
  player.src = `data:${type};base64,${body.audio.data_base64}`;
  debug.uploadFormat = body.audio.format;
  player.play().catch(() => { /* autoplay may be refused; the controls remain */ });
  drawWaterfall($("upload-waterfall"), body.timings_ms, name);
}

$("file").addEventListener("change", () => {
  const file = $("file").files[0];
  if (file) upload(file, file.name);
});
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  const file = event.dataTransfer.files[0];
  if (file) upload(file, file.name);
});

let recorder = null;
$("record").addEventListener("click", async () => {
  if (recorder) { recorder.stop(); return; }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.ondataavailable = (event) => chunks.push(event.data);
    recorder.onstop = () => {
      stream.getTracks().forEach((track) => track.stop());
      $("record").textContent = "● Record";
      const type = recorder.mimeType || "audio/webm";
      recorder = null;
      upload(new Blob(chunks, { type }), type.includes("mp4") ? "recording.m4a" : "recording.webm");
    };
    recorder.start();
    $("record").textContent = "■ Stop and send";
  } catch (error) {
    showError(`Recorder: ${error.message}`);
    recorder = null;
  }
});

// -- status, refreshed ---------------------------------------------------------------------

async function refreshStatus() {
  try {
    const response = await fetch("/api/orchestrator/status", { headers: authHeaders() });
    if (response.status === 401) { showError(await errorText(response)); return; }
    const body = await response.json();
    $("overall").textContent = body.status;
    $("overall").className = `pill ${body.status}`;
    const rows = STAGES.map((stage) => {
      const s = body.services[stage];
      const tr = document.createElement("tr");
      for (const text of [stage, s.status, s.provider, s.model, `${Math.round(s.latency_ms)} ms`]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      tr.children[1].className = s.status;
      tr.title = s.detail || "";
      return tr;
    });
    $("services").replaceChildren(...rows);
    const c = body.concurrency;
    $("concurrency").textContent = `slots: ${c.active} busy of ${c.limit}, ${c.waiting} waiting`;
  } catch (error) {
    $("overall").textContent = "unreachable";
    $("overall").className = "pill unhealthy";
  }
}

refreshStatus();
setInterval(refreshStatus, 5000);

// -- forget: erase this conversation's history on the server -------------------------------

$("forget").addEventListener("click", async () => {
  const sessionId = sessionStorage.getItem("vo-session");
  if (!sessionId) { showError("There is no conversation to forget yet."); return; }
  const response = await fetch(`/api/orchestrator/sessions/${encodeURIComponent(sessionId)}`, {
    method: "DELETE", headers: authHeaders(),
  });
  if (!response.ok && response.status !== 404) { showError(await errorText(response)); return; }
  sessionStorage.removeItem("vo-session");
  $("session-id").textContent = "–";
  $("transcript").replaceChildren();
  bubbles.clear();
  debug.forgotten = sessionId;
});
