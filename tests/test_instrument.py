"""deepsynth_jax.instrument: the server serves only its page, plays key changes, survives bad
messages and vanishing pages, turns a second page away, and keeps recordings per page."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import struct

import mido
import numpy as np
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer
from scipy.io import wavfile
from test_api import make_run_dir  # noqa: E402  (a run directory with random parameters)

from deepsynth_jax import instrument

pytestmark = pytest.mark.serial  # the stream keeps real time: run alone, not beside other tests

TIMEOUT = 30.0


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_data_dir) -> dict[str, str]:
  return {"tiny_keysynth": make_run_dir(str(tmp_path_factory.mktemp("ks")), tiny_data_dir,
                                        "keysynth")}


def _run(models, body, **kwargs):
  """Runs `body(client, instrument)` against a served Instrument."""

  async def main():
    inst = instrument.Instrument(models, block=128, lead=192, **kwargs)
    async with TestClient(TestServer(inst.app(), host="127.0.0.1")) as client:
      return await body(client, inst)

  return asyncio.run(main())


async def _receive(ws, kind: str) -> dict:
  """The next JSON message of `kind` (audio blocks and other messages skipped)."""
  while True:
    msg = await ws.receive(timeout=TIMEOUT)
    assert msg.type in (WSMsgType.TEXT, WSMsgType.BINARY), msg
    if msg.type == WSMsgType.TEXT and json.loads(msg.data)["type"] == kind:
      return json.loads(msg.data)


async def _block(ws) -> tuple[int, np.ndarray]:
  while True:
    msg = await ws.receive(timeout=TIMEOUT)
    if msg.type == WSMsgType.BINARY:
      _, start = struct.unpack("<II", msg.data[:8])
      return start, np.frombuffer(msg.data[8:], np.float32)


def test_serves_its_page_and_assets_only(models):
  async def body(client, inst):
    page = await client.get("/")
    assert page.status == 200 and "DeepSynth instrument" in await page.text()
    for name in instrument.ASSETS:
      assert (await client.get(f"/static/{name}")).status == 200
    for path in ("/static/..%2Finstrument.py", "/static/index.html", "/instrument.py",
                 "/static/", "/recordings/x/performance.wav", "/etc/passwd", "/models"):
      assert (await client.get(path)).status == 404, path

  _run(models, body)


def test_binds_localhost_only(models):
  async def main():
    runner = await instrument.serve(instrument.Instrument(models), 0)
    try:
      return [a[0] for a in runner.addresses]
    finally:
      await runner.cleanup()

  assert asyncio.run(main()) == ["127.0.0.1"]


def test_plays_key_changes_and_survives_bad_messages(models, caplog):
  caplog.set_level(logging.INFO, logger="deepsynth_jax.instrument")

  async def body(client, inst):
    ws = await client.ws_connect("/ws")
    hello = await _receive(ws, "hello")
    assert hello["models"] == ["tiny_keysynth"] and hello["sample_rate"] == 4000
    assert len(hello["layout"]["owner"]) > 0
    await ws.send_json({"type": "start"})
    start, block = await _block(ws)
    assert start == 0 and block.shape == (128,)
    bad = ["{not json", json.dumps([1, 2]), json.dumps({"type": "key", "key": 88, "down": True}),
           json.dumps({"type": "key", "key": "C4", "down": True}),
           json.dumps({"type": "key", "key": 40}), json.dumps({"type": "model", "name": "x"}),
           json.dumps({"type": "dance"})]
    for text in bad:
      await ws.send_str(text)
      assert (await _receive(ws, "error"))["message"]
    await ws.send_bytes(b"\x00\x01")
    assert "JSON" in (await _receive(ws, "error"))["message"]
    await ws.send_json({"type": "key", "key": 40, "down": True})
    stamped = await _receive(ws, "stamped")
    assert stamped["down"] == [40] and stamped["sample"] > 0
    blocks = [await _block(ws) for _ in range(3)]
    assert [s for s, _ in blocks] == sorted(s for s, _ in blocks)
    await ws.close()
    return stamped

  _run(models, body)
  warnings = [r for r in caplog.records
              if r.levelno == logging.WARNING and r.name == "deepsynth_jax.instrument"]
  assert len(warnings) == 8  # one line per bad message
  assert all("\n" not in r.getMessage() for r in warnings)


def test_second_page_is_busy_and_a_vanished_page_frees_the_instrument(models, caplog):
  caplog.set_level(logging.INFO, logger="deepsynth_jax.instrument")

  async def body(client, inst):
    first = await client.ws_connect("/ws")
    await _receive(first, "hello")
    await first.send_json({"type": "start"})
    await _block(first)
    second = await client.ws_connect("/ws")
    busy = await second.receive_json(timeout=TIMEOUT)
    assert busy["type"] == "busy" and "another page" in busy["message"]
    await first.send_json({"type": "key", "key": 50, "down": True})
    await _block(first)
    # The page vanishes mid-stream (no close handshake).
    first._response.connection.transport.abort()
    for _ in range(100):
      if inst.session is None:
        break
      await asyncio.sleep(0.05)
    assert inst.session is None
    third = await client.ws_connect("/ws")
    assert (await _receive(third, "hello"))["type"] == "hello"
    await third.send_json({"type": "start"})
    start, _ = await _block(third)
    assert start == 0  # a new stream of its own
    await third.close()

  _run(models, body)
  assert any("disconnected" in r.getMessage() for r in caplog.records)


def test_recordings_are_the_pages_own(models):
  async def body(client, inst):
    ws = await client.ws_connect("/ws")
    await _receive(ws, "hello")
    await ws.send_json({"type": "save"})
    assert "nothing played" in (await _receive(ws, "error"))["message"]
    await ws.send_json({"type": "start"})
    await _block(ws)
    await ws.send_json({"type": "key", "key": 39, "down": True})
    on = (await _receive(ws, "stamped"))["sample"]
    for _ in range(3):
      await _block(ws)
    await ws.send_json({"type": "key", "key": 39, "down": False})
    off = (await _receive(ws, "stamped"))["sample"]
    await _block(ws)
    await ws.send_json({"type": "save"})
    files = (await _receive(ws, "recording"))["files"]
    got = {}
    for name, url in files.items():
      response = await client.get(url)
      assert response.status == 200, name
      got[name] = await response.read()
    token = url.split("/")[2]
    assert (await client.get(url.replace(token, "x" * len(token)))).status == 404
    await ws.close()
    for _ in range(100):
      if inst.session is None:
        break
      await asyncio.sleep(0.05)
    assert (await client.get(url)).status == 404  # gone with its page
    return got, on, off

  got, on, off = _run(models, body)
  rate, audio = wavfile.read(io.BytesIO(got["performance.wav"]))
  assert rate == 4000 and audio.dtype == np.int16 and len(audio) >= off
  mid = mido.MidiFile(file=io.BytesIO(got["keys.mid"]))
  notes = [(m.type, m.note) for m in mid.tracks[0] if m.type.startswith("note")]
  assert notes == [("note_on", 60), ("note_off", 60)]
  onset_s = mido.tick2second(next(m.time for m in mid.tracks[0] if m.type == "note_on"),
                             mid.ticks_per_beat, instrument.MIDI_TEMPO)
  assert onset_s == pytest.approx(on / 4000, abs=2e-3)
  assert got["keyboard.mp4"][4:8] == b"ftyp"
