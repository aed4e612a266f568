#!/usr/bin/env python3
"""Real-ESRGAN throughput, side by side in one run (driven by benches/esrgan.sh).

Engines, each in its own process so peak RSS (wait4 ru_maxrss) is its own:
  aiprod-ort   aiprod's Rust upscaler (ort crate, libonnxruntime from the wheel), via
               `aiprod-models bench`; whole frame and with the model's default tiling
  ort-python   onnxruntime's Python API on the same ONNX file aiprod runs
  ncnn         the official ncnn runtime (`pip install ncnn`) on the official .param/.bin,
               default options and strict fp32 (fp16 storage/arithmetic off, as the reference)
All on CPU with the same thread count, the same input frame; the first frame is an untimed
warm-up. The first frame's output of every engine is cross-checked against aiprod's.

Usage: esrgan_bench.py --aiprod-models BIN --models-dir DIR --out DIR [--threads 2] [--frames 3]
       esrgan_bench.py worker-ort|worker-ncnn ...   (internal)
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

CASES = [
    # (model, scale, width, height)
    ("realesr-animevideov3", 4, 640, 360),
    ("realesr-animevideov3", 2, 960, 540),
]
ONNX = {4: "realesr-animevideov3-x4.onnx", 2: "realesr-animevideov3-x2.onnx"}
NCNN = {4: "REALESRGAN_ANIMAVIDEOV3_UP4X", 2: "REALESRGAN_ANIMAVIDEOV3_UP2X"}


def synthetic(width, height, seed=1):
    """Deterministic test frame (gradients + noise + edges), CHW float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width, (x + y) / (width + height), y / height])
    edge = ((x * height > y * width) * 0.5).astype(np.float32)
    img = base * 0.6 + edge * 0.3 + rng.random((3, height, width), dtype=np.float32) * 0.1
    return np.ascontiguousarray(np.clip(np.round(img * 255) / 255, 0, 1).astype(np.float32))


def timed(run, frames):
    t = time.perf_counter()
    first = run()
    warm = time.perf_counter() - t
    per = []
    for _ in range(frames):
        t = time.perf_counter()
        run()
        per.append(time.perf_counter() - t)
    return first, warm, per


def worker_ort(a):
    import onnxruntime as ort

    x = np.fromfile(a.input, dtype="<f4").reshape(1, 3, a.height, a.width)
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    t = time.perf_counter()
    s = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    load = time.perf_counter() - t
    first, warm, per = timed(lambda: s.run(None, {"input": x})[0], a.frames)
    first[0].astype("<f4").tofile(a.output)
    return {"engine": "ort-python", "onnxruntime": ort.__version__, "load_s": load, "warmup_s": warm, "per_frame_s": per}


def worker_ncnn(a):
    import ncnn

    x = np.fromfile(a.input, dtype="<f4").reshape(3, a.height, a.width)
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = a.threads
    if a.fp32:
        for opt in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage"):
            setattr(net.opt, opt, False)
    t = time.perf_counter()
    net.load_param(a.model + ".param")
    net.load_model(a.model + ".bin")
    load = time.perf_counter() - t

    def run():
        ex = net.create_extractor()
        ex.input("data", ncnn.Mat(x))
        _, out = ex.extract("output")
        return np.array(out)

    first, warm, per = timed(run, a.frames)
    first.astype("<f4").tofile(a.output)
    name = "ncnn-fp32" if a.fp32 else "ncnn-default"
    return {"engine": name, "ncnn": getattr(ncnn, "__version__", "?"), "load_s": load, "warmup_s": warm, "per_frame_s": per}


def spawn(cmd):
    """Runs cmd, returns (stdout, peak RSS MiB, wall s)."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    if status != 0:
        sys.exit(f"failed ({status}): {' '.join(cmd)}\n{err}")
    return out, usage.ru_maxrss / 1024.0, wall


def main():
    if len(sys.argv) > 1 and sys.argv[1].startswith("worker-"):
        p = argparse.ArgumentParser()
        p.add_argument("kind")
        for k in ("model", "input", "output"):
            p.add_argument("--" + k, required=True)
        for k in ("width", "height", "threads", "frames"):
            p.add_argument("--" + k, type=int, required=True)
        p.add_argument("--fp32", action="store_true")
        a = p.parse_args()
        r = worker_ort(a) if a.kind == "worker-ort" else worker_ncnn(a)
        print(json.dumps(r))
        return

    p = argparse.ArgumentParser()
    p.add_argument("--aiprod-models", required=True)
    p.add_argument("--models-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--frames", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2, help="engines run in turn, this many times (a shared machine's load drifts)")
    p.add_argument("--skip-ncnn", action="store_true")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    me = os.path.abspath(__file__)
    rows = []
    for model, scale, w, h in CASES:
        x = synthetic(w, h)
        inp = os.path.join(a.out, f"in_{w}x{h}.f32")
        x.astype("<f4").tofile(inp)
        common = ["--width", str(w), "--height", str(h), "--threads", str(a.threads), "--frames", str(a.frames)]
        runs = []
        for label, tile in (("aiprod-ort (whole frame)", "0"), ("aiprod-ort (default tiles)", None)):
            outf = os.path.join(a.out, f"out_aiprod_{scale}_{tile}.f32")
            cmd = [a.aiprod_models, "--models-dir", a.models_dir, "bench", "--model", model, "--scale", str(scale),
                   "--device", "cpu", "--input-f32", inp, "--output-f32", outf] + common
            if tile is not None:
                cmd += ["--tile", tile]
            runs.append((label, cmd, outf))
        onnx = os.path.join(a.models_dir, ONNX[scale])
        outf = os.path.join(a.out, f"out_ortpy_{scale}.f32")
        runs.append(("onnxruntime Python", [sys.executable, me, "worker-ort", "--model", onnx, "--input", inp, "--output", outf] + common, outf))
        if not a.skip_ncnn:
            base = os.path.join(a.models_dir, "ncnn", NCNN[scale])
            for label, extra in (("ncnn (default opts)", []), ("ncnn (fp32, as reference)", ["--fp32"])):
                outf = os.path.join(a.out, f"out_ncnn_{scale}_{len(extra)}.f32")
                runs.append((label, [sys.executable, me, "worker-ncnn", "--model", base, "--input", inp, "--output", outf] + common + extra, outf))
        ref = None
        results = {label: {"per": [], "rss": 0.0, "load": [], "r": None} for label, _, _ in runs}
        for rnd in range(a.rounds):
            for label, cmd, outf in runs:
                print(f"  round {rnd + 1}/{a.rounds} {model} x{scale} {w}x{h}: {label} ...", file=sys.stderr, flush=True)
                out, rss, _ = spawn(cmd)
                r = json.loads(out.strip().splitlines()[-1])
                acc = results[label]
                acc["per"] += r["per_frame_s"]
                acc["rss"] = max(acc["rss"], rss)
                acc["load"].append(r.get("load_s") or 0.0)
                acc["r"] = r
        for label, cmd, outf in runs:
            acc = results[label]
            per, r = acc["per"], acc["r"]
            y = np.fromfile(outf, dtype="<f4")
            if ref is None:
                ref = y
            diff = float(np.abs(y - ref).max()) if y.shape == ref.shape else float("nan")
            rows.append({
                "case": f"{w}x{h} -> x{scale}", "engine": label, "threads": a.threads,
                "best_s": min(per), "mean_s": sum(per) / len(per), "frames_timed": len(per),
                "fps_best": 1.0 / min(per), "load_s": min(acc["load"]), "peak_rss_mib": acc["rss"],
                "max_abs_vs_aiprod_whole": diff, "tile_px": r.get("tile_px"), "overlap_px": r.get("overlap_px"),
            })
    with open(os.path.join(a.out, "esrgan.json"), "w") as f:
        json.dump(rows, f, indent=1)
    print("| case | engine | best s/frame | frames/s (best) | mean s/frame | peak RSS MiB | max abs vs aiprod whole-frame |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['case']} | {r['engine']} | {r['best_s']:.3f} | {r['fps_best']:.3f} | {r['mean_s']:.3f} | {r['peak_rss_mib']:.0f} | {r['max_abs_vs_aiprod_whole']:.2e} |")

if __name__ == "__main__":
    main()
