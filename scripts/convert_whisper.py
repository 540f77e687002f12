#!/usr/bin/env python3
"""Converts a Whisper model in CTranslate2's format into files scenedex reads, once, at set-up.

    convert_whisper.py MODEL_DIR OUT_DIR [MODEL.bin]

MODEL_DIR holds CTranslate2's `model.bin` (or give it as MODEL.bin, for a model shipped in
parts and joined first), `config.json` and `tokenizer.json`. Writes OUT_DIR/model.safetensors
(the names openai's Whisper has in Hugging Face's layout, float16 as shipped,
with the encoder's positions too), OUT_DIR/config.json (the
network's sizes and CTranslate2's token lists) and OUT_DIR/tokenizer.json.

Only the standard library is used. CTranslate2's model file is: a u32 binary version, the spec
name, a u32 revision, a u32 variable count; per variable a name, a u8 rank, u32 dims, a u8
dtype, a u32 byte count and the bytes; then a u32 alias count and (alias, target) pairs.
Strings are a u16 length that counts a closing NUL, then the bytes and the NUL.
"""

import json
import os
import shutil
import struct
import sys

# CTranslate2's DataType enumeration, for the types a Whisper file holds.
DTYPES = {0: ("F32", 4), 1: ("I8", 1), 2: ("I16", 2), 3: ("I32", 4), 4: ("F16", 2), 5: ("BF16", 2)}


class Reader:
    def __init__(self, f):
        self.f = f

    def take(self, fmt):
        size = struct.calcsize("<" + fmt)
        data = self.f.read(size)
        if len(data) != size:
            raise SystemExit("convert_whisper: the model file ends early")
        return struct.unpack("<" + fmt, data)[0]

    def string(self):
        n = self.take("H")
        return self.f.read(n)[:-1].decode("utf-8")


def read_model(path):
    variables, aliases = {}, {}
    with open(path, "rb") as f:
        r = Reader(f)
        version = r.take("I")
        if version != 6:
            raise SystemExit(f"convert_whisper: binary version {version}, expected 6")
        spec = r.string()
        if spec != "WhisperSpec":
            raise SystemExit(f"convert_whisper: a {spec}, not a WhisperSpec")
        r.take("I")  # the spec's revision
        for _ in range(r.take("I")):
            name = r.string()
            rank = r.take("B")
            dims = [r.take("I") for _ in range(rank)]
            dtype, size = DTYPES[r.take("B")]
            count = r.take("I")
            data = f.read(count)
            if len(data) != count:
                raise SystemExit("convert_whisper: the model file ends early")
            variables[name] = (dtype, dims, data)
        for _ in range(r.take("I")):
            alias = r.string()
            aliases[alias] = r.string()
    return variables, aliases


def rows(var, start, count):
    """Rows [start, start + count) of a matrix or vector, as a variable of its own."""
    dtype, dims, data = var
    width = len(data) // dims[0]
    return dtype, [count] + dims[1:], data[start * width:(start + count) * width]


def zeros_like(var):
    dtype, dims, data = var
    return dtype, dims, bytes(len(data))


def linear(out, prefix, var, name):
    out[prefix + ".weight"] = var[name + "/weight"]
    if name + "/bias" in var:
        out[prefix + ".bias"] = var[name + "/bias"]


def layer_norm(out, prefix, var, name):
    out[prefix + ".weight"] = var[name + "/gamma"]
    out[prefix + ".bias"] = var[name + "/beta"]


def split(out, prefix, var, name, parts):
    """A projection stored stacked by rows (q, k, v or k, v) as separate ones; Whisper's key
    projection has no bias (CTranslate2 stores zeros there), so none is written for it."""
    weight, bias = var[name + "/weight"], var[name + "/bias"]
    n = weight[1][0] // len(parts)
    for i, part in enumerate(parts):
        out[f"{prefix}.{part}.weight"] = rows(weight, i * n, n)
        if part != "k_proj":
            out[f"{prefix}.{part}.bias"] = rows(bias, i * n, n)


def count_layers(var, side):
    n = 0
    while f"{side}/layer_{n}/ffn/linear_0/weight" in var:
        n += 1
    return n


def scalar(var, name):
    dtype, _, data = var[name]
    return struct.unpack({"I8": "<b", "I16": "<h", "I32": "<i"}[dtype], data)[0]


def convert(var):
    out = {}
    enc, dec = "model.encoder", "model.decoder"
    linear(out, enc + ".conv1", var, "encoder/conv1")
    linear(out, enc + ".conv2", var, "encoder/conv2")
    layer_norm(out, enc + ".layer_norm", var, "encoder/layer_norm")
    out[enc + ".embed_positions.weight"] = var["encoder/position_encodings/encodings"]
    for i in range(count_layers(var, "encoder")):
        src, dst = f"encoder/layer_{i}", f"{enc}.layers.{i}"
        split(out, dst + ".self_attn", var, src + "/self_attention/linear_0", ["q_proj", "k_proj", "v_proj"])
        linear(out, dst + ".self_attn.out_proj", var, src + "/self_attention/linear_1")
        layer_norm(out, dst + ".self_attn_layer_norm", var, src + "/self_attention/layer_norm")
        ffn(out, dst, var, src)
    out[dec + ".embed_tokens.weight"] = var["decoder/embeddings/weight"]
    out[dec + ".embed_positions.weight"] = var["decoder/position_encodings/encodings"]
    layer_norm(out, dec + ".layer_norm", var, "decoder/layer_norm")
    for i in range(count_layers(var, "decoder")):
        src, dst = f"decoder/layer_{i}", f"{dec}.layers.{i}"
        split(out, dst + ".self_attn", var, src + "/self_attention/linear_0", ["q_proj", "k_proj", "v_proj"])
        linear(out, dst + ".self_attn.out_proj", var, src + "/self_attention/linear_1")
        layer_norm(out, dst + ".self_attn_layer_norm", var, src + "/self_attention/layer_norm")
        linear(out, dst + ".encoder_attn.q_proj", var, src + "/attention/linear_0")
        split(out, dst + ".encoder_attn", var, src + "/attention/linear_1", ["k_proj", "v_proj"])
        linear(out, dst + ".encoder_attn.out_proj", var, src + "/attention/linear_2")
        layer_norm(out, dst + ".encoder_attn_layer_norm", var, src + "/attention/layer_norm")
        ffn(out, dst, var, src)
    return out


def ffn(out, dst, var, src):
    linear(out, dst + ".fc1", var, src + "/ffn/linear_0")
    linear(out, dst + ".fc2", var, src + "/ffn/linear_1")
    layer_norm(out, dst + ".final_layer_norm", var, src + "/ffn/layer_norm")


def network_config(var, ct2_config):
    conv1 = var["encoder/conv1/weight"][1]
    tokens = var["decoder/embeddings/weight"][1]
    return {
        "num_mel_bins": conv1[1],
        "max_source_positions": var["encoder/position_encodings/encodings"][1][0],
        "d_model": conv1[0],
        "encoder_attention_heads": scalar(var, "encoder/num_heads"),
        "encoder_layers": count_layers(var, "encoder"),
        "vocab_size": tokens[0],
        "max_target_positions": var["decoder/position_encodings/encodings"][1][0],
        "decoder_attention_heads": scalar(var, "decoder/num_heads"),
        "decoder_layers": count_layers(var, "decoder"),
        "suppress_tokens": ct2_config.get("suppress_ids", []),
        "suppress_tokens_begin": ct2_config.get("suppress_ids_begin", []),
        "lang_ids": ct2_config.get("lang_ids", []),
    }


def write_safetensors(path, tensors):
    header, offset = {}, 0
    for name in sorted(tensors):
        dtype, dims, data = tensors[name]
        header[name] = {"dtype": dtype, "shape": dims, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path + ".partial", "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for name in sorted(tensors):
            f.write(tensors[name][2])
    os.replace(path + ".partial", path)


def main():
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    model_dir, out_dir = sys.argv[1], sys.argv[2]
    model_bin = sys.argv[3] if len(sys.argv) == 4 else os.path.join(model_dir, "model.bin")
    with open(os.path.join(model_dir, "config.json")) as f:
        ct2_config = json.load(f)
    var, _aliases = read_model(model_bin)
    os.makedirs(out_dir, exist_ok=True)
    write_safetensors(os.path.join(out_dir, "model.safetensors"), convert(var))
    shutil.copyfile(os.path.join(model_dir, "tokenizer.json"), os.path.join(out_dir, "tokenizer.json.partial"))
    os.replace(os.path.join(out_dir, "tokenizer.json.partial"), os.path.join(out_dir, "tokenizer.json"))
    # Written last: its presence says the model is whole.
    with open(os.path.join(out_dir, "config.json.partial"), "w") as f:
        json.dump(network_config(var, ct2_config), f, indent=1)
    os.replace(os.path.join(out_dir, "config.json.partial"), os.path.join(out_dir, "config.json"))


if __name__ == "__main__":
    main()
