#!/usr/bin/env python3
"""The real Wyoming client library (`wyoming` on PyPI) against edgescribe, for tests/wyoming.

Each command prints one JSON document on stdout; the Rust tests check it.

  describe HOST PORT
  transcribe HOST PORT WAV... [--language L] [--rate R] [--channels C] [--chunk-samples N]
  concurrent HOST PORT N WAV [--language L]
  browse NAME TIMEOUT_S        (zeroconf: wait for NAME._wyoming._tcp.local.)
"""

import argparse
import array
import asyncio
import json
import math
import sys
import time
import wave

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.info import Describe, Info


async def describe(host, port):
    began = time.monotonic()
    async with AsyncTcpClient(host, port) as client:
        await client.write_event(Describe().event())
        while True:
            event = await client.read_event()
            if event is None:
                return {"error": "connection closed"}
            if Info.is_type(event.type):
                info = Info.from_event(event)
                return {
                    "elapsed_s": time.monotonic() - began,
                    "data": event.data,
                    "asr_languages": [l for p in info.asr for m in p.models for l in m.languages],
                }


def upsample(pcm, from_hz, to_hz, half_taps=12):
    """Band-limited (Hann-windowed sinc) interpolation of 16-bit mono PCM to a higher rate, as a
    recording made at `to_hz` of the same sound would be. audioop's `ratecv` interpolates linearly,
    which adds images above the original band that a recording would not have."""
    x = array.array("h", pcm)
    n_out = len(x) * to_hz // from_hz
    out = array.array("h", bytes(2 * n_out))
    for n in range(n_out):
        t = n * from_hz / to_hz
        k0 = int(t)
        acc = 0.0
        for k in range(max(0, k0 - half_taps + 1), min(len(x), k0 + half_taps + 1)):
            d = t - k
            w = 0.5 + 0.5 * math.cos(math.pi * d / half_taps)
            acc += x[k] * (math.sin(math.pi * d) / (math.pi * d) if d else 1.0) * w
        out[n] = max(-32768, min(32767, int(round(acc))))
    return out.tobytes()


def read_audio(path, rate, channels):
    """The WAV as 16-bit PCM at `rate` (the library's converter takes it to 16-bit mono first), made
    stereo with the right channel at half the left's level, so a down-mix has work to do."""
    with wave.open(path, "rb") as w:
        chunk = AudioChunk(w.getframerate(), w.getsampwidth(), w.getnchannels(),
                           w.readframes(w.getnframes()))
    chunk = AudioChunkConverter(width=2, channels=1).convert(chunk)
    audio = chunk.audio
    if rate > chunk.rate:
        audio = upsample(audio, chunk.rate, rate)
    elif rate != chunk.rate:
        audio = AudioChunkConverter(rate=rate).convert(
            AudioChunk(chunk.rate, 2, 1, audio)).audio
    if channels == 1:
        return audio
    mono = array.array("h", audio)
    stereo = array.array("h", [0]) * (len(mono) * channels)
    for c in range(channels):
        stereo[c::channels] = array.array("h", (s if c == 0 else s // 2 for s in mono))
    return stereo.tobytes()


async def transcribe_one(host, port, path, language, rate, channels, chunk_samples):
    pcm = read_audio(path, rate, channels)
    began = time.monotonic()
    async with AsyncTcpClient(host, port) as client:
        await client.write_event(Transcribe(language=language).event())
        await client.write_event(AudioStart(rate=rate, width=2, channels=channels).event())
        step = chunk_samples * 2 * channels
        for i in range(0, len(pcm), step):
            await client.write_event(
                AudioChunk(rate=rate, width=2, channels=channels, audio=pcm[i:i + step]).event())
        await client.write_event(AudioStop().event())
        while True:
            event = await client.read_event()
            if event is None:
                return {"file": path, "type": "closed"}
            if Transcript.is_type(event.type) or Error.is_type(event.type):
                return {"file": path, "type": event.type, "data": event.data,
                        "elapsed_s": time.monotonic() - began,
                        "audio_s": len(pcm) / (2 * channels * rate)}


async def browse(name, timeout_s):
    from zeroconf import ServiceStateChange
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

    kind = "_wyoming._tcp.local."
    found = asyncio.Event()

    def changed(zeroconf, service_type, name, state_change):
        if state_change is not ServiceStateChange.Removed and name == wanted:
            found.set()

    wanted = f"{name}.{kind}"
    aiozc = AsyncZeroconf()
    browser = AsyncServiceBrowser(aiozc.zeroconf, [kind], handlers=[changed])
    try:
        await asyncio.wait_for(found.wait(), timeout_s)
        info = AsyncServiceInfo(kind, wanted)
        await info.async_request(aiozc.zeroconf, 3000)
        return {"name": info.name, "port": info.port,
                "addresses": info.parsed_addresses(), "server": info.server}
    except asyncio.TimeoutError:
        return {"name": None}
    finally:
        await browser.async_cancel()
        await aiozc.async_close()


async def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("describe")
    d.add_argument("host")
    d.add_argument("port", type=int)
    t = sub.add_parser("transcribe")
    t.add_argument("host")
    t.add_argument("port", type=int)
    t.add_argument("wav", nargs="+")
    t.add_argument("--language")
    t.add_argument("--rate", type=int, default=16000)
    t.add_argument("--channels", type=int, default=1)
    t.add_argument("--chunk-samples", type=int, default=1024)
    c = sub.add_parser("concurrent")
    c.add_argument("host")
    c.add_argument("port", type=int)
    c.add_argument("n", type=int)
    c.add_argument("wav")
    c.add_argument("--language")
    b = sub.add_parser("browse")
    b.add_argument("name")
    b.add_argument("timeout_s", type=float)
    a = p.parse_args()
    if a.cmd == "describe":
        out = await describe(a.host, a.port)
    elif a.cmd == "transcribe":
        out = [await transcribe_one(a.host, a.port, w, a.language, a.rate, a.channels,
                                    a.chunk_samples) for w in a.wav]
    elif a.cmd == "concurrent":
        out = await asyncio.gather(*(transcribe_one(a.host, a.port, a.wav, a.language, 16000, 1, 1024)
                                     for _ in range(a.n)))
    else:
        out = await browse(a.name, a.timeout_s)
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    asyncio.run(main())
