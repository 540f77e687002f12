#!/usr/bin/env python3
"""Takes Silero VAD's 16 kHz weights out of the ONNX file its PyPI package ships, once, at
set-up, into safetensors under the names scenedex's candle port reads.

    convert_vad.py silero_vad_op18_ifless.onnx OUT.safetensors

The package's own `silero_vad_16k.safetensors` holds an earlier release's weights (its outputs
differ from the ONNX file's by up to 0.27); the ONNX file is the network Silero ships and
checks. Only the standard library is used: ONNX is protobuf, and the few messages needed
(a model's graph, its nodes' attributes, their sub-graphs and their tensors) are read here.
"""

import json
import os
import struct
import sys

# ONNX TensorProto data types: FLOAT.
FLOAT = 1

# From the ONNX file's names to the port's (the network of silero-vad's tinygrad_model.py).
NAMES = {
    "model.stft.forward_basis_buffer": "stft_conv.weight",
    "model.decoder.rnn.weight_ih": "lstm_cell.weight_ih",
    "model.decoder.rnn.weight_hh": "lstm_cell.weight_hh",
    "model.decoder.rnn.bias_ih": "lstm_cell.bias_ih",
    "model.decoder.rnn.bias_hh": "lstm_cell.bias_hh",
    "model.decoder.decoder.2.weight": "final_conv.weight",
    "model.decoder.decoder.2.bias": "final_conv.bias",
}
for i in range(4):
    for part in ("weight", "bias"):
        NAMES[f"model.encoder.{i}.reparam_conv.{part}"] = f"conv{i + 1}.{part}"


def varint(data, at):
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def fields(data):
    """A protobuf message's (field number, wire type, value) triples."""
    at = 0
    while at < len(data):
        key, at = varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = varint(data, at)
        elif wire == 1:
            value, at = data[at:at + 8], at + 8
        elif wire == 2:
            length, at = varint(data, at)
            value, at = data[at:at + length], at + length
        elif wire == 5:
            value, at = data[at:at + 4], at + 4
        else:
            raise SystemExit(f"convert_vad: wire type {wire} is not protobuf's")
        yield number, wire, value


def tensor(data):
    """(name, dims, float32 bytes) of a TensorProto."""
    name, dims, kind, raw, floats = "", [], None, None, []
    for number, wire, value in fields(data):
        if number == 1:  # dims: packed or one by one
            if wire == 2:
                at = 0
                while at < len(value):
                    d, at = varint(value, at)
                    dims.append(d)
            else:
                dims.append(value)
        elif number == 2:
            kind = value
        elif number == 8:
            name = value.decode()
        elif number == 9:
            raw = value
        elif number == 4:  # float_data
            floats.append(value if wire == 2 else value)
    if kind != FLOAT:
        return name, dims, None
    return name, dims, raw if raw is not None else b"".join(floats)


def tensors(graph, found):
    """Every FLOAT tensor a GraphProto holds, in its initializers and its nodes' sub-graphs."""
    for number, _, value in fields(graph):
        if number == 5:  # initializer
            name, dims, data = tensor(value)
            if data is not None:
                found.setdefault(name, (dims, data))
        elif number == 1:  # node
            for n, _, attribute in fields(value):
                if n == 5:
                    for a, _, inner in fields(attribute):
                        if a == 6:  # g: a sub-graph (the If's branches)
                            tensors(inner, found)
                        elif a == 5:  # t: a constant tensor
                            pass
    return found


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    with open(sys.argv[1], "rb") as f:
        model = f.read()
    graph = next((v for n, _, v in fields(model) if n == 7), None)
    if graph is None:
        raise SystemExit("convert_vad: no graph in the ONNX file")
    found = tensors(graph, {})
    missing = [n for n in NAMES if n not in found]
    if missing:
        raise SystemExit(f"convert_vad: the ONNX file lacks {', '.join(missing)}")
    header, offset, body = {}, 0, []
    for onnx_name, name in sorted(NAMES.items(), key=lambda kv: kv[1]):
        dims, data = found[onnx_name]
        header[name] = {"dtype": "F32", "shape": dims, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        body.append(data)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    out = sys.argv[2]
    with open(out + ".partial", "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for data in body:
            f.write(data)
    os.replace(out + ".partial", out)


if __name__ == "__main__":
    main()
