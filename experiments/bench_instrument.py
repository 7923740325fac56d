r"""Real time of the browser instrument, headless: key press to sound, and audio underruns.

  python -m experiments.bench_instrument                         # each shipped model, 60 s
  python -m experiments.bench_instrument --models=models/demo_wavenet --seconds=20

Serves the instrument (`deepsynth_jax.instrument`) on 127.0.0.1 and plays it from a WebSocket
client in the same process: a scripted performance (a seeded random melody with chords, about
five key changes per second, for --seconds of continuous playing). The page is simulated: it
plays from the arrival of the first block, at exactly 4 kHz. From the server's record of every
block it prints:

- server latency: time from a key message arriving to the block containing its key state being
  handed to the socket (what the server adds);
- press to sound: that, plus the audio queued ahead of the key state when it arrived, i.e. the
  time from the key message to the moment the page plays its first sample (excluding the
  browser's audio output latency, typically 10-20 ms);
- underruns: blocks sent after the page's previous audio ran out (the page falls silent), and the
  worst lateness; and the time to generate a block.

Acceptance (issue #17): press to sound <= 100 ms and no underruns over 60 s on 2 CPU cores.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

import numpy as np
from absl import app, flags

from deepsynth_jax import instrument, runs, streaming

flags.DEFINE_multi_string("models", None, "Run directories (default: the shipped models).")
flags.DEFINE_float("seconds", 60.0, "Length of the scripted performance.")
flags.DEFINE_integer("block", instrument.DEFAULT_BLOCK, "Samples per block.")
flags.DEFINE_integer("lead", instrument.DEFAULT_LEAD, "Samples generated ahead of real time.")
flags.DEFINE_integer("seed", 0, "Seed of the scripted performance.")
FLAGS = flags.FLAGS
RATE = 4000


def performance(seconds: float, seed: int) -> list[tuple[float, int, bool]]:
  """(time in s, key 0..87, down) of a random melody with chords over `seconds`."""
  rng = np.random.default_rng(seed)
  events, t = [], 0.5
  while t < seconds - 1.0:
    keys = rng.choice(np.arange(27, 64), size=rng.integers(1, 4), replace=False)
    length = float(rng.choice([0.15, 0.3, 0.6]))
    for k in keys:
      jitter = float(rng.uniform(0, 0.02))  # a chord's keys land a few ms apart
      events += [(t + jitter, int(k), True), (t + jitter + length, int(k), False)]
    t += float(rng.choice([0.2, 0.35, 0.5]))
  return sorted(events)


async def play(inst: instrument.Instrument, seconds: float, seed: int) -> list:
  """Plays the scripted performance against a served instrument; returns its block timings."""
  import aiohttp

  runner = await instrument.serve(inst, 0)
  port = runner.addresses[0][1]
  try:
    async with aiohttp.ClientSession() as client, \
        client.ws_connect(f"http://127.0.0.1:{port}/ws") as ws:
      await ws.receive()  # hello
      await ws.send_json({"type": "start"})

      async def drain():
        async for _ in ws:
          pass

      reader = asyncio.create_task(drain())
      start = time.perf_counter()
      for at, key, down in performance(seconds, seed):
        await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
        await ws.send_str(json.dumps({"type": "key", "key": key, "down": down}))
      await asyncio.sleep(max(0.0, start + seconds - time.perf_counter()))
      await ws.close()
      reader.cancel()
    for _ in range(100):  # the server closes the page's session
      if inst.session is None:
        break
      await asyncio.sleep(0.05)
  finally:
    await runner.cleanup()
  return inst.last_timings


def report(name: str, timings: list, block: int, generate_ms: np.ndarray) -> None:
  server_ms, sound_ms = [], []
  for b in timings:
    for arrival, sample, head in zip(b.events, b.event_samples, b.playhead):
      server_ms.append(1e3 * (b.sent - arrival))
      sound_ms.append(1e3 * (sample - head) / RATE)
  late = [1e3 * (b.sent - b.due) for b in timings[1:] if b.sent > b.due]
  seconds = timings[-1].start / RATE if timings else 0.0
  pct = lambda x, q: float(np.percentile(x, q)) if len(x) else float("nan")
  print(f"{name}: {seconds:.1f} s played, {len(server_ms)} key messages, blocks of {block} "
        f"samples ({1e3 * block / RATE:.0f} ms)")
  print(f"  server latency (key message -> its block sent): median {pct(server_ms, 50):.1f} ms, "
        f"p99 {pct(server_ms, 99):.1f} ms, max {max(server_ms, default=float('nan')):.1f} ms")
  print(f"  press to sound (+ audio queued ahead):          median {pct(sound_ms, 50):.1f} ms, "
        f"p99 {pct(sound_ms, 99):.1f} ms, max {max(sound_ms, default=float('nan')):.1f} ms")
  print(f"  underruns: {len(late)} of {len(timings) - 1} blocks late"
        + (f" (worst {max(late):.0f} ms)" if late else ""))
  print(f"  generating a block: median {np.median(generate_ms):.2f} ms, max "
        f"{np.max(generate_ms):.2f} ms (budget {1e3 * block / RATE:.0f} ms)")
  ok = len(late) == 0 and max(sound_ms, default=0.0) <= 100.0
  print(f"  {'PASS' if ok else 'FAIL'}: press to sound <= 100 ms and no underruns")


def main(argv):
  del argv
  instrument._quiet_console()
  if FLAGS.models:
    models = {os.path.basename(os.path.normpath(p)): p for p in FLAGS.models}
  else:
    models = instrument.shipped_models()
  print(f"CPU cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
  for name in models:
    inst = instrument.Instrument({name: models[name]}, block=FLAGS.block, lead=FLAGS.lead)
    inst.load(name)
    # The model's own speed: blocks generated back to back (compiled above).
    stream = streaming.open_stream(runs.load_run(models[name]))
    generate_ms = []
    for _ in range(50):
      t = time.perf_counter()
      stream.generate(FLAGS.block)
      generate_ms.append(1e3 * (time.perf_counter() - t))
    timings = asyncio.run(play(inst, FLAGS.seconds, FLAGS.seed))
    report(name, timings, FLAGS.block, np.asarray(generate_ms))


if __name__ == "__main__":
  app.run(main)
