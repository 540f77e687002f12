#!/usr/bin/env python3
"""Writes tests/data/vad_reference.json: the speech probability Silero VAD's own ONNX file gives
for every 32 ms of fixtures/speech/switch.mp4, so the candle port can be held to it.

Needs onnxruntime and numpy, which the project does not; faster-whisper's virtualenv has both:

    python3 -m venv /tmp/fw && /tmp/fw/bin/pip install faster-whisper==1.2.1 silero-vad==6.2.3
    /tmp/fw/bin/python scripts/make_vad_reference.py > tests/data/vad_reference.json
"""
import json, os, subprocess
import numpy as np, onnxruntime
import importlib.util

root = os.path.join(os.path.dirname(__file__), "..")
video = os.path.join(root, "fixtures", "speech", "switch.mp4")
# The package's own __init__ imports torch; only its data folder is needed.
package = os.path.dirname(importlib.util.find_spec("silero_vad").origin)
onnx = os.path.join(package, "data", "silero_vad.onnx")
pcm = subprocess.run(["ffmpeg", "-v", "error", "-i", video, "-ar", "16000", "-ac", "1", "-f", "f32le", "-"],
                     check=True, capture_output=True).stdout
x = np.frombuffer(pcm, dtype=np.float32)
session = onnxruntime.InferenceSession(onnx)
state = np.zeros((2, 1, 128), dtype=np.float32)
context = np.zeros((1, 64), dtype=np.float32)
probabilities = []
for i in range(0, len(x) - 511, 512):
    chunk = np.concatenate([context, x[i:i + 512][None]], axis=1)
    out, state = session.run(None, {"input": chunk, "state": state, "sr": np.array(16000, dtype=np.int64)})
    context = chunk[:, -64:]
    probabilities.append(round(float(out[0][0]), 6))
print(json.dumps({
    "made_with": f"silero-vad 6.2.3 silero_vad.onnx, onnxruntime {onnxruntime.__version__}",
    "video": "fixtures/speech/switch.mp4",
    "probabilities": probabilities,
}))
