"""Side-by-side speed of one AdamW training step: PyTorch vs SafeTune, same model, same batch.

Run from anywhere with Debian's python3-torch / python3-onnx / python3-numpy:

    /usr/bin/python3 benchmarks/torch_side_by_side.py [--threads 2] [--steps 10] [--warmup 3]
                                                      [--safetune PATH] [--skip-safetune] [--keep DIR]

Model: tests/fixtures/decoders.LlamaLike with 4 layers, d 256, 8 heads, 8 key/value heads, SwiGLU
width 704, vocab 4096, rope_theta 10000 and lm_head tied to the token embedding (4,262,144
parameters). Batch: 8 x 128 seeded token ids, labels = next token, last position -100.

PyTorch: AdamW(lr 1e-3, weight_decay 0.01) in float32 on --threads threads; each timed step is
forward + cross-entropy + backward + optimizer.step() + zero_grad(set_to_none=True); --warmup
untimed steps first, then the median of --steps timed steps.

SafeTune: the same (untrained) model is exported with torch.onnx.export (opset 17, constant
folding, dynamic batch/sequence axes, input ``input_ids``, output ``logits``) and the batch written
as JSON, then

    <safetune> fit MODEL.onnx --batch BATCH.json --steps (warmup + steps) --optimizer adamw
               --lr 1e-3 --weight-decay 0.01 --json

is run; it prints {"losses", "ms_per_step" (median after the first 3 steps), "tokens_per_step",
"peak_rss_mb"}. <safetune> defaults to ``dotnet run -c Release --project src/SafeTune.Cli --``;
--safetune takes a built executable (or a .dll, run with ``dotnet``).

Both sides start from identical weights and batch, so their first losses (before any update)
should agree to about 1e-4 relative. Achieved GFLOP/s use
    FLOPs/step = 6 * parameters * tokens + 12 * layers * T^2 * d * B
(matmul FLOPs of forward + backward; the attention term counts the full T x T scores and
weighted sum, as both implementations compute them) against a peak of
    cpus * GHz * 32 FLOP/cycle (AVX2: two 8-wide fp32 FMA units),
with cpus and clock read from /proc/cpuinfo.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "tests", "fixtures")

CONFIG = dict(vocab=4096, d=256, n_layers=4, n_heads=8, n_kv_heads=8, ffn=704, rope_theta=10000.0)
BATCH, SEQ = 8, 128
MODEL_SEED = 0
BATCH_SEED = 20240602
LR = 1e-3
WEIGHT_DECAY = 0.01
IGNORE_INDEX = -100
LOSS_RTOL = 1e-4
FLOP_PER_CYCLE = 32  # AVX2 FMA, fp32: 2 units x 8 lanes x 2


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="PyTorch intra-op and BLAS threads (default 2)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed PyTorch steps first (default 3; SafeTune fit always excludes its first 3)")
    ap.add_argument("--safetune", default=None,
                    help="SafeTune executable or .dll (default: dotnet run -c Release --project src/SafeTune.Cli --)")
    ap.add_argument("--safetune-args", default="", help="extra arguments appended to the fit command")
    ap.add_argument("--skip-safetune", action="store_true", help="only run PyTorch (and the export)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds allowed for the SafeTune command")
    ap.add_argument("--keep", default=None, help="write the model and batch here (kept) instead of a temp dir")
    ap.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    return ap.parse_args()


ARGS = parse_args()
# Debian's torch calls the system BLAS (OpenBLAS), whose thread pool ignores torch.set_num_threads.
os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.threads)
os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)

import copy  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402

import onnx  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, FIXTURES)
from decoders import LlamaLike, export  # noqa: E402


# ----------------------------------------------------------------------------------------
# Environment
# ----------------------------------------------------------------------------------------


def openblas_pthread_installed():
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "libopenblas0-pthread"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.returncode == 0 and "install ok installed" in out.stdout


def loaded_blas():
    """Paths of BLAS libraries mapped into this process (after torch ran a matmul)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if len(line.split()) >= 6}
    except OSError:
        return []
    return sorted(p for p in paths if any(k in os.path.basename(p) for k in ("blas", "mkl_", "blis")))


def cpu_peak():
    """(cpus, GHz, peak GFLOP/s, note) from /proc/cpuinfo; falls back to 2 cpus at 2.1 GHz."""
    cpus, mhz, flags = 0, [], set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "processor":
                    cpus += 1
                elif key == "cpu MHz":
                    mhz.append(float(value))
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except (OSError, ValueError):
        pass
    source = "/proc/cpuinfo"
    if cpus == 0 or not mhz:
        cpus, mhz, source = 2, [2100.0], "assumed"
    ghz = max(mhz) / 1000.0
    note = f"{cpus} cpus x {ghz:.2f} GHz x {FLOP_PER_CYCLE} FLOP/cycle ({source})"
    if flags and not {"avx2", "fma"} <= flags:
        note += "; no AVX2/FMA flag, peak overstated"
    return cpus, ghz, cpus * ghz * FLOP_PER_CYCLE, note


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


# ----------------------------------------------------------------------------------------
# Model and batch
# ----------------------------------------------------------------------------------------


def build_model():
    c = CONFIG
    return LlamaLike(c["vocab"], c["d"], c["n_layers"], c["n_heads"], c["n_kv_heads"], c["ffn"],
                     c["rope_theta"], seed=MODEL_SEED, tie_embeddings=True)


def make_batch():
    input_ids = torch.randint(0, CONFIG["vocab"], (BATCH, SEQ), generator=torch.Generator().manual_seed(BATCH_SEED))
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    labels[:, :-1] = input_ids[:, 1:]
    return input_ids, labels


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())  # tied weight once


def loss_of(model, input_ids, labels):
    logits = model(input_ids)
    return F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1), ignore_index=IGNORE_INDEX)


def write_batch(path, input_ids, labels):
    with open(path, "w") as f:
        json.dump({"input_ids": input_ids.tolist(), "labels": labels.tolist()}, f, separators=(",", ":"))
        f.write("\n")


# ----------------------------------------------------------------------------------------
# The two sides
# ----------------------------------------------------------------------------------------


def run_pytorch(model, input_ids, labels):
    torch.manual_seed(0)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    losses, times = [], []
    for i in range(ARGS.warmup + ARGS.steps):
        t0 = time.perf_counter()
        loss = loss_of(model, input_ids, labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        losses.append(float(loss))
        if i >= ARGS.warmup:
            times.append(dt * 1000.0)
    return {"losses": losses, "ms_per_step": statistics.median(times), "times_ms": times,
            "peak_rss_mb": peak_rss_mb()}


def safetune_command():
    if ARGS.safetune is None:
        return ["dotnet", "run", "-c", "Release", "--project", os.path.join(REPO, "src", "SafeTune.Cli"), "--"]
    cmd = shlex.split(ARGS.safetune)
    if cmd[0].endswith(".dll"):
        cmd = ["dotnet"] + cmd
    return cmd


def last_json_object(text):
    """The JSON object that ends the output (build or log lines may precede it)."""
    text = text.strip()
    starts = [i for i, ch in enumerate(text) if ch == "{" and (i == 0 or text[i - 1] == "\n")]
    for i in reversed(starts):
        try:
            obj = json.loads(text[i:])
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def run_safetune(model_path, batch_path):
    cmd = safetune_command() + [
        "fit", model_path, "--batch", batch_path, "--steps", str(ARGS.warmup + ARGS.steps),
        "--optimizer", "adamw", "--lr", repr(LR), "--weight-decay", repr(WEIGHT_DECAY), "--json",
    ] + shlex.split(ARGS.safetune_args)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=ARGS.timeout)
    except FileNotFoundError as e:
        return {"error": f"cannot run {cmd[0]}: {e}", "command": cmd}
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {ARGS.timeout:.0f} s", "command": cmd}
    wall = time.perf_counter() - t0
    result = last_json_object(proc.stdout)
    if proc.returncode != 0 or result is None or "ms_per_step" not in result:
        tail = (proc.stdout[-1500:] + "\n" + proc.stderr[-1500:]).strip()
        return {"error": f"exit code {proc.returncode}" + ("" if result is not None else ", no JSON result"),
                "command": cmd, "output_tail": tail}
    result["wall_s"] = wall
    result["command"] = cmd
    return result


# ----------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------


def fmt(x, spec):
    return "n/a" if x is None else format(x, spec)


def main():
    torch.set_num_threads(ARGS.threads)
    blas_pkg = openblas_pthread_installed()

    model = build_model()
    params = count_parameters(model)
    input_ids, labels = make_batch()
    pristine = copy.deepcopy(model)  # deepcopy keeps the tie; exported after PyTorch has trained `model`

    print(f"model: LlamaLike {CONFIG}, tied lm_head, {params:,} parameters")
    print(f"batch: {BATCH} x {SEQ} tokens (seed {BATCH_SEED}), labels = next token, last position {IGNORE_INDEX}")
    print(f"torch {torch.__version__}, threads {ARGS.threads} (OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}), "
          f"AdamW lr {LR} wd {WEIGHT_DECAY}, {ARGS.warmup} warm-up + {ARGS.steps} timed steps")

    pt = run_pytorch(model, input_ids, labels)
    blas_libs = loaded_blas()
    if blas_pkg is False:
        print("WARNING: libopenblas0-pthread is not installed; PyTorch falls back to a slow reference BLAS "
              "and its timings are not realistic (apt-get install libopenblas0-pthread)")
    elif blas_pkg is None:
        print("note: could not query dpkg for libopenblas0-pthread")
    print("BLAS loaded by torch: " + (", ".join(blas_libs) if blas_libs else "none found in /proc/self/maps"))

    tmp = None
    if ARGS.keep:
        workdir = os.path.abspath(ARGS.keep)
        os.makedirs(workdir, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="safetune_side_by_side_")
        workdir = tmp.name
    model_path = os.path.join(workdir, "llama_4l_d256_tied.onnx")
    batch_path = os.path.join(workdir, "batch_8x128.json")
    export(pristine, model_path, opset=17, constant_folding=True, dynamic=True)
    onnx_model = onnx.load(model_path)
    onnx.checker.check_model(onnx_model)
    onnx_params = sum(
        math.prod(i.dims) for i in onnx_model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT
    )
    write_batch(batch_path, input_ids, labels)
    print(f"export: {model_path} ({os.path.getsize(model_path) / 1e6:.1f} MB, {onnx_params:,} float initializer "
          f"elements" + ("; the folded export stores the tied head as its own transposed copy" if onnx_params != params
                         else "") + ")")

    st = None
    if ARGS.skip_safetune:
        print("SafeTune: skipped (--skip-safetune)")
    else:
        st = run_safetune(model_path, batch_path)
        print("SafeTune command: " + " ".join(shlex.quote(c) for c in st["command"]))
        if "error" in st:
            print(f"SafeTune: did not run: {st['error']}")
            if st.get("output_tail"):
                print("  " + st["output_tail"].replace("\n", "\n  "))
            st = None
        else:
            print(f"SafeTune: {st['wall_s']:.1f} s wall for the whole command (includes any build and start-up)")

    cpus, ghz, peak, peak_note = cpu_peak()
    tokens = BATCH * SEQ
    c = CONFIG
    flops = 6 * params * tokens + 12 * c["n_layers"] * SEQ * SEQ * c["d"] * BATCH

    def gflops(ms):
        return None if ms is None else flops / (ms / 1000.0) / 1e9

    pt_ms = pt["ms_per_step"]
    st_ms = st["ms_per_step"] if st else None
    pt_loss = pt["losses"][0]
    st_loss = st["losses"][0] if st and st.get("losses") else None
    rel = None if st_loss is None else abs(st_loss - pt_loss) / abs(pt_loss)

    print()
    print(f"FLOPs/step = 6 * params * tokens + 12 * layers * T^2 * d * B"
          f" = 6 * {params} * {tokens} + 12 * {c['n_layers']} * {SEQ}^2 * {c['d']} * {BATCH} = {flops / 1e9:.2f} GFLOP")
    print(f"peak = {peak_note} = {peak:.0f} GFLOP/s")
    print()
    rows = [
        ("ms/step (median)", fmt(pt_ms, ".1f"), fmt(st_ms, ".1f")),
        ("ms/step (min)", fmt(min(pt["times_ms"]), ".1f"), fmt(min(st["times_ms"]) if st and st.get("times_ms") else None, ".1f")),
        ("GFLOP/s achieved", fmt(gflops(pt_ms), ".1f"), fmt(gflops(st_ms), ".1f")),
        ("% of peak", fmt(100 * gflops(pt_ms) / peak, ".1f"), fmt(None if st_ms is None else 100 * gflops(st_ms) / peak, ".1f")),
        ("first loss", fmt(pt_loss, ".6f"), fmt(st_loss, ".6f")),
        ("last loss", fmt(pt["losses"][-1], ".6f"), fmt(st["losses"][-1] if st and st.get("losses") else None, ".6f")),
        ("peak RSS MB", fmt(pt["peak_rss_mb"], ".0f"), fmt(st.get("peak_rss_mb") if st else None, ".0f")),
    ]
    w0 = max(len(r[0]) for r in rows)
    print(f"{'':{w0}}  {'PyTorch':>12}  {'SafeTune':>12}")
    for name, a, b in rows:
        print(f"{name:{w0}}  {a:>12}  {b:>12}")
    print()
    if st_ms is not None:
        print(f"ratio SafeTune / PyTorch ms/step: {st_ms / pt_ms:.2f}")
        ok = rel <= LOSS_RTOL
        print(f"first-loss relative difference: {rel:.2e} ({'ok' if ok else 'MISMATCH'}, tolerance {LOSS_RTOL:g})")
        if onnx_params != params:
            print("later losses differ: the export holds the lm head as a separate copy of the embedding, which "
                  "SafeTune trains as its own tensor, while PyTorch keeps them tied")
    else:
        print("ratio SafeTune / PyTorch ms/step: n/a (SafeTune did not run)")
    print("PyTorch per-step ms: " + " ".join(f"{t:.0f}" for t in pt["times_ms"]))

    if ARGS.json:
        print(json.dumps({
            "parameters": params, "onnx_parameters": onnx_params, "tokens_per_step": tokens, "flops_per_step": flops,
            "peak_gflops": peak, "threads": ARGS.threads, "openblas_pthread_installed": blas_pkg,
            "pytorch": {k: pt[k] for k in ("losses", "ms_per_step", "peak_rss_mb")},
            "safetune": None if st is None else {k: st.get(k) for k in ("losses", "ms_per_step", "tokens_per_step",
                                                                         "peak_rss_mb")},
            "ratio": None if st_ms is None else st_ms / pt_ms, "first_loss_rel_diff": rel,
        }))
    if tmp is not None:
        tmp.cleanup()
    return 0 if rel is None or rel <= LOSS_RTOL else 1


if __name__ == "__main__":
    sys.exit(main())
