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

Scale benchmark (--config): the same comparison at real model sizes, with LoRA,

    /usr/bin/python3 benchmarks/torch_side_by_side.py --config gpt2|qwen2.5-0.5b|llama-3.2-1b|qwen2.5-1.5b
        [--lora 16] [--lora-alpha 32] [--batch 2] [--seq 128] [--method standard|adaptive] [--steps 5]
        [--warmup 2] [--threads 2] [--safetune PATH] [--keep DIR] [--skip-safetune] [--skip-torch] [--json]

writes a random-weight checkpoint in Hugging Face Hub layout (benchmarks/hub_models.py: the Hub
config.json, one model.safetensors in the Hub's dtype, streamed tensor by tensor; reused from --keep
when it holds one for the same config and --seed), a seeded B x T batch (labels = next token, last
position -100; adaptive: the first half of each row is a prompt, -100) as BATCH.json and DATA.jsonl,
and then runs
  PyTorch, in a process of its own (peak RSS = its ru_maxrss): the Hub modeling semantics in float32
    with PEFT-style LoRA (r, alpha, on q/k/v/o/gate/up/down; c_attn/c_proj/c_fc for GPT-2), AdamW
    (lr 1e-4, weight decay 0.01) over the adapters only; standard = cross-entropy, adaptive = a no-grad
    reference forward with the adapters disabled and (1 - beta) CE + beta KL(p_ref || p_theta), beta 0.5;
  SafeTune, each under /usr/bin/time -v (peak RSS = its "Maximum resident set size"):
    <safetune> export --from-hf CKPT --out model.onnx --json, then
    standard: <safetune> fit model.onnx --batch BATCH.json --lora R --lora-alpha A --steps (warmup + steps)
              --optimizer adamw --lr 1e-4 --weight-decay 0.01 --json
    adaptive: the same fit command with --kl 0.5 (a reference pass sharing the frozen weights every step,
              then (1 - beta) SFT + beta KL over the full vocabulary on the response positions)
  (<safetune> defaults to dotnet src/SafeTune.Cli/bin/Release/net10.0/safetune.dll).
It reports ms/step (median of the timed steps), peak RSS and the first loss of both sides, their
ratios, the first-loss relative difference (LoRA B starts at zero, so the first loss is the base
model's), the export's time and peak RSS against the fp32 model size, and SafeTune's per-phase
memory account when its JSON has a "memory" object. Each side is refused when its estimated peak
exceeds 90% of MemAvailable, and killed when its processes pass --mem-limit-mb (default 90% of
MemAvailable when it starts); a side that runs out of memory is reported as such.
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
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 10; 5 with --config)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed PyTorch steps first (default 3; 2 with --config; "
                                                             "SafeTune fit always excludes its first 3)")
    ap.add_argument("--safetune", default=None,
                    help="SafeTune executable or .dll (default: dotnet run -c Release --project src/SafeTune.Cli --; "
                         "with --config: dotnet src/SafeTune.Cli/bin/Release/net10.0/safetune.dll)")
    ap.add_argument("--safetune-args", default="", help="extra arguments appended to the fit command")
    ap.add_argument("--skip-safetune", action="store_true", help="only run PyTorch (and the export)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds allowed for the SafeTune command")
    ap.add_argument("--keep", default=None, help="write the model and batch here (kept) instead of a temp dir")
    ap.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    scale = ap.add_argument_group("scale benchmark (--config): a random-weight Hub checkpoint, LoRA on both sides")
    scale.add_argument("--config", choices=["gpt2", "qwen2.5-0.5b", "llama-3.2-1b", "qwen2.5-1.5b"], default=None,
                       help="Hub config to benchmark (without it: the small 4.3M-parameter benchmark)")
    scale.add_argument("--lora", type=int, default=16, help="LoRA rank (default 16)")
    scale.add_argument("--lora-alpha", type=float, default=32.0, help="LoRA alpha (default 32; scaling alpha / r)")
    scale.add_argument("--batch", type=int, default=2, help="sequences per step (default 2)")
    scale.add_argument("--seq", type=int, default=128, help="tokens per sequence (default 128)")
    scale.add_argument("--method", choices=["standard", "adaptive"], default="standard",
                       help="standard: LoRA SFT; adaptive: + no-grad reference forward and KL (beta 0.5)")
    scale.add_argument("--seed", type=int, default=0, help="checkpoint seed (default 0)")
    scale.add_argument("--skip-torch", action="store_true", help="only run SafeTune (and write the checkpoint)")
    scale.add_argument("--run-anyway", action="store_true",
                       help="run a side even when its estimated peak exceeds the memory available: the watchdog "
                            "(--mem-limit-mb) stops it there, which shows whether it runs out of memory")
    scale.add_argument("--mem-limit-mb", type=float, default=None,
                       help="kill a side whose processes exceed this resident size (default: 90%% of MemAvailable "
                            "when the side starts)")
    args = ap.parse_args()
    if args.steps is None:
        args.steps = 5 if args.config else 10
    if args.warmup is None:
        args.warmup = 2 if args.config else 3
    return args


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
        st_last = st["losses"][-1] if st and st.get("losses") else None
        last_rel = None if st_last is None else abs(st_last - pt["losses"][-1]) / max(abs(pt["losses"][-1]), 1e-12)
        if onnx_params != params:
            print(f"the export holds the lm head as a separate copy of the embedding; SafeTune finds the copy and trains "
                  f"the two as one tensor, as PyTorch's tie does (last-loss relative difference "
                  f"{'n/a' if last_rel is None else f'{last_rel:.1e}'})")
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


# ----------------------------------------------------------------------------------------
# Scale benchmark (--config): Hub checkpoint, LoRA step on both sides
# ----------------------------------------------------------------------------------------

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hub_models  # noqa: E402

SCALE_LR = 1e-4
SCALE_BATCH_SEED = 20250611
ADAPTIVE_BETA = 0.5
SAFETUNE_DLL = os.path.join(REPO, "src", "SafeTune.Cli", "bin", "Release", "net10.0", "safetune.dll")


def meminfo_mb(key="MemAvailable"):
    return hub_models.proc_field_mb("/proc/meminfo", key)


def group_rss_mb(pgid):
    """Resident MB of all processes in process group pgid."""
    total, page = 0, os.sysconf("SC_PAGE_SIZE")
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) != pgid:  # field 5 of stat: pgrp
                continue
            with open(f"/proc/{d}/statm") as f:
                total += int(f.read().split()[1]) * page
        except (OSError, ValueError, IndexError):
            continue
    return total / 2**20


def run_watched(cmd, workdir, tag, limit_mb, timeout, env=None, time_v=False):
    """Runs cmd in its own process group (optionally under /usr/bin/time -v), killing the group when its
    resident size passes limit_mb or the machine's MemAvailable drops under 3% of MemTotal.
    Returns a dict: returncode, stdout, stderr, wall_s, sampled_peak_mb, killed (reason or None), time_v."""
    import signal
    tv_path = os.path.join(workdir, f"{tag}.time-v.txt")
    full = (["/usr/bin/time", "-v", "-o", tv_path] if time_v else []) + cmd
    out_path, err_path = os.path.join(workdir, f"{tag}.stdout.txt"), os.path.join(workdir, f"{tag}.stderr.txt")
    total = meminfo_mb("MemTotal") or 0
    killed, peak = None, 0.0
    t0 = time.perf_counter()
    with open(out_path, "w") as out, open(err_path, "w") as err:
        try:
            proc = subprocess.Popen(full, cwd=REPO, stdout=out, stderr=err, env=env, start_new_session=True)
        except OSError as e:
            return {"returncode": None, "stdout": "", "stderr": str(e), "wall_s": 0.0, "sampled_peak_mb": 0.0,
                    "killed": f"cannot start {full[0]}: {e}", "time_v": {}}
        while proc.poll() is None:
            rss = group_rss_mb(proc.pid)
            peak = max(peak, rss)
            avail = meminfo_mb()
            reason = None
            if limit_mb and rss > limit_mb:
                reason = f"resident size {rss:.0f} MB passed the limit of {limit_mb:.0f} MB"
            elif avail is not None and total and avail < 0.03 * total:
                reason = f"MemAvailable fell to {avail:.0f} MB (resident size {rss:.0f} MB)"
            elif time.perf_counter() - t0 > timeout:
                reason = f"timed out after {timeout:.0f} s"
            if reason:
                killed = reason
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                proc.wait()
                break
            time.sleep(0.2)
    wall = time.perf_counter() - t0
    with open(out_path) as f:
        stdout = f.read()
    with open(err_path) as f:
        stderr = f.read()
    return {"returncode": proc.returncode, "stdout": stdout, "stderr": stderr, "wall_s": wall,
            "sampled_peak_mb": peak, "killed": killed, "time_v": parse_time_v(tv_path) if time_v else {}}


def parse_time_v(path):
    """Maximum resident set size (MB), elapsed wall clock (s) and exit status from /usr/bin/time -v."""
    out = {}
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.strip().rpartition(": ")
        if key == "Maximum resident set size (kbytes)":
            out["max_rss_mb"] = int(value) / 1024.0
        elif key.startswith("Elapsed (wall clock) time"):
            secs = 0.0
            for part in value.split(":"):
                secs = secs * 60 + float(part)
            out["elapsed_s"] = secs
        elif key == "Exit status":
            out["exit_status"] = int(value)
        elif line.strip().startswith("Command terminated by signal"):
            out["signal"] = int(line.split()[-1])
    return out


def output_tail(r, n=1500):
    return (r["stdout"][-n:] + "\n" + r["stderr"][-n:]).strip()


def scale_command_prefix():
    if ARGS.safetune is None:
        return ["dotnet", SAFETUNE_DLL]
    cmd = shlex.split(ARGS.safetune)
    if cmd[0].endswith(".dll"):
        cmd = ["dotnet"] + cmd
    return cmd


def make_scale_batch(c, batch, seq, method):
    gen = torch.Generator().manual_seed(SCALE_BATCH_SEED)
    input_ids = torch.randint(0, c["vocab_size"], (batch, seq), generator=gen)
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    labels[:, :-1] = input_ids[:, 1:]
    if method == "adaptive":
        labels[:, : seq // 2] = IGNORE_INDEX  # a "prompt": only the second half are response tokens
    return input_ids, labels


def write_data_jsonl(path, input_ids, labels):
    with open(path, "w") as f:
        for ids, lab in zip(input_ids.tolist(), labels.tolist()):
            f.write(json.dumps({"input_ids": ids, "labels": lab}, separators=(",", ":")) + "\n")


def estimate_mb(c, batch, seq, method, side):
    """Rough peak memory (MB) of one side: fp32 weights, activations kept for backward, [B, T, V] tensors.
    side: "torch"; "export" (the target, 1.2 x the fp32 size); "safetune": the fp32 weights alone, the part no
    setting avoids on CPU (SafeTune predicts its own step and stops with exit code 2 where it does not fit; the
    watchdog in run_watched covers the rest)."""
    P = hub_models.count_parameters(c)
    weights = P * 4
    if side == "export":
        return (1.2 * weights + 300 * 2**20) / 2**20
    if side == "safetune":
        return (weights + 300 * 2**20) / 2**20
    L, d, nh, _, ffn = hub_models.dims(c)
    V, bt = c["vocab_size"], batch * seq
    act = L * (bt * (24 * d + 6 * ffn) * 4 + 3 * batch * nh * seq * seq * 4)
    vocab = (9 if method == "adaptive" else 4) * bt * V * 4
    largest = max(math.prod(s) for _, s in hub_models.shapes(c))
    load = largest * 6  # one tensor being converted while read
    return (1.3 * (weights + act + vocab + load) + 600 * 2**20) / 2**20


def refuse(side, estimate):
    if ARGS.run_anyway:
        return None
    avail = meminfo_mb()
    if avail is not None and estimate > 0.9 * avail:
        return (f"refused: estimated peak {estimate:,.0f} MB exceeds 90% of MemAvailable "
                f"({avail:,.0f} MB); use a smaller --batch/--seq or a smaller --config")
    return None


def side_limit_mb():
    if ARGS.mem_limit_mb:
        return ARGS.mem_limit_mb
    avail = meminfo_mb()
    return None if avail is None else 0.9 * avail


def run_torch_side(c, weights, batch_path, workdir):
    spec = {"config_json": c, "weights": weights, "batch": batch_path, "threads": ARGS.threads,
            "lora": ARGS.lora, "lora_alpha": ARGS.lora_alpha, "lr": SCALE_LR, "weight_decay": WEIGHT_DECAY,
            "warmup": ARGS.warmup, "steps": ARGS.steps, "method": ARGS.method, "beta": ADAPTIVE_BETA}
    spec_path = os.path.join(workdir, "torch_spec.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(ARGS.threads), OMP_NUM_THREADS=str(ARGS.threads))
    cmd = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "hub_models.py"),
           "torch-step", spec_path]
    r = run_watched(cmd, workdir, "pytorch", side_limit_mb(), ARGS.timeout, env=env)
    sys.stderr.write(r["stderr"][-3000:])
    result = last_json_object(r["stdout"])
    if r["killed"]:
        return {"error": f"killed by the benchmark: {r['killed']}", "sampled_peak_mb": r["sampled_peak_mb"]}
    if r["returncode"] == -9:
        return {"error": "out of memory (killed by signal 9)", "sampled_peak_mb": r["sampled_peak_mb"]}
    if r["returncode"] != 0 or result is None:
        last = [ln for ln in r["stderr"].strip().splitlines() if ln.strip()]
        return {"error": f"exit code {r['returncode']}" + (f": {last[-1]}" if last else ""),
                "output_tail": output_tail(r)}
    return result


def run_safetune_scale(cmd, workdir, tag, need_json=True):
    r = run_watched(cmd, workdir, tag, side_limit_mb(), ARGS.timeout, time_v=True)
    tv = r["time_v"]
    res = {"command": cmd, "wall_s": r["wall_s"], "max_rss_mb": tv.get("max_rss_mb"),
           "elapsed_s": tv.get("elapsed_s", r["wall_s"]), "sampled_peak_mb": r["sampled_peak_mb"]}
    if r["killed"]:
        res["error"] = f"killed by the benchmark: {r['killed']}"
    elif r["returncode"] != 0:
        sig = tv.get("signal")
        res["error"] = (f"exit code {r['returncode']}" + (f" (signal {sig}{', out of memory' if sig == 9 else ''})"
                                                          if sig else ""))
    obj = last_json_object(r["stdout"])
    if obj is not None:
        res["result"] = obj
    if "error" in res or (obj is None and need_json):
        res.setdefault("error", "no JSON result on stdout")
        res["output_tail"] = output_tail(r)
    return res


def flatten(obj, prefix=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from flatten(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix, obj


def print_memory_account(mem):
    """SafeTune's "memory" object, whatever its keys: a table (one row per phase) when it maps phases to flat
    objects, otherwise one line per flattened key."""
    def cell(v):
        if v is None:
            return "-"
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, float):
            return f"{v:,.2f}" if abs(v) < 10 else f"{v:,.1f}"
        if isinstance(v, int):
            return f"{v:,}"
        return json.dumps(v) if isinstance(v, (list, dict)) else str(v)

    print("SafeTune memory account:")
    if isinstance(mem, dict) and mem and all(isinstance(v, dict) and not any(isinstance(x, dict) for x in v.values())
                                             for v in mem.values()):
        cols = []
        for v in mem.values():
            cols += [k for k in v if k not in cols]
        rows = [(str(phase), [cell(v.get(k)) for k in cols]) for phase, v in mem.items()]
        w0 = max(len("phase"), max(len(r[0]) for r in rows))
        ws = [max(len(k), max(len(r[1][i]) for r in rows)) for i, k in enumerate(cols)]
        print("  " + f"{'phase':{w0}}" + "".join(f"  {k:>{w}}" for k, w in zip(cols, ws)))
        for phase, cells in rows:
            print("  " + f"{phase:{w0}}" + "".join(f"  {c:>{w}}" for c, w in zip(cells, ws)))
        return
    rows = [(k, cell(v)) for k, v in flatten(mem)]
    w = max((len(k) for k, _ in rows), default=0)
    for k, v in rows:
        print(f"  {k:{w}}  {v:>14}")


def scale_main():
    torch.set_num_threads(ARGS.threads)
    name = ARGS.config
    hub_id, c, dtype, known = hub_models.CONFIGS[name]
    params = hub_models.count_parameters(c)
    fp32_mb = params * 4 / 2**20
    n_lora = hub_models.lora_parameter_count(c, ARGS.lora)
    if c["model_type"] == "gpt2" and ARGS.seq > c["n_positions"]:
        print(f"--seq {ARGS.seq} exceeds GPT-2's {c['n_positions']} positions")
        return 2
    print(f"config: {name} ({hub_id}), {dtype} safetensors, {params:,} parameters (tied head once; known total "
          f"{known:,}: {'ok' if params == known else 'MISMATCH'}), fp32 size {fp32_mb:,.0f} MB")
    print(f"LoRA r {ARGS.lora}, alpha {ARGS.lora_alpha:g} (scaling {ARGS.lora_alpha / ARGS.lora:g}) on "
          f"{len(hub_models.lora_targets(c))} projections, {n_lora:,} trainable parameters; AdamW lr {SCALE_LR:g} "
          f"wd {WEIGHT_DECAY}; method {ARGS.method}" + (f" (beta {ADAPTIVE_BETA} fixed)" if ARGS.method == "adaptive"
                                                         else ""))
    print(f"batch {ARGS.batch} x {ARGS.seq} (seed {SCALE_BATCH_SEED}); {ARGS.warmup} warm-up + {ARGS.steps} timed "
          f"steps; {ARGS.threads} threads; MemAvailable {meminfo_mb() or 0:,.0f} MB; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus (timings assume an otherwise idle machine)")

    tmp = None
    if ARGS.keep:
        workdir = os.path.abspath(ARGS.keep)
        os.makedirs(workdir, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix=f"safetune_scale_{name}_")
        workdir = tmp.name
    ckpt = os.path.join(workdir, f"hf_{name}")
    weights = os.path.join(ckpt, "model.safetensors")
    if hub_models.checkpoint_is_current(ckpt, name, ARGS.seed):
        print(f"checkpoint: reusing {ckpt} ({os.path.getsize(weights) / 2**20:,.0f} MB)")
    else:
        t0 = time.perf_counter()
        size = hub_models.write_checkpoint(ckpt, name, ARGS.seed)
        print(f"checkpoint: wrote {ckpt} ({size / 2**20:,.0f} MB) in {time.perf_counter() - t0:.1f} s")

    input_ids, labels = make_scale_batch(c, ARGS.batch, ARGS.seq, ARGS.method)
    batch_path, data_path = os.path.join(workdir, "BATCH.json"), os.path.join(workdir, "DATA.jsonl")
    write_batch(batch_path, input_ids, labels)
    write_data_jsonl(data_path, input_ids, labels)
    response = int((labels != IGNORE_INDEX).sum())
    print(f"batch: {batch_path}, {data_path} ({response} response tokens)")

    # PyTorch
    pt = None
    if ARGS.skip_torch:
        print("PyTorch: skipped (--skip-torch)")
    else:
        est = estimate_mb(c, ARGS.batch, ARGS.seq, ARGS.method, "torch")
        why = refuse("PyTorch", est)
        if why:
            print("PyTorch: " + why)
            pt = {"error": why}
        else:
            print(f"PyTorch: estimated peak {est:,.0f} MB; running ...", flush=True)
            load0 = os.getloadavg()[0]
            pt = run_torch_side(c, weights, batch_path, workdir)
            pt["load_average"] = [load0, os.getloadavg()[0]]
            if "error" in pt:
                print(f"PyTorch: {pt['error']}")
                if pt.get("output_tail"):
                    print("  " + pt["output_tail"][-1500:].replace("\n", "\n  "))

    # SafeTune
    st, ex = None, None
    if ARGS.skip_safetune:
        print("SafeTune: skipped (--skip-safetune)")
    else:
        model_path = os.path.join(workdir, "model.onnx")
        prefix = scale_command_prefix()
        est = estimate_mb(c, ARGS.batch, ARGS.seq, ARGS.method, "export")
        why = refuse("SafeTune export", est)
        if why:
            print("SafeTune export: " + why)
            ex = {"error": why}
        else:
            print(f"SafeTune export: estimated peak {est:,.0f} MB; running ...", flush=True)
            if os.path.exists(model_path):
                os.remove(model_path)
            ex = run_safetune_scale(prefix + ["export", "--from-hf", ckpt, "--out", model_path, "--json"],
                                    workdir, "safetune_export", need_json=False)
            print("SafeTune export command: " + " ".join(shlex.quote(x) for x in ex["command"]))
            if "error" not in ex and not os.path.exists(model_path):
                ex["error"] = f"{model_path} was not written"
            if "error" in ex:
                print(f"SafeTune export: failed: {ex['error']}")
                print("  " + ex.get("output_tail", "").replace("\n", "\n  "))
        if ex is not None and "error" not in ex:
            steps = ARGS.warmup + ARGS.steps
            cmd = prefix + ["fit", model_path, "--batch", batch_path, "--lora", str(ARGS.lora),
                            "--lora-alpha", f"{ARGS.lora_alpha:g}", "--steps", str(steps), "--optimizer", "adamw",
                            "--lr", repr(SCALE_LR), "--weight-decay", repr(WEIGHT_DECAY), "--json"]
            if ARGS.method == "adaptive":
                # the regularized step: a reference pass sharing the frozen weights, then (1 - beta) SFT + beta KL
                cmd += ["--kl", f"{ADAPTIVE_BETA:g}"]
            cmd += shlex.split(ARGS.safetune_args)
            est = estimate_mb(c, ARGS.batch, ARGS.seq, ARGS.method, "safetune")
            why = refuse("SafeTune", est)
            if why:
                print("SafeTune: " + why)
                st = {"error": why}
            else:
                print(f"SafeTune {cmd[len(prefix)]}: fp32 weights alone {est:,.0f} MB; running ...",
                      flush=True)
                load0 = os.getloadavg()[0]
                st = run_safetune_scale(cmd, workdir, "safetune_" + cmd[len(prefix)])
                st["load_average"] = [load0, os.getloadavg()[0]]
                print("SafeTune command: " + " ".join(shlex.quote(x) for x in st["command"]))
                if "error" in st:
                    print(f"SafeTune: failed: {st['error']}")
                    print("  " + st.get("output_tail", "").replace("\n", "\n  "))

    # Report
    def ok(side):
        return side is not None and "error" not in side

    st_res = st.get("result", {}) if ok(st) else {}
    pt_ms = pt.get("ms_per_step") if ok(pt) else None
    pt_rss = pt.get("peak_rss_mb") if ok(pt) else None
    pt_loss = pt["losses"][0] if ok(pt) and pt.get("losses") else None
    st_times = st_res.get("times_ms")
    if isinstance(st_times, list) and len(st_times) >= ARGS.warmup + ARGS.steps and ARGS.steps > 0:
        st_ms = statistics.median(st_times[-ARGS.steps:])
    else:
        st_ms = st_res.get("ms_per_step")
    st_rss = st.get("max_rss_mb") if ok(st) else None
    st_losses = st_res.get("losses") if isinstance(st_res.get("losses"), list) else None
    st_loss = st_losses[0] if st_losses else None
    rel = None if st_loss is None or pt_loss is None else abs(st_loss - pt_loss) / abs(pt_loss)

    def status(side, label):
        if side is None:
            return "skipped"
        return side["error"] if "error" in side else None

    print()
    print(f"{name}, LoRA r {ARGS.lora}, batch {ARGS.batch} x {ARGS.seq}, {ARGS.method}")
    rows = [
        ("ms/step (median)", fmt(pt_ms, ",.0f"), fmt(st_ms, ",.0f")),
        ("peak RSS MB", fmt(pt_rss, ",.0f"), fmt(st_rss, ",.0f")),
        ("first loss", "n/a" if pt_loss is None else repr(pt_loss), "n/a" if st_loss is None else repr(st_loss)),
        ("last loss", fmt(pt["losses"][-1] if ok(pt) and pt.get("losses") else None, ".6f"),
         fmt(st_losses[-1] if st_losses else None, ".6f")),
    ]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(12, max(len(r[1]) for r in rows))
    w2 = max(12, max(len(r[2]) for r in rows))
    print(f"{'':{w0}}  {'PyTorch':>{w1}}  {'SafeTune':>{w2}}")
    for n_, a, b in rows:
        print(f"{n_:{w0}}  {a:>{w1}}  {b:>{w2}}")
    for label, side in (("PyTorch", pt), ("SafeTune", st)):
        s_ = status(side, label)
        if s_ and s_ != "skipped":
            print(f"{label}: {s_}")
    t_ratio = None if st_ms is None or pt_ms is None else st_ms / pt_ms
    m_ratio = None if st_rss is None or pt_rss is None else st_rss / pt_rss
    print(f"ratio SafeTune / PyTorch: time {fmt(t_ratio, '.2f')}, peak RSS {fmt(m_ratio, '.2f')}")
    if rel is not None:
        print(f"first-loss relative difference: {rel:.2e} ({'ok' if rel <= LOSS_RTOL else 'MISMATCH'}, "
              f"tolerance {LOSS_RTOL:g})")
    if ok(pt):
        print(f"PyTorch: weights loaded in {pt['load_s']:.1f} s, RSS after load {fmt(pt.get('rss_after_load_mb'), ',.0f')}"
              f" MB; per-step ms: " + " ".join(f"{t:,.0f}" for t in pt["times_ms"]))
        if pt.get("ce_kl"):
            print("PyTorch adaptive (CE, KL) per step: " + " ".join(f"({e['ce']:.6f}, {e['kl']:.3g})"
                                                                    for e in pt["ce_kl"]))
        if pt.get("parameters") != params:
            print(f"PyTorch model has {pt.get('parameters'):,} frozen parameters, expected {params:,}")
    for label, side in (("PyTorch", pt), ("SafeTune", st)):
        if ok(side) and side.get("load_average"):
            a, b = side["load_average"]
            print(f"{label}: load average {a:.2f} before, {b:.2f} after" +
                  (" (the machine was busy: timings are not representative)" if max(a, b) > (os.cpu_count() or 2) + 0.5
                   else ""))
    ex_rss = ex.get("max_rss_mb") if ex else None
    if ex is not None and "error" not in ex:
        print(f"export --from-hf: {fmt(ex.get('elapsed_s'), '.1f')} s, peak RSS {fmt(ex_rss, ',.0f')} MB = "
              f"{fmt(None if ex_rss is None else ex_rss / fp32_mb, '.2f')} x the fp32 model ({fp32_mb:,.0f} MB)")
    if st_res.get("memory") is not None:
        print_memory_account(st_res["memory"])
    elif ok(st):
        print("SafeTune printed no memory account")

    if ARGS.json:
        print(json.dumps({
            "config": name, "hub_id": hub_id, "safetensors_dtype": dtype, "parameters": params,
            "parameters_ok": params == known, "fp32_mb": fp32_mb, "lora": ARGS.lora, "lora_alpha": ARGS.lora_alpha,
            "lora_parameters": n_lora, "batch": ARGS.batch, "seq": ARGS.seq, "method": ARGS.method,
            "warmup": ARGS.warmup, "steps": ARGS.steps, "threads": ARGS.threads,
            "pytorch": None if pt is None else (
                {"error": pt["error"]} if "error" in pt else
                {k: pt.get(k) for k in ("losses", "ms_per_step", "times_ms", "peak_rss_mb", "rss_after_load_mb",
                                        "load_s", "ce_kl", "load_average")}),
            "safetune": None if st is None else (
                {"error": st["error"]} if "error" in st else
                {"losses": st_losses, "ms_per_step": st_ms, "peak_rss_mb": st_rss,
                 "reported_peak_rss_mb": st_res.get("peak_rss_mb"), "elapsed_s": st.get("elapsed_s"),
                 "load_average": st.get("load_average"),
                 "memory": st_res.get("memory")}),
            "export": None if ex is None else (
                {"error": ex["error"]} if "error" in ex else
                {"elapsed_s": ex.get("elapsed_s"), "peak_rss_mb": ex_rss,
                 "peak_rss_over_fp32": None if ex_rss is None else ex_rss / fp32_mb}),
            "time_ratio": t_ratio, "rss_ratio": m_ratio, "first_loss_rel_diff": rel,
            "first_loss_ok": None if rel is None else rel <= LOSS_RTOL,
        }))
    if tmp is not None:
        tmp.cleanup()
    if params != known:
        return 1
    return 0 if rel is None or rel <= LOSS_RTOL else 1


if __name__ == "__main__":
    if ARGS.config:
        sys.exit(scale_main())
    sys.exit(main())
