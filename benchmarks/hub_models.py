"""Hub-layout random-weight checkpoints and a plain-torch LoRA training step for the scale benchmark.

Used by benchmarks/torch_side_by_side.py --config NAME. Also runnable on its own:

    /usr/bin/python3 benchmarks/hub_models.py selftest
        compares the forwards below with tests/fixtures/make_hf_checkpoints.py (llama_forward,
        gpt2_forward) on tiny configs and prints the largest differences;
    /usr/bin/python3 benchmarks/hub_models.py torch-step SPEC.json
        the PyTorch side of the benchmark, in a process of its own (so that its peak RSS is its
        own); prints one JSON line.

Checkpoints: config.json with the fields of the Hub model (Qwen/Qwen2.5-0.5B-Instruct,
Qwen/Qwen2.5-1.5B-Instruct, meta-llama/Llama-3.2-1B-Instruct, openai-community/gpt2) and one
model.safetensors in the dtype the Hub ships (BF16 for Qwen2.5 and Llama-3.2, F32 for GPT-2),
with the Hub tensor names; tied models have no lm_head.weight. The file is written tensor by
tensor (the header is computed from the shapes first), so that no more than one tensor is in
memory at a time. Values: N(0, 0.02) for weights and biases, ones for norm weights (as
transformers' _init_weights), each tensor drawn from its own torch.Generator seeded with
seed * 1,000,003 + tensor index.

The torch models follow transformers' modeling_llama / modeling_qwen2 / modeling_gpt2: eager
attention with a causal mask, RMSNorm (LayerNorm for GPT-2), RoPE with rope_theta (and the
"llama3" rope_scaling of Llama-3.2), SwiGLU (gelu_new for GPT-2), grouped-query attention, the
tied lm head as the same Parameter as the token embedding. Weights are read from the
safetensors file and converted to float32 (from_pretrained's default dtype); compute is float32.
Dropout is off (GPT-2's config has 0.1; the benchmark compares first losses, so both sides run
without it). LoRA is PEFT's: rank r, alpha, scaling alpha / r, on q/k/v/o/gate/up/down
(c_attn, attn.c_proj, c_fc, mlp.c_proj for GPT-2); A [r, in] kaiming-uniform(a = sqrt(5)),
B [out, r] zeros; y = base(x) + scaling * (x @ A^T) @ B^T; only A and B require grad.
"""

import contextlib
import json
import math
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FIXTURES = os.path.join(REPO, "tests", "fixtures")

IGNORE_INDEX = -100
FORMAT_VERSION = 1  # bump when the checkpoint contents change (invalidates kept checkpoints)

# ----------------------------------------------------------------------------------------
# Hub configs (config.json as published) and known parameter totals (tied head counted once)
# ----------------------------------------------------------------------------------------

QWEN25_05B = {
    "architectures": ["Qwen2ForCausalLM"],
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "hidden_act": "silu",
    "hidden_size": 896,
    "initializer_range": 0.02,
    "intermediate_size": 4864,
    "max_position_embeddings": 32768,
    "max_window_layers": 21,
    "model_type": "qwen2",
    "num_attention_heads": 14,
    "num_hidden_layers": 24,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "sliding_window": 32768,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.43.1",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 151936,
}

QWEN25_15B = dict(QWEN25_05B, hidden_size=1536, intermediate_size=8960, num_attention_heads=12,
                  num_hidden_layers=28, num_key_value_heads=2, max_window_layers=21)

LLAMA32_1B = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009],
    "head_dim": 64,
    "hidden_act": "silu",
    "hidden_size": 2048,
    "initializer_range": 0.02,
    "intermediate_size": 8192,
    "max_position_embeddings": 131072,
    "mlp_bias": False,
    "model_type": "llama",
    "num_attention_heads": 32,
    "num_hidden_layers": 16,
    "num_key_value_heads": 8,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {
        "factor": 32.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "rope_theta": 500000.0,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.45.0.dev0",
    "use_cache": True,
    "vocab_size": 128256,
}

GPT2 = {
    "activation_function": "gelu_new",
    "architectures": ["GPT2LMHeadModel"],
    "attn_pdrop": 0.1,
    "bos_token_id": 50256,
    "embd_pdrop": 0.1,
    "eos_token_id": 50256,
    "initializer_range": 0.02,
    "layer_norm_epsilon": 1e-05,
    "model_type": "gpt2",
    "n_ctx": 1024,
    "n_embd": 768,
    "n_head": 12,
    "n_layer": 12,
    "n_positions": 1024,
    "resid_pdrop": 0.1,
    "summary_activation": None,
    "summary_first_dropout": 0.1,
    "summary_proj_to_labels": True,
    "summary_type": "cls_index",
    "summary_use_proj": True,
    "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
    "vocab_size": 50257,
}

# name -> (Hub id, config.json, safetensors dtype, known parameter total)
CONFIGS = {
    "gpt2": ("openai-community/gpt2", GPT2, "F32", 124_439_808),
    "qwen2.5-0.5b": ("Qwen/Qwen2.5-0.5B-Instruct", QWEN25_05B, "BF16", 494_032_768),
    "llama-3.2-1b": ("meta-llama/Llama-3.2-1B-Instruct", LLAMA32_1B, "BF16", 1_235_814_400),
    "qwen2.5-1.5b": ("Qwen/Qwen2.5-1.5B-Instruct", QWEN25_15B, "BF16", 1_543_714_304),
}


def tied(c):
    return c.get("tie_word_embeddings", True)  # GPT-2's config omits it (default True)


def vocab_size(c):
    return c["vocab_size"]


def head_dim(c):
    return c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]


def dims(c):
    """(layers, d, heads, kv heads, ffn width) for either family."""
    if c["model_type"] == "gpt2":
        return c["n_layer"], c["n_embd"], c["n_head"], c["n_head"], c.get("n_inner") or 4 * c["n_embd"]
    return (c["num_hidden_layers"], c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"],
            c["intermediate_size"])


def shapes(c):
    """Hub tensor names and shapes, in file order."""
    if c["model_type"] == "gpt2":
        L, d, _, _, inner = dims(c)
        s = [("wte.weight", (c["vocab_size"], d)), ("wpe.weight", (c["n_positions"], d))]
        for i in range(L):
            h = f"h.{i}."
            s += [
                (h + "ln_1.weight", (d,)), (h + "ln_1.bias", (d,)),
                (h + "attn.c_attn.weight", (d, 3 * d)), (h + "attn.c_attn.bias", (3 * d,)),  # Conv1D [in, out]
                (h + "attn.c_proj.weight", (d, d)), (h + "attn.c_proj.bias", (d,)),
                (h + "ln_2.weight", (d,)), (h + "ln_2.bias", (d,)),
                (h + "mlp.c_fc.weight", (d, inner)), (h + "mlp.c_fc.bias", (inner,)),
                (h + "mlp.c_proj.weight", (inner, d)), (h + "mlp.c_proj.bias", (d,)),
            ]
        return s + [("ln_f.weight", (d,)), ("ln_f.bias", (d,))]
    L, d, nh, nkv, ffn = dims(c)
    hd = head_dim(c)
    qkv_bias = c["model_type"] == "qwen2" or c.get("attention_bias", False)
    s = [("model.embed_tokens.weight", (c["vocab_size"], d))]
    for i in range(L):
        p = f"model.layers.{i}."
        s += [(p + "input_layernorm.weight", (d,))]
        for n, out in (("q", nh * hd), ("k", nkv * hd), ("v", nkv * hd)):
            s += [(p + f"self_attn.{n}_proj.weight", (out, d))]  # nn.Linear [out, in]
            if qkv_bias:
                s += [(p + f"self_attn.{n}_proj.bias", (out,))]
        s += [
            (p + "self_attn.o_proj.weight", (d, nh * hd)),
            (p + "post_attention_layernorm.weight", (d,)),
            (p + "mlp.gate_proj.weight", (ffn, d)),
            (p + "mlp.up_proj.weight", (ffn, d)),
            (p + "mlp.down_proj.weight", (d, ffn)),
        ]
    s += [("model.norm.weight", (d,))]
    if not tied(c):
        s += [("lm_head.weight", (c["vocab_size"], d))]
    return s


def count_parameters(c):
    return sum(math.prod(shape) for _, shape in shapes(c))


def lora_targets(c):
    """(Hub weight name, in, out) of every LoRA-adapted projection."""
    out = []
    for name, shape in shapes(c):
        if not name.endswith(".weight") or len(shape) != 2:
            continue
        if c["model_type"] == "gpt2":
            if any(k in name for k in ("attn.c_attn.", "attn.c_proj.", "mlp.c_fc.", "mlp.c_proj.")):
                out.append((name, shape[0], shape[1]))  # Conv1D [in, out]
        elif any(k in name for k in ("_proj.weight",)):
            out.append((name, shape[1], shape[0]))
    return out


def lora_parameter_count(c, r):
    return sum(r * (i + o) for _, i, o in lora_targets(c))


def is_norm_weight(name):
    return name.endswith(("norm.weight", "ln_1.weight", "ln_2.weight", "ln_f.weight"))


# ----------------------------------------------------------------------------------------
# safetensors: streaming writer, tensor-at-a-time reader
# ----------------------------------------------------------------------------------------

DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2}


def init_tensor(name, shape, index, seed):
    import torch
    if is_norm_weight(name):
        return torch.ones(shape, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed * 1_000_003 + index)
    t = torch.randn(shape, generator=gen, dtype=torch.float32)
    return t.mul_(0.02)


def tensor_bytes(t, dtype):
    """A little-endian numpy array (a buffer, written without a further copy) of t in the given dtype."""
    import torch
    t = t.detach().contiguous()
    if dtype == "F32":
        return t.to(torch.float32).numpy().astype("<f4", copy=False)
    if dtype == "F16":
        return t.to(torch.float16).numpy().astype("<f2", copy=False)
    if dtype == "BF16":  # round to nearest even, as torch's .to(bfloat16)
        return t.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2", copy=False)
    raise ValueError(dtype)


def write_checkpoint(folder, name, seed, log=print):
    """Writes config.json and model.safetensors (streamed) for CONFIGS[name]; returns the file size."""
    _, config, dtype, _ = CONFIGS[name]
    return write_hub_folder(folder, config, dtype, seed, log=log, marker={"config": name})


def write_hub_folder(folder, config, dtype, seed, log=print, marker=None):
    os.makedirs(folder, exist_ok=True)
    marker_path = os.path.join(folder, "checkpoint.json")
    if os.path.exists(marker_path):
        os.remove(marker_path)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    entries = shapes(config)
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for tname, shape in entries:
        n = math.prod(shape) * DTYPE_BYTES[dtype]
        header[tname] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * (-len(hbytes) % 8)
    path = os.path.join(folder, "model.safetensors")
    tmp = path + ".partial"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for index, (tname, shape) in enumerate(entries):
            t = init_tensor(tname, shape, index, seed)
            data = tensor_bytes(t, dtype)
            del t
            assert data.nbytes == header[tname]["data_offsets"][1] - header[tname]["data_offsets"][0]
            f.write(memoryview(data.reshape(-1)).cast("B"))
            del data
    os.replace(tmp, path)
    size = os.path.getsize(path)
    with open(marker_path, "w") as f:
        json.dump(dict(marker or {}, seed=seed, format_version=FORMAT_VERSION, dtype=dtype, bytes=size,
                       config_json=config), f)
        f.write("\n")
    return size


def checkpoint_is_current(folder, name, seed):
    _, config, dtype, _ = CONFIGS[name]
    try:
        with open(os.path.join(folder, "checkpoint.json")) as f:
            m = json.load(f)
        with open(os.path.join(folder, "config.json")) as f:
            on_disk = json.load(f)
        size = os.path.getsize(os.path.join(folder, "model.safetensors"))
    except (OSError, ValueError):
        return False
    return (m.get("config") == name and m.get("seed") == seed and m.get("format_version") == FORMAT_VERSION
            and m.get("dtype") == dtype and m.get("bytes") == size and on_disk == config
            and m.get("config_json") == config)


def read_safetensors_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return header, 8 + n


def iter_safetensors(path):
    """Yields (name, float32 torch tensor) one at a time, reading with plain file reads (no mmap, so
    that the file's pages do not count in the reader's resident set)."""
    import numpy as np
    import torch
    header, base = read_safetensors_header(path)
    with open(path, "rb") as f:
        for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
            s, e = info["data_offsets"]
            f.seek(base + s)
            buf = f.read(e - s)
            if info["dtype"] == "F32":
                a = np.frombuffer(buf, dtype="<f4").astype(np.float32)
            elif info["dtype"] == "F16":
                a = np.frombuffer(buf, dtype="<f2").astype(np.float32)
            elif info["dtype"] == "BF16":
                a = (np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                raise ValueError(f"{name}: dtype {info['dtype']}")
            del buf
            yield name, torch.from_numpy(a).reshape(info["shape"])


# ----------------------------------------------------------------------------------------
# Torch models (transformers' semantics) with PEFT-style LoRA
# ----------------------------------------------------------------------------------------


def inv_freq_of(c):
    """transformers' ROPE_INIT_FUNCTIONS: "default" and "llama3" (float32)."""
    import torch
    hd = head_dim(c)
    inv_freq = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    rs = c.get("rope_scaling")
    if not rs:
        return inv_freq
    kind = rs.get("rope_type", rs.get("type"))
    if kind == "default":
        return inv_freq
    if kind != "llama3":
        raise ValueError(f"rope_scaling type {kind!r} is not implemented")
    factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old_ctx = rs["original_max_position_embeddings"]
    low_freq_wavelen, high_freq_wavelen = old_ctx / low, old_ctx / high
    wavelen = 2 * math.pi / inv_freq
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_ctx / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * inv_freq_llama / factor + smooth * inv_freq_llama
    is_medium = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium, smoothed, inv_freq_llama)


def build_torch_model(c, weights_path, r, alpha, lora_seed=0):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Lora(nn.Module):
        """A frozen projection plus PEFT's LoRA. conv1d: weight stored [in, out] (GPT-2's Conv1D)."""

        def __init__(self, weight, bias, conv1d):
            super().__init__()
            self.weight = nn.Parameter(weight, requires_grad=False)
            self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)
            self.conv1d = conv1d
            fan_in, fan_out = (weight.shape[0], weight.shape[1]) if conv1d else (weight.shape[1], weight.shape[0])
            self.lora_A = nn.Parameter(torch.empty(r, fan_in))
            self.lora_B = nn.Parameter(torch.zeros(fan_out, r))
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # PEFT reset_lora_parameters
            self.scaling = alpha / r
            self.enabled = True

        def forward(self, x):
            if self.conv1d:
                size_out = x.shape[:-1] + (self.weight.shape[-1],)
                y = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(size_out)
            else:
                y = F.linear(x, self.weight, self.bias)
            if self.enabled:
                y = y + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scaling
            return y

    def rotate_half(x):
        x1 = x[..., : x.shape[-1] // 2]
        x2 = x[..., x.shape[-1] // 2:]
        return torch.cat((-x2, x1), dim=-1)

    def rms_norm(x, w, eps):
        variance = x.pow(2).mean(-1, keepdim=True)
        return w * (x * torch.rsqrt(variance + eps))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = c
            self.params = nn.ParameterDict()  # frozen non-projection weights, keyed by Hub name with '.' -> ':'
            self.proj = nn.ModuleDict()

        def w(self, name):
            return self.params[name.replace(".", ":")]

        def p(self, name):
            return self.proj[name.replace(".", ":")]

        @contextlib.contextmanager
        def adapters_disabled(self):
            for m in self.proj.values():
                m.enabled = False
            try:
                yield
            finally:
                for m in self.proj.values():
                    m.enabled = True

        def lora_parameters(self):
            return [q for m in self.proj.values() for q in (m.lora_A, m.lora_B)]

        def forward(self, input_ids):
            return gpt2_fwd(self, input_ids) if c["model_type"] == "gpt2" else llama_fwd(self, input_ids)

    def llama_fwd(m, input_ids):
        L, d, nh, nkv, _ = dims(c)
        hd, eps = head_dim(c), c["rms_norm_eps"]
        n_rep = nh // nkv
        b, t = input_ids.shape
        emb = m.w("model.embed_tokens.weight")
        x = F.embedding(input_ids, emb)
        inv_freq = inv_freq_of(c)
        pos = torch.arange(t, dtype=torch.int64).float()
        freqs = (inv_freq[:, None] @ pos[None, :]).transpose(0, 1)
        e = torch.cat((freqs, freqs), dim=-1)
        cos, sin = e.cos()[None, None], e.sin()[None, None]
        causal = torch.full((t, t), torch.finfo(x.dtype).min, dtype=x.dtype).triu(1)[None, None]
        scaling = hd ** -0.5
        for i in range(L):
            pre = f"model.layers.{i}."
            r_ = x
            y = rms_norm(x, m.w(pre + "input_layernorm.weight"), eps)
            q = m.p(pre + "self_attn.q_proj")(y).view(b, t, nh, hd).transpose(1, 2)
            k = m.p(pre + "self_attn.k_proj")(y).view(b, t, nkv, hd).transpose(1, 2)
            v = m.p(pre + "self_attn.v_proj")(y).view(b, t, nkv, hd).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            k = k[:, :, None].expand(b, nkv, n_rep, t, hd).reshape(b, nh, t, hd)  # repeat_kv
            v = v[:, :, None].expand(b, nkv, n_rep, t, hd).reshape(b, nh, t, hd)
            att = torch.matmul(q, k.transpose(2, 3)) * scaling + causal
            att = torch.softmax(att, dim=-1, dtype=torch.float32).to(q.dtype)
            y = torch.matmul(att, v).transpose(1, 2).reshape(b, t, nh * hd)
            x = r_ + m.p(pre + "self_attn.o_proj")(y)
            r_ = x
            y = rms_norm(x, m.w(pre + "post_attention_layernorm.weight"), eps)
            y = m.p(pre + "mlp.down_proj")(F.silu(m.p(pre + "mlp.gate_proj")(y)) * m.p(pre + "mlp.up_proj")(y))
            x = r_ + y
        x = rms_norm(x, m.w("model.norm.weight"), eps)
        head = emb if tied(c) else m.w("lm_head.weight")  # tied: the same Parameter
        return F.linear(x, head)

    def gelu_new(x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))

    def gpt2_fwd(m, input_ids):
        L, d, nh, _, _ = dims(c)
        hd, eps = d // nh, c["layer_norm_epsilon"]
        b, t = input_ids.shape
        wte = m.w("wte.weight")
        x = F.embedding(input_ids, wte) + F.embedding(torch.arange(t)[None], m.w("wpe.weight"))
        causal = torch.tril(torch.ones(t, t, dtype=torch.bool)).view(1, 1, t, t)
        mask_value = torch.full([], torch.finfo(x.dtype).min, dtype=x.dtype)
        for i in range(L):
            h = f"h.{i}."
            r_ = x
            y = F.layer_norm(x, (d,), m.w(h + "ln_1.weight"), m.w(h + "ln_1.bias"), eps)
            q, k, v = m.p(h + "attn.c_attn")(y).split(d, dim=2)
            q = q.view(b, t, nh, hd).permute(0, 2, 1, 3)
            k = k.view(b, t, nh, hd).permute(0, 2, 1, 3)
            v = v.view(b, t, nh, hd).permute(0, 2, 1, 3)
            att = torch.matmul(q, k.transpose(-1, -2))
            att = att / torch.full([], v.size(-1) ** 0.5, dtype=att.dtype)
            att = torch.softmax(torch.where(causal, att, mask_value), dim=-1)
            y = torch.matmul(att, v).permute(0, 2, 1, 3).contiguous().view(b, t, d)
            x = r_ + m.p(h + "attn.c_proj")(y)
            r_ = x
            y = F.layer_norm(x, (d,), m.w(h + "ln_2.weight"), m.w(h + "ln_2.bias"), eps)
            y = m.p(h + "mlp.c_proj")(gelu_new(m.p(h + "mlp.c_fc")(y)))
            x = r_ + y
        x = F.layer_norm(x, (d,), m.w("ln_f.weight"), m.w("ln_f.bias"), eps)
        return F.linear(x, wte)  # tied head

    model = Model()
    targets = {name[: -len(".weight")] for name, _, _ in lora_targets(c)}
    pending = {}  # projection -> {"weight", "bias"} until both parts (bias if any) are read
    has_bias = {n[: -len(".bias")] for n, _ in shapes(c) if n.endswith(".bias")}
    torch.manual_seed(lora_seed)
    loaded = set()
    for name, tensor in iter_safetensors(weights_path):
        loaded.add(name)
        base, _, kind = name.rpartition(".")
        if base in targets:
            pending.setdefault(base, {})[kind] = tensor
            parts = pending[base]
            if "weight" in parts and (base not in has_bias or "bias" in parts):
                model.proj[base.replace(".", ":")] = Lora(parts["weight"], parts.get("bias"),
                                                          conv1d=c["model_type"] == "gpt2")
                del pending[base]
        else:
            model.params[name.replace(".", ":")] = nn.Parameter(tensor, requires_grad=False)
    expected = {n for n, _ in shapes(c)}
    if loaded != expected or pending:
        raise ValueError(f"checkpoint tensors differ from the config: missing {sorted(expected - loaded)[:5]}, "
                         f"unexpected {sorted(loaded - expected)[:5]}")
    return model


def causal_lm_loss(logits, labels):
    import torch.nn.functional as F
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX)


def adaptive_loss(model, input_ids, labels, beta):
    """(1 - beta) * CE + beta * KL(p_ref || p_theta); the reference is the frozen base (adapters off),
    KL summed over the vocabulary and averaged over the response tokens (labels != -100)."""
    import torch
    import torch.nn.functional as F
    with torch.no_grad(), model.adapters_disabled():
        ref_logits = model(input_ids)
    logits = model(input_ids)
    ce = causal_lm_loss(logits, labels)
    mask = (labels != IGNORE_INDEX).to(logits.dtype)
    logp = F.log_softmax(logits, dim=-1)
    ref_logp = F.log_softmax(ref_logits, dim=-1)
    kl_tok = F.kl_div(logp, ref_logp, reduction="none", log_target=True).sum(-1)
    kl = (kl_tok * mask).sum() / mask.sum().clamp(min=1)
    return (1 - beta) * ce + beta * kl, ce, kl


# ----------------------------------------------------------------------------------------
# The PyTorch side, in a process of its own
# ----------------------------------------------------------------------------------------


def proc_field_mb(path, key):
    """A "Key:   N kB" field of a /proc file (/proc/self/status, /proc/meminfo) in MB, or None."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


def vm_status(key):
    return proc_field_mb("/proc/self/status", key)


def torch_step(spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    threads = int(spec["threads"])
    os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import resource
    import statistics
    import time

    import torch

    torch.set_num_threads(threads)
    c = spec["config_json"]
    t0 = time.perf_counter()
    model = build_torch_model(c, spec["weights"], spec["lora"], spec["lora_alpha"], lora_seed=spec.get("lora_seed", 0))
    load_s = time.perf_counter() - t0
    rss_loaded = vm_status("VmRSS")
    n_params = sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)
    n_lora = sum(p.numel() for p in model.lora_parameters())
    assert all(not p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)
    with open(spec["batch"]) as f:
        batch = json.load(f)
    input_ids = torch.tensor(batch["input_ids"], dtype=torch.long)
    labels = torch.tensor(batch["labels"], dtype=torch.long)
    model.train()
    opt = torch.optim.AdamW(model.lora_parameters(), lr=spec["lr"], weight_decay=spec["weight_decay"])
    losses, times, extra = [], [], []
    for i in range(spec["warmup"] + spec["steps"]):
        t = time.perf_counter()
        if spec["method"] == "adaptive":
            loss, ce, kl = adaptive_loss(model, input_ids, labels, spec["beta"])
            extra.append({"ce": float(ce), "kl": float(kl)})
        else:
            loss = causal_lm_loss(model(input_ids), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        dt = (time.perf_counter() - t) * 1000.0
        losses.append(float(loss))
        if i >= spec["warmup"]:
            times.append(dt)
        print(f"  pytorch step {i + 1}: loss {float(loss):.9f}, {dt:.0f} ms", file=sys.stderr, flush=True)
    out = {
        "losses": losses, "ms_per_step": statistics.median(times) if times else None, "times_ms": times,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "rss_after_load_mb": rss_loaded, "load_s": load_s, "parameters": n_params, "lora_parameters": n_lora,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }
    if extra:
        out["ce_kl"] = extra
    print(json.dumps(out))
    return 0


# ----------------------------------------------------------------------------------------
# Self-test against tests/fixtures/make_hf_checkpoints.py
# ----------------------------------------------------------------------------------------


def selftest():
    import tempfile

    import torch

    sys.path.insert(0, FIXTURES)
    import make_hf_checkpoints as ref

    torch.manual_seed(0)
    worst = 0.0
    cases = [
        ("qwen2", dict(ref.QWEN2_CONFIG, tie_word_embeddings=True), "BF16"),
        ("qwen2 untied", ref.QWEN2_CONFIG, "F32"),
        ("llama", ref.llama_config(10000.0, False, "float32"), "F32"),
        ("gpt2", ref.GPT2_CONFIG, "F32"),
    ]
    with tempfile.TemporaryDirectory(prefix="hub_models_selftest_") as tmp:
        for label, c, dtype in cases:
            folder = os.path.join(tmp, label.replace(" ", "_"))
            write_hub_folder(folder, c, dtype, seed=3, log=lambda *a: None)
            path = os.path.join(folder, "model.safetensors")
            W, _ = ref.read_safetensors(path)
            # non-trivial norm weights for the comparison (the benchmark's are ones)
            model = build_torch_model(c, path, r=4, alpha=8)
            with torch.no_grad():
                for name, p in model.params.items():
                    if is_norm_weight(name.replace(":", ".")):
                        p.add_(0.1 * torch.randn_like(p))
                        W[name.replace(":", ".")] = p.detach().clone()
            ids = torch.randint(0, c["vocab_size"], (2, 7), generator=torch.Generator().manual_seed(5))
            with torch.no_grad():
                ours = model(ids)
                theirs = ref.gpt2_forward(W, c, ids) if c["model_type"] == "gpt2" else ref.llama_forward(W, c, ids)
                diff = (ours - theirs).abs().max().item()
                # adapters with B != 0 change the output; disabled they do not
                for m in model.proj.values():
                    m.lora_B.normal_()
                changed = (model(ids) - theirs).abs().max().item()
                with model.adapters_disabled():
                    off = (model(ids) - theirs).abs().max().item()
            worst = max(worst, diff, off)
            print(f"{label:13} ({dtype}): max |ours - make_hf_checkpoints| = {diff:.3e}; adapters on (B != 0) "
                  f"{changed:.3e}, disabled {off:.3e}")
    # llama3 rope scaling: compare with the formula evaluated directly, frequency by frequency
    c = dict(LLAMA32_1B)
    hd, rs = head_dim(c), c["rope_scaling"]
    base = [1.0 / (c["rope_theta"] ** (i / hd)) for i in range(0, hd, 2)]
    expect = []
    for f in base:
        wl = 2 * math.pi / f
        if wl < rs["original_max_position_embeddings"] / rs["high_freq_factor"]:
            expect.append(f)
        elif wl > rs["original_max_position_embeddings"] / rs["low_freq_factor"]:
            expect.append(f / rs["factor"])
        else:
            s = (rs["original_max_position_embeddings"] / wl - rs["low_freq_factor"]) / (
                rs["high_freq_factor"] - rs["low_freq_factor"])
            expect.append((1 - s) * f / rs["factor"] + s * f)
    got = inv_freq_of(c).double()
    rope_diff = (got - torch.tensor(expect, dtype=torch.float64)).abs().div(torch.tensor(expect, dtype=torch.float64)).max().item()
    worst = max(worst, rope_diff)
    print(f"llama3 rope_scaling: {sum(1 for e, b in zip(expect, base) if e != b)} of {len(base)} frequencies scaled; "
          f"max relative difference from the formula {rope_diff:.2e}")
    for name, (_, cfg, _, known) in CONFIGS.items():
        n = count_parameters(cfg)
        print(f"{name:13} parameters {n:,} ({'ok' if n == known else f'MISMATCH, known {known:,}'})")
        worst = max(worst, 0.0 if n == known else 1.0)
    ok = worst < 1e-5
    print("selftest " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "torch-step":
        sys.exit(torch_step(sys.argv[2]))
    if len(sys.argv) == 2 and sys.argv[1] == "selftest":
        sys.exit(selftest())
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    sys.exit(2)
