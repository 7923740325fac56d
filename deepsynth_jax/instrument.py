r"""A playable instrument in the browser: play the simulated keyboard, hear the model live.

  make play                                                   # the shipped models
  python -m deepsynth_jax.instrument --checkpoint=models/demo_keysynth_phase --port=8765

Starts a web server on 127.0.0.1 only and prints its URL. The page shows the simulator's keyboard
(drawn from the simulator's released / pressed pictures and its pixel-to-key map) and is played
with the mouse or touch, the computer keyboard (Z S X D C V ... for the lower octave, Q 2 W 3 E
... for the upper, arrow keys or the buttons shift the octave) and Web MIDI where the browser
offers it. Each change of the key state is stamped at a sample of the model's audio and becomes a
keyboard frame (`deepsynth_jax.streaming`): the model sees only frames. The server generates
`--block` samples at a time (4 kHz), keeping `--lead` samples ahead of real time, and sends them
over a WebSocket; the page plays them through an AudioWorklet (resampling 4 kHz to the context's
rate) and keeps what it played (for tests/test_instrument_browser.py). A selector switches
between the models; "Save" writes the performance as WAV, the key events as MIDI and the keyboard
video with the audio as MP4, downloadable by that page only.

The server serves its page, its assets and the current page's recordings, nothing else. One page
plays at a time (the CPU generates one stream in real time); a second page is told "busy". A
malformed message, an unknown key or model, or a page that disconnects costs one logged line.

Messages (JSON text, page -> server): {"type": "start"}, {"type": "key", "key": 0..87,
"down": bool}, {"type": "model", "name": str}, {"type": "save"}. Server -> page: "hello" (models,
sample rate, block, keyboard layout), "stamped" (the sample at which a key state took effect and
the keys down), "model" (switched), "recording" (file URLs), "error", "busy"; and binary audio
blocks: uint32 stream number, uint32 start sample (little-endian), then float32 samples.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import dataclasses
import json
import logging
import os
import secrets
import shutil
import struct
import tempfile
import time

import mido
import numpy as np
from absl import app, flags
from aiohttp import WSMsgType, web

from data_gen import keyboard, video, wav
from deepsynth_jax import checkpointing, console, runs, streaming

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "instrument_static")
ASSETS = {"instrument.js": "text/javascript", "worklet.js": "text/javascript",
          "style.css": "text/css"}
RECORDING_FILES = {"performance.wav": "audio/wav", "keys.mid": "audio/midi",
                   "keyboard.mp4": "video/mp4"}
# Shipped models, by the selector's name; the first present is the default.
SHIPPED_MODELS = {"keysynth_phase": "models/demo_keysynth_phase",
                  "keysynth": "models/demo_keysynth",
                  "keysynth_labels": "models/demo_keysynth_labels",
                  "wavenet": "models/demo_wavenet"}
DEFAULT_BLOCK = 128  # samples per block (32 ms at 4 kHz)
DEFAULT_LEAD = 192   # samples generated ahead of real time (48 ms): the page's buffer
MIDI_TICKS_PER_BEAT = 480
MIDI_TEMPO = 500000  # microseconds per beat: 960 ticks per second

log = logging.getLogger("deepsynth_jax.instrument")


class MessageError(ValueError):
  """A page's message that cannot be used; the message is sent back and logged in one line."""


@dataclasses.dataclass
class BlockTiming:
  """What the server measured for one block (seconds on the event loop's clock)."""

  start: int        # first sample
  due: float        # when the page's previous audio runs out (the playhead reaches `start`)
  sent: float       # when it was handed to the socket
  events: list[float] = dataclasses.field(default_factory=list)  # arrivals of its key events
  event_samples: list[int] = dataclasses.field(default_factory=list)  # where they were stamped
  playhead: list[float] = dataclasses.field(default_factory=list)  # real-time sample at arrival


class Session:
  """One page: its stream, the key state it reported, and its recordings folder."""

  def __init__(self, ws: web.WebSocketResponse, model: str, folder: str):
    self.ws = ws
    self.token = secrets.token_urlsafe(16)
    self.folder = os.path.join(folder, self.token)
    self.model = model
    self.stream: streaming.Stream | None = None
    self.stream_number = 0
    self.keys = np.zeros(keyboard.NUM_KEYS, bool)
    self.arrivals: list[float] = []   # key messages since the last block
    self.timings: list[BlockTiming] = []
    self.task: asyncio.Task | None = None
    self.lock = asyncio.Lock()        # held while the stream generates or is copied


class Instrument:
  """The web app: page, assets, WebSocket and the current page's recordings.

  Args:
    models: selector name -> run directory (each loaded on first use, then cached).
    default: the model a page starts with.
    block: samples per audio block; lead: samples kept ahead of real time.
    seed, temperature: the WaveNet's sampling controls.
  """

  def __init__(self, models: dict[str, str], default: str | None = None, *,
               block: int = DEFAULT_BLOCK, lead: int = DEFAULT_LEAD, seed: int = 0,
               temperature: float = 1.0):
    if not models:
      raise ValueError("no models to play: pass --checkpoint=<run directory>")
    if default is not None and default not in models:
      raise ValueError(f"default model {default!r} is not one of {', '.join(models)}")
    if block < 16 or block % 16 or lead < 0:
      raise ValueError(f"block ({block}) must be a positive multiple of 16 samples and lead "
                       f"({lead}) >= 0")
    self.models = dict(models)
    self.default = default or next(iter(models))
    self.block, self.lead = int(block), int(lead)
    self.seed, self.temperature = int(seed), float(temperature)
    self.session: Session | None = None
    self.last_timings: list[BlockTiming] = []  # of the last page that closed (benchmarks)
    self._folder = tempfile.mkdtemp(prefix="deepsynth_instrument.")
    # All model work on one thread: JAX calls never overlap, the event loop never blocks.
    self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="model")

  # ---- the app --------------------------------------------------------------------------------

  def app(self) -> web.Application:
    application = web.Application()
    application.router.add_get("/", self._page)
    application.router.add_get("/static/{name}", self._asset)
    application.router.add_get("/ws", self._socket)
    application.router.add_get("/recordings/{token}/{name}", self._recording)
    application.on_shutdown.append(self._shutdown)
    return application

  def load(self, name: str) -> runs.Run:
    """The run of a selector name, loaded and compiled (a first block generated)."""
    run = runs.load_run(self.models[name])
    stream = streaming.open_stream(run, seed=self.seed, temperature=self.temperature)
    stream.generate(self.block)
    stream.set_keys(np.eye(keyboard.NUM_KEYS, dtype=bool)[39])  # compiles the frame path
    stream.generate(self.block)
    return run

  async def _page(self, request: web.Request) -> web.FileResponse:
    return web.FileResponse(os.path.join(STATIC_DIR, "index.html"),
                            headers={"Content-Type": "text/html", "Cache-Control": "no-store"})

  async def _asset(self, request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    if name not in ASSETS:
      raise web.HTTPNotFound()
    return web.FileResponse(os.path.join(STATIC_DIR, name),
                            headers={"Content-Type": ASSETS[name], "Cache-Control": "no-store"})

  async def _recording(self, request: web.Request) -> web.FileResponse:
    token, name = request.match_info["token"], request.match_info["name"]
    session = self.session
    if session is None or not secrets.compare_digest(token, session.token) \
        or name not in RECORDING_FILES:
      raise web.HTTPNotFound()
    path = os.path.join(session.folder, name)
    if not os.path.isfile(path):
      raise web.HTTPNotFound()
    return web.FileResponse(path, headers={
        "Content-Type": RECORDING_FILES[name],
        "Content-Disposition": f'attachment; filename="{name}"'})

  async def _shutdown(self, application: web.Application) -> None:
    if self.session is not None:
      await self.session.ws.close()
    self._executor.shutdown(wait=False, cancel_futures=True)
    shutil.rmtree(self._folder, ignore_errors=True)

  # ---- one page -------------------------------------------------------------------------------

  async def _socket(self, request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=1 << 16)
    await ws.prepare(request)
    if self.session is not None:
      log.info("a second page was turned away: another page is playing")
      await ws.send_json({"type": "busy", "message": "another page is playing this instrument; "
                          "close it (or wait for it to close) and reload this page"})
      await ws.close()
      return ws
    session = Session(ws, self.default, self._folder)
    self.session = session
    os.makedirs(session.folder, exist_ok=True)
    log.info("page connected")
    try:
      await ws.send_json(self._hello(session))
      async for msg in ws:
        if msg.type == WSMsgType.TEXT:
          try:
            await self._handle(session, msg.data)
          except MessageError as e:
            log.warning("bad message from the page: %s", e)
            await self._send(session, {"type": "error", "message": str(e)})
        elif msg.type == WSMsgType.BINARY:
          log.warning("bad message from the page: binary data (%d bytes)", len(msg.data))
          await self._send(session, {"type": "error", "message": "send JSON text messages"})
        elif msg.type == WSMsgType.ERROR:
          log.warning("page connection error: %s", ws.exception())
    finally:
      await self._close(session)
    return ws

  async def _close(self, session: Session) -> None:
    if session.task is not None:
      session.task.cancel()
      try:
        await session.task
      except (asyncio.CancelledError, Exception):  # noqa: BLE001 (already logged by the task)
        pass
    self.last_timings = session.timings
    shutil.rmtree(session.folder, ignore_errors=True)
    if self.session is session:
      self.session = None
    log.info("page disconnected after %.1f s of audio",
             0 if session.stream is None else session.stream.position / 4000)

  def _hello(self, session: Session) -> dict:
    h, w = self._frame_shape(self.models[session.model])
    lay = keyboard.layout(h, w)
    pack = lambda a: base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()
    return {"type": "hello", "models": list(self.models), "model": session.model,
            "sample_rate": 4000, "block": self.block, "lead": self.lead,
            "layout": {"height": h, "width": w, "owner": pack(lay.owner.astype(np.uint8)),
                       "released": pack(lay.released), "pressed": pack(lay.pressed)}}

  @staticmethod
  def _frame_shape(run_dir: str) -> tuple[int, int]:
    facts = checkpointing.read_run_record(run_dir).get("data", {})
    return (int(facts.get("frame_height", keyboard.DEFAULT_HEIGHT)),
            int(facts.get("frame_width", keyboard.DEFAULT_WIDTH)))

  async def _handle(self, session: Session, text: str) -> None:
    try:
      msg = json.loads(text)
    except ValueError:
      raise MessageError(f"not JSON: {text[:60]!r}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
      raise MessageError(f"expected an object with a \"type\", got {text[:60]!r}")
    kind = msg["type"]
    if kind == "key":
      key, down = msg.get("key"), msg.get("down")
      if isinstance(key, bool) or not isinstance(key, int) or not 0 <= key < keyboard.NUM_KEYS:
        raise MessageError(f"unknown key {key!r}: keys are 0..87 (MIDI pitch 21 + key)")
      if not isinstance(down, bool):
        raise MessageError(f"key message needs \"down\": true or false, got {down!r}")
      session.keys[key] = down
      session.arrivals.append(asyncio.get_running_loop().time())
    elif kind == "start":
      if session.task is None:
        await self._open_stream(session, session.model)
        session.task = asyncio.create_task(self._play(session))
    elif kind == "model":
      name = msg.get("name")
      if name not in self.models:
        raise MessageError(f"unknown model {name!r}; choose one of {', '.join(self.models)}")
      await self._open_stream(session, name)
      await self._send(session, {"type": "model", "model": name})
    elif kind == "save":
      await self._save(session)
    else:
      raise MessageError(f"unknown message type {kind!r}; expected key, start, model or save")

  async def _open_stream(self, session: Session, name: str) -> None:
    loop = asyncio.get_running_loop()
    if self._frame_shape(self.models[name]) != self._frame_shape(self.models[session.model]):
      raise MessageError(f"model {name!r} takes frames of another size; restart with it")
    await self._send(session, {"type": "status", "text": f"loading {name} ..."})
    run = await loop.run_in_executor(self._executor, self.load, name)
    stream = streaming.open_stream(run, seed=self.seed, temperature=self.temperature)
    async with session.lock:
      session.model, session.stream = name, stream
      session.stream_number += 1
      session.arrivals.append(loop.time())  # the keys held now take effect at once
    log.info("playing %s (%s)", name, self.models[name])
    await self._send(session, {"type": "status", "text": f"playing {name}"})

  async def _send(self, session: Session, message: dict) -> None:
    if not session.ws.closed:
      await session.ws.send_json(message)

  async def _play(self, session: Session) -> None:
    """Sends a block whenever the page's playhead comes within `lead` samples of its start;
    key changes received before a block are stamped at its first usable sample.

    The page plays from the arrival of a stream's first block (`t_play`); block k is due when
    the playhead reaches its start (the audio before it runs out). A late block re-anchors
    `t_play` (the page waited); after a model switch the new stream follows the old one's end.
    """
    loop = asyncio.get_running_loop()
    rate = 4000.0
    t_play: float | None = None
    current: streaming.Stream | None = None
    try:
      while True:
        if session.stream is not current:
          if current is not None and t_play is not None:
            t_play += current.position / rate
          current = session.stream
        stream, start = current, current.position
        if t_play is not None:
          await asyncio.sleep(max(0.0, t_play + (start - self.lead) / rate - loop.time()))
        async with session.lock:
          if session.stream is not stream:
            continue
          arrivals, session.arrivals = session.arrivals, []
          stamped = stream.set_keys(session.keys.copy()) if arrivals else None
          block = await loop.run_in_executor(self._executor, stream.generate, self.block)
          header = struct.pack("<II", session.stream_number, start)
        if session.ws.closed:
          return
        await session.ws.send_bytes(header + block.tobytes())
        sent = loop.time()
        if t_play is None:
          t_play = sent - start / rate
        due = t_play + start / rate
        timing = BlockTiming(start=start, due=due, sent=sent)
        if stamped is not None:
          timing.events = arrivals
          timing.event_samples = [stamped] * len(arrivals)
          timing.playhead = [(a - t_play) * rate for a in arrivals]
          await self._send(session, {"type": "stamped", "sample": stamped,
                                     "stream": session.stream_number,
                                     "down": np.flatnonzero(stream.key_states()[-1]).tolist()})
        session.timings.append(timing)
        if sent > due:  # late: the page ran dry and waited for this block
          log.warning("audio block at %.2f s was %.0f ms late (the page ran out of audio)",
                      start / rate, 1e3 * (sent - due))
          t_play += sent - due
    except (ConnectionResetError, RuntimeError) as e:
      log.info("page went away mid-stream (%s)", type(e).__name__)

  # ---- recordings -----------------------------------------------------------------------------

  async def _save(self, session: Session) -> None:
    if session.stream is None or session.stream.position == 0:
      raise MessageError("nothing played yet: start the audio and play before saving")
    async with session.lock:  # a consistent copy between two blocks
      stream = session.stream
      audio, times = stream.audio(), stream.frame_times()
      keep = times < max(len(audio), 1)
      frames, notes = stream.frames()[keep], stream.notes()
    await self._send(session, {"type": "status", "text": "saving ..."})
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, write_recording, session.folder, audio, frames, times[keep],
                               notes, stream.sample_rate)
    base = f"/recordings/{session.token}/"
    await self._send(session, {"type": "recording",
                               "files": {n: base + n for n in RECORDING_FILES}})
    log.info("saved %.1f s of playing (%d notes)", len(audio) / stream.sample_rate, len(notes))


def write_recording(folder: str, audio: np.ndarray, frames: np.ndarray, frame_times: np.ndarray,
                    notes: np.ndarray, sample_rate: int) -> dict[str, str]:
  """Writes performance.wav (the audio), keys.mid (the key presses) and keyboard.mp4 (the frames
  the model saw with the audio) into `folder`.

  Args:
    audio: float32 (T,) in [-1, 1] at `sample_rate` (4 kHz).
    frames: uint8 (F, H, W) with frame_times int (F,) their start samples ([0] == 0).
    notes: int (M, 4) onset_sample, offset_sample, midi_pitch, velocity.

  Returns:
    file name -> path.
  """
  os.makedirs(folder, exist_ok=True)
  paths = {n: os.path.join(folder, n) for n in RECORDING_FILES}
  wav.write_wav(paths["performance.wav"], audio, sample_rate)
  write_midi(paths["keys.mid"], notes, sample_rate)
  video.write_mp4(paths["keyboard.mp4"], frames, frame_times, sample_rate, audio=audio)
  return paths


def write_midi(path: str, notes: np.ndarray, sample_rate: int) -> None:
  """Writes notes int (M, 4) (onset_sample, offset_sample, midi_pitch, velocity) as a one-track
  MIDI file at 120 bpm."""
  ticks_per_sample = MIDI_TICKS_PER_BEAT * 1e6 / MIDI_TEMPO / sample_rate
  events = []
  for on, off, pitch, velocity in np.asarray(notes, np.int64).reshape(-1, 4).tolist():
    events.append((round(on * ticks_per_sample), 1, "note_on", pitch, velocity))
    events.append((round(off * ticks_per_sample), 0, "note_off", pitch, 0))
  events.sort()
  mid = mido.MidiFile(ticks_per_beat=MIDI_TICKS_PER_BEAT)
  track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=MIDI_TEMPO, time=0)])
  mid.tracks.append(track)
  last = 0
  for tick, _, kind, pitch, velocity in events:
    track.append(mido.Message(kind, note=pitch, velocity=velocity, time=tick - last))
    last = tick
  mid.save(path)


def shipped_models(root: str = ".") -> dict[str, str]:
  """Selector name -> run directory of the shipped models present under `root`."""
  return {name: os.path.join(root, path) for name, path in SHIPPED_MODELS.items()
          if os.path.isfile(os.path.join(root, path, checkpointing.RUN_RECORD))}


async def serve(instrument: Instrument, port: int) -> web.AppRunner:
  """Starts the instrument on 127.0.0.1:`port` (0 = a free port); returns the runner (its
  `addresses` name the port)."""
  runner = web.AppRunner(instrument.app(), access_log=None, handle_signals=False)
  await runner.setup()
  site = web.TCPSite(runner, "127.0.0.1", port)
  await site.start()
  return runner


# ---- the program -----------------------------------------------------------------------------


def _quiet_console() -> None:
  console.quiet_library_chatter()
  logging.getLogger().setLevel(logging.WARNING)  # libraries: warnings and errors only
  handler = logging.StreamHandler()
  handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
  log.addHandler(handler)
  log.setLevel(logging.INFO)  # the instrument's own progress
  log.propagate = False


def _define_flags() -> None:
  flags.DEFINE_multi_string("checkpoint", None, "Run directories to play (repeatable); default: "
                            "the shipped models present (models/demo_keysynth_phase, "
                            "demo_keysynth, demo_keysynth_labels, demo_wavenet; the first "
                            "is the default).")
  flags.DEFINE_integer("port", 8765, "Port on 127.0.0.1 (0 = any free port).")
  flags.DEFINE_integer("block", DEFAULT_BLOCK, "Samples per audio block (multiple of 16).")
  flags.DEFINE_integer("lead", DEFAULT_LEAD, "Samples generated ahead of real time.")
  flags.DEFINE_integer("seed", 0, "Sampling seed (WaveNet).")
  flags.DEFINE_float("temperature", 1.0, "Sampling temperature (WaveNet).")


def main(argv):
  del argv
  FLAGS = flags.FLAGS
  _quiet_console()
  if FLAGS.checkpoint:
    models = {os.path.basename(os.path.normpath(p)): p for p in FLAGS.checkpoint}
  else:
    models = shipped_models()
  for path in models.values():
    if not os.path.isfile(os.path.join(path, checkpointing.RUN_RECORD)):
      raise SystemExit(f"error: --checkpoint={path} is not a trained run (no run.json); pass "
                       "the --workdir of python -m deepsynth_jax.train")
  if not models:
    raise SystemExit("error: no shipped models under models/; pass --checkpoint=<run directory>")
  try:
    instrument = Instrument(models, block=FLAGS.block, lead=FLAGS.lead, seed=FLAGS.seed,
                            temperature=FLAGS.temperature)
    start = time.perf_counter()
    for name, path in models.items():  # loaded and compiled now: switching is then instant
      print(f"loading {name} ({path}) ...", flush=True)
      instrument.load(name)
  except (ValueError, checkpointing.CheckpointError) as e:
    raise SystemExit(f"error: {' '.join(str(e).split())}") from None
  print(f"ready in {time.perf_counter() - start:.1f} s; models: {', '.join(models)} (default "
        f"{instrument.default})", flush=True)
  asyncio.run(_serve_forever(instrument, FLAGS.port))
  return 0


async def _serve_forever(instrument: Instrument, port: int) -> None:
  try:
    runner = await serve(instrument, port)
  except OSError as e:
    raise SystemExit(f"error: cannot listen on 127.0.0.1:{port} ({e.strerror}); pass another "
                     "--port") from None
  host, bound = runner.addresses[0][:2]
  print(f"play at http://{host}:{bound}/  (Ctrl+C to stop)", flush=True)
  try:
    await asyncio.Event().wait()
  finally:
    await runner.cleanup()


if __name__ == "__main__":
  _define_flags()
  try:
    app.run(main)
  except KeyboardInterrupt:
    print("stopped")
