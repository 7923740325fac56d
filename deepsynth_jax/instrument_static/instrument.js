// DeepSynth instrument page: draws the simulator's keyboard, sends key changes to the server,
// plays the audio blocks it sends back (AudioWorklet), and offers the recordings.
'use strict';

const NUM_KEYS = 88;
const LOWEST_PITCH = 21;
// Computer keyboard: semitones above the octave's C (two rows, like a piano's white/black keys).
const LOWER_ROW = ['KeyZ', 'KeyS', 'KeyX', 'KeyD', 'KeyC', 'KeyV', 'KeyG', 'KeyB', 'KeyH',
  'KeyN', 'KeyJ', 'KeyM', 'Comma', 'KeyL', 'Period', 'Semicolon', 'Slash'];
const UPPER_ROW = ['KeyQ', 'Digit2', 'KeyW', 'Digit3', 'KeyE', 'KeyR', 'Digit5', 'KeyT',
  'Digit6', 'KeyY', 'Digit7', 'KeyU', 'KeyI', 'Digit9', 'KeyO', 'Digit0', 'KeyP'];

const state = {
  ws: null, layout: null, down: new Uint8Array(NUM_KEYS), octave: 4, audio: null, node: null,
  sampleRate: 4000, lead: 0, started: false, blocks: 0,
  stamps: [],        // {sample, stream, down}: where the server stamped each key state
  capture: null,     // what the worklet played (tests)
};
window.instrument = state;

const $ = (id) => document.getElementById(id);

function setStatus(text, error = false) {
  $('status').textContent = text;
  $('status').className = error ? 'error' : '';
}

function decode(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// ---- the keyboard: the simulator's pictures, a pixel shows the pressed picture if its key is down
function draw() {
  const lay = state.layout;
  if (!lay) return;
  const ctx = $('keyboard').getContext('2d');
  const image = ctx.createImageData(lay.width, lay.height);
  for (let p = 0; p < lay.owner.length; p++) {
    const k = lay.owner[p];
    const v = (k < NUM_KEYS && state.down[k]) ? lay.pressed[p] : lay.released[p];
    image.data[4 * p] = image.data[4 * p + 1] = image.data[4 * p + 2] = v;
    image.data[4 * p + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
}

function setKey(key, down) {
  if (key < 0 || key >= NUM_KEYS || state.down[key] === (down ? 1 : 0)) return;
  state.down[key] = down ? 1 : 0;
  draw();
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify({type: 'key', key, down}));
  }
}
window.instrument.setKey = setKey;

function keyAt(event) {
  const canvas = $('keyboard');
  const rect = canvas.getBoundingClientRect();
  const x = Math.floor((event.clientX - rect.left) / rect.width * state.layout.width);
  const y = Math.floor((event.clientY - rect.top) / rect.height * state.layout.height);
  if (x < 0 || y < 0 || x >= state.layout.width || y >= state.layout.height) return NUM_KEYS;
  return state.layout.owner[y * state.layout.width + x];
}

// Mouse and touch: each pointer holds one key, gliding across keys while held.
const pointers = new Map();
function pointerDown(e) {
  if (!state.layout) return;
  e.preventDefault();
  startAudio();
  $('keyboard').setPointerCapture(e.pointerId);
  const k = keyAt(e);
  pointers.set(e.pointerId, k);
  setKey(k, true);
}
function pointerMove(e) {
  if (!pointers.has(e.pointerId)) return;
  const k = keyAt(e);
  const old = pointers.get(e.pointerId);
  if (k !== old) {
    pointers.set(e.pointerId, k);
    setKey(old, false);
    setKey(k, true);
  }
}
function pointerUp(e) {
  if (!pointers.has(e.pointerId)) return;
  setKey(pointers.get(e.pointerId), false);
  pointers.delete(e.pointerId);
}

// Computer keyboard.
const held = new Map();  // code -> key
function codeToKey(code) {
  let i = LOWER_ROW.indexOf(code);
  let base = 12 * (state.octave + 1);          // MIDI pitch of the octave's C
  if (i < 0) {
    i = UPPER_ROW.indexOf(code);
    base += 12;
  }
  return i < 0 ? null : base + i - LOWEST_PITCH;
}
function shiftOctave(by) {
  state.octave = Math.max(0, Math.min(7, state.octave + by));
  $('octave').textContent = 'C' + state.octave;
}
function keyDown(e) {
  if (e.target.tagName === 'SELECT' || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.code === 'ArrowLeft' || e.code === 'ArrowRight') {
    shiftOctave(e.code === 'ArrowLeft' ? -1 : 1);
    e.preventDefault();
    return;
  }
  const k = codeToKey(e.code);
  if (k === null || e.repeat) return;
  e.preventDefault();
  startAudio();
  held.set(e.code, k);
  setKey(k, true);
}
function keyUp(e) {
  if (!held.has(e.code)) return;
  setKey(held.get(e.code), false);
  held.delete(e.code);
}

// Web MIDI, where the browser offers it.
async function connectMidi() {
  if (!navigator.requestMIDIAccess) return;
  try {
    const access = await navigator.requestMIDIAccess();
    const listen = () => access.inputs.forEach((input) => {
      input.onmidimessage = (m) => {
        const [status, pitch, velocity] = m.data;
        const kind = status & 0xf0;
        if (kind === 0x90 && velocity > 0) setKey(pitch - LOWEST_PITCH, true);
        else if (kind === 0x80 || kind === 0x90) setKey(pitch - LOWEST_PITCH, false);
      };
    });
    listen();
    access.onstatechange = listen;
  } catch (err) {
    // No MIDI permission or devices: the other inputs still work.
  }
}

// ---- audio --------------------------------------------------------------------------------
async function startAudio() {
  if (state.started) return;
  state.started = true;
  try {
    state.audio = new AudioContext({latencyHint: 'interactive'});
    await state.audio.audioWorklet.addModule('/static/worklet.js');
    state.node = new AudioWorkletNode(state.audio, 'stream-player', {
      numberOfInputs: 0, outputChannelCount: [1], processorOptions: {inRate: state.sampleRate}});
    state.node.connect(state.audio.destination);
    state.node.port.onmessage = (e) => { state.capture = e.data; };
    await state.audio.resume();
    if (state.audio.state !== 'running') {
      state.started = false;
      setStatus('click the page to start the sound');
      return;
    }
    state.ws.send(JSON.stringify({type: 'start'}));
    setStatus('playing ' + $('model').value);
  } catch (err) {
    state.started = false;
    setStatus('cannot start audio: ' + err, true);
  }
}

// Tests: record what the worklet plays from now for `seconds`, then read it back.
window.instrument.startCapture = (seconds) => {
  state.node.port.postMessage({type: 'capture', seconds});
};
window.instrument.readCapture = () => {
  state.capture = null;
  state.node.port.postMessage({type: 'read'});
};

// ---- the server ---------------------------------------------------------------------------
function onMessage(event) {
  if (typeof event.data !== 'string') {
    const view = new DataView(event.data);
    const stream = view.getUint32(0, true);
    const start = view.getUint32(4, true);
    const data = new Float32Array(event.data.slice(8));
    state.blocks += 1;
    if (state.node) {
      state.node.port.postMessage({type: 'block', stream, start, data}, [data.buffer]);
    }
    return;
  }
  const msg = JSON.parse(event.data);
  if (msg.type === 'hello') {
    const lay = msg.layout;
    state.layout = {width: lay.width, height: lay.height, owner: decode(lay.owner),
                    released: decode(lay.released), pressed: decode(lay.pressed)};
    const canvas = $('keyboard');
    canvas.width = lay.width;
    canvas.height = lay.height;
    state.sampleRate = msg.sample_rate;
    state.lead = msg.lead;
    const select = $('model');
    select.innerHTML = '';
    for (const name of msg.models) select.add(new Option(name, name, false, name === msg.model));
    draw();
    setStatus('ready: press a key (or "Start sound")');
    startAudio();
  } else if (msg.type === 'stamped') {
    state.stamps.push(msg);
  } else if (msg.type === 'model') {
    $('model').value = msg.model;
    setStatus('playing ' + msg.model);
  } else if (msg.type === 'status') {
    setStatus(msg.text);
  } else if (msg.type === 'recording') {
    const links = $('downloads');
    links.innerHTML = '';
    for (const [name, url] of Object.entries(msg.files)) {
      const a = document.createElement('a');
      a.href = url;
      a.textContent = name;
      a.download = name;
      links.appendChild(a);
    }
    setStatus('recording saved');
  } else if (msg.type === 'busy' || msg.type === 'error') {
    setStatus(msg.message, true);
  }
}

function connect() {
  const ws = new WebSocket(`ws://${location.host}/ws`);
  ws.binaryType = 'arraybuffer';
  ws.onmessage = onMessage;
  ws.onclose = () => {
    if (!$('status').classList.contains('error')) setStatus('disconnected: reload the page', true);
  };
  state.ws = ws;
}

window.addEventListener('load', () => {
  const canvas = $('keyboard');
  canvas.addEventListener('pointerdown', pointerDown);
  canvas.addEventListener('pointermove', pointerMove);
  canvas.addEventListener('pointerup', pointerUp);
  canvas.addEventListener('pointercancel', pointerUp);
  window.addEventListener('keydown', keyDown);
  window.addEventListener('keyup', keyUp);
  window.addEventListener('blur', () => { for (const code of [...held.keys()]) keyUp({code}); });
  document.body.addEventListener('click', () => startAudio());
  $('start').addEventListener('click', () => startAudio());
  $('octave-down').addEventListener('click', () => shiftOctave(-1));
  $('octave-up').addEventListener('click', () => shiftOctave(1));
  $('model').addEventListener('change', (e) => {
    state.ws.send(JSON.stringify({type: 'model', name: e.target.value}));
  });
  $('save').addEventListener('click', () => state.ws.send(JSON.stringify({type: 'save'})));
  connect();
  connectMidi();
});
