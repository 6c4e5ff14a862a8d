#!/usr/bin/env python3
"""MoDE against its baselines on the default model (docs/mode.md).

Adapts models/default to code and math; prose and reference are held out. Every run sees the
same batches per step (batch x seq_len tokens) and the totals of tokens are equal: MoDE's two
stage-1 experts plus its stage 2 take as many steps as the mixed LoRA and full fine-tuning runs.
Trainable parameters: MoDE's two experts (2 x blocks x k layers + gates) against a LoRA on all
maps of rank chosen to match them; the oracle LoRA per domain matches one expert.

Each model is scored by the engine (moeforge perplexity, f32, windows of 256 tokens) on the
first --eval-bytes of each domain's valid file; the figure is the mean NLL per token (ln ppl).

  scripts/mode_experiment.py OUT [--expert-steps 300] [--compose-steps 100] [--ablations k2,B1,B4,top1,even]
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build/bin/moeforge")
BACKBONE = "models/default"
ADAPTED, HELD_OUT = ["code", "math"], ["prose", "reference"]
DOMAINS = ADAPTED + HELD_OUT


def corpus(domain, split):
    return f"data/corpus/{domain}/{split}.txt"


def base_config(args, steps, lr, train_domains):
    return {
        "train": {d: corpus(d, "train") for d in train_domains},
        "valid": {d: corpus(d, "valid") for d in DOMAINS},
        "optim": {"lr": lr, "min_lr": lr / 10, "warmup_steps": max(1, steps // 20), "weight_decay": 0.0},
        "batch_size": args.batch, "seq_len": args.seq_len, "steps": steps, "eval_every": steps, "eval_batches": 8,
        "checkpoint_every": 100, "log_every": 10, "threads": 2, "seed": 1234,
    }


def train(out, name, cfg, extra=()):
    path = os.path.join(out, "configs", name + ".json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)
    run_dir = os.path.join(out, "runs", name)
    done = os.path.join(run_dir, "config.json" if "lora" not in cfg else "adapter_config.json")
    if os.path.exists(done):
        print(f"[{name}] already trained", flush=True)
        return run_dir, json.load(open(os.path.join(out, "timings.json"))).get(name, 0.0)
    print(f"[{name}] training ({cfg['steps']} steps)", flush=True)
    t0 = time.time()
    proc = subprocess.Popen([BIN, "train", "-c", path, "-o", run_dir, *extra], stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)  # the trainer's own peak RSS (moeforge execs it in place)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"[{name}] training failed (exit {proc.returncode}); config {path}")
    seconds = time.time() - t0
    timings_path = os.path.join(out, "timings.json")
    timings = json.load(open(timings_path)) if os.path.exists(timings_path) else {}
    timings[name] = seconds
    timings[name + ".peak_rss_mib"] = usage.ru_maxrss / 1024
    json.dump(timings, open(timings_path, "w"), indent=2)
    return run_dir, seconds


def safetensors_params(path, keep=lambda name: True):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    total = 0
    for name, t in header.items():
        if name != "__metadata__" and keep(name):
            count = 1
            for d in t["shape"]:
                count *= d
            total += count
    return total


def mode_params(run_dir, n_layer=4):
    def keep(name):
        if name.startswith("model.mode_gates."):
            return True
        return name.startswith("model.layers.") and int(name.split(".")[2]) >= n_layer
    return safetensors_params(os.path.join(run_dir, "model.safetensors"), keep)


def eval_slices(out, nbytes):
    paths = {}
    for d in DOMAINS:
        p = os.path.join(out, "eval", d + ".txt")
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(corpus(d, "valid"), "rb") as f:
            text = f.read(nbytes)
        while text and (text[-1] & 0xC0) == 0x80:  # do not cut a UTF-8 character
            text = text[:-1]
        if text and text[-1] >= 0xC0:
            text = text[:-1]
        open(p, "wb").write(text)
        paths[d] = p
    return paths


def nll(model_args, path):
    r = subprocess.run([BIN, "perplexity", *model_args, "-f", path, "-c", "256", "--f32", "--json", "-t", "2"],
                       check=True, capture_output=True, text=True)
    import math
    return math.log(json.loads(r.stdout)["ppl"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--expert-steps", type=int, default=300)
    ap.add_argument("--compose-steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--eval-bytes", type=int, default=100000)
    ap.add_argument("--lr-mode", type=float, default=1e-3)
    ap.add_argument("--lr-lora", type=float, default=1e-3)
    ap.add_argument("--lr-full", type=float, default=3e-4)
    ap.add_argument("--ablations", default="", help="comma list of MoDE ablations: k2 (2 layers per expert), B1, B4 "
                    "(blocks), top1 (a top-1 composed gate over the main experts), even (gate_init 0.5: an even starting mix)")
    args = ap.parse_args()
    os.chdir(ROOT)
    out = os.path.abspath(args.out)
    S, C = args.expert_steps, args.compose_steps
    total = 2 * S + C
    rows = {}  # name -> {"model": args, "seconds": .., "params": ..}

    def mode_variant(tag, blocks=2, k=1, gate="dense", top_k=1, gate_init=0.9, experts_of=None):
        layout = {"backbone": BACKBONE, "experts": ADAPTED, "blocks": blocks, "layers_per_expert": k, "gate": gate,
                  "gate_top_k": top_k, "gate_init": gate_init}
        dirs, seconds = {}, 0.0
        for e in ADAPTED if experts_of is None else []:
            cfg = base_config(args, S, args.lr_mode, ADAPTED)
            cfg["mode"] = dict(layout)
            dirs[e], s = train(out, f"{tag}-expert-{e}", cfg, ["--expert", e])
            seconds += s
        if experts_of is not None:  # stage 2 only, over another variant's stage-1 experts
            dirs = {e: os.path.join(out, "runs", f"{experts_of}-expert-{e}") for e in ADAPTED}
        variants = [("gates", False)] + ([("gates+experts", True)] if tag == "mode" else [])
        for label, train_experts in variants:
            cfg = base_config(args, C, args.lr_mode, ADAPTED)
            cfg["mode"] = dict(layout, stage=2, expert_dirs=dirs, train_experts=train_experts)
            run, s = train(out, f"{tag}-compose-{label.replace('+', '-')}", cfg)
            name = f"{tag} (stage 2: {label})"
            rows[name] = {"model": ["-m", run], "seconds": seconds + s, "params": mode_params(run)}
            if label == "gates":
                for e in ADAPTED:
                    rows[f"{tag} forced {e} expert"] = {"model": ["-m", run, "--mode-expert", e], "seconds": None,
                                                        "params": None}
        return mode_params(dirs[ADAPTED[0]])

    per_expert = mode_variant("mode")
    # LoRA on all seven maps: r (192+192 + 2 (192+64) + 192+192 + 3 (192+512)) per layer, 4 layers.
    per_rank = 4 * (384 + 2 * 256 + 384 + 3 * 704)
    r_one = max(1, round(per_expert / per_rank))
    r_two = max(1, round(2 * per_expert / per_rank))
    cfg = base_config(args, total, args.lr_lora, ADAPTED)
    cfg["lora"] = {"base": BACKBONE, "rank": r_two, "alpha": 2 * r_two}
    run, s = train(out, "lora-mixed", cfg)
    rows[f"LoRA r={r_two}, mixed"] = {"model": ["-m", BACKBONE, "--lora", run], "seconds": s,
                                      "params": safetensors_params(os.path.join(run, "adapter_model.safetensors"))}
    oracle_seconds = 0.0
    for e in ADAPTED:
        cfg = base_config(args, S, args.lr_lora, [e])
        cfg["lora"] = {"base": BACKBONE, "rank": r_one, "alpha": 2 * r_one}
        run, s = train(out, f"lora-{e}", cfg)
        oracle_seconds += s
        rows[f"LoRA r={r_one}, {e} only"] = {"model": ["-m", BACKBONE, "--lora", run], "seconds": s,
                                              "params": safetensors_params(os.path.join(run, "adapter_model.safetensors"))}
    cfg = base_config(args, total, args.lr_full, ADAPTED)
    cfg["init_from"] = BACKBONE
    run, s = train(out, "full-ft-mixed", cfg)
    rows["full fine-tuning, mixed"] = {"model": ["-m", run], "seconds": s,
                                       "params": safetensors_params(os.path.join(run, "model.safetensors"))}
    # Sparse upcycling (4 experts, top-2, every parameter trains) and Branch-Train-Mix (a full
    # fine-tune per domain, their FFNs as 2 experts of a top-1 MoE, the rest averaged, then
    # everything trained on the mix): the same total steps.
    shape = json.load(open(os.path.join(BACKBONE, "config.json")))
    model = {"n_embd": shape["hidden_size"], "n_layer": shape["num_hidden_layers"], "n_head": shape["num_attention_heads"],
             "n_head_kv": shape["num_key_value_heads"], "n_ff": shape["intermediate_size"],
             "n_ctx": shape["max_position_embeddings"], "rope_theta": shape["rope_theta"], "tied_embeddings": True}
    cfg = base_config(args, total, args.lr_full, ADAPTED)
    cfg.update(tokenizer=os.path.join(BACKBONE, "tokenizer.json"),
               model=dict(model, moe={"n_expert": 4, "top_k": 2, "upcycle_from": BACKBONE}))
    run, s = train(out, "upcycled-mixed", cfg)
    rows["sparse upcycling (4 experts, top-2), mixed"] = {"model": ["-m", run], "seconds": s,
                                                         "params": safetensors_params(os.path.join(run, "model.safetensors"))}
    branches, seconds = [], 0.0
    for e in ADAPTED:
        cfg = base_config(args, S, args.lr_full, [e])
        cfg["init_from"] = BACKBONE
        run, s = train(out, f"btx-branch-{e}", cfg)
        branches.append(run)
        seconds += s
    cfg = base_config(args, C, args.lr_full, ADAPTED)
    cfg.update(tokenizer=os.path.join(BACKBONE, "tokenizer.json"),
               model=dict(model, moe={"n_expert": len(ADAPTED), "top_k": 1, "branch_from": branches}))
    run, s = train(out, "btx-mix", cfg)
    rows["Branch-Train-Mix (2 experts, top-1)"] = {"model": ["-m", run], "seconds": seconds + s,
                                                   "params": safetensors_params(os.path.join(run, "model.safetensors"))}
    rows["backbone"] = {"model": ["-m", BACKBONE], "seconds": 0, "params": 0}
    ablations = {"k2": dict(k=2), "B1": dict(blocks=1), "B4": dict(blocks=4), "top1": dict(gate="top_k", top_k=1, experts_of="mode"),
                 "even": dict(gate_init=0.5)}
    for a in filter(None, args.ablations.split(",")):
        if a not in ablations:
            sys.exit(f"--ablations: unknown '{a}' ({', '.join(ablations)})")
        mode_variant("mode-" + a, **ablations[a])


    slices = eval_slices(out, args.eval_bytes)
    results = {"expert_steps": S, "compose_steps": C, "tokens_per_step": args.batch * args.seq_len,
               "eval_bytes": args.eval_bytes, "rows": {}}
    for name, row in rows.items():
        print(f"[eval] {name}", flush=True)
        row = dict(row)
        row["nll"] = {d: nll(row["model"], p) for d, p in slices.items()}
        results["rows"][name] = row
    # Oracle LoRA: each adapted domain with its own adapter.
    results["rows"]["LoRA oracle (own adapter per domain)"] = {
        "model": None, "seconds": oracle_seconds, "params": None,
        "nll": {e: results["rows"][f"LoRA r={r_one}, {e} only"]["nll"][e] for e in ADAPTED}}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    base = results["rows"]["backbone"]["nll"]
    print(f"\n{'row':44s} " + " ".join(f"{d:>9s}" for d in DOMAINS) + "  params   train s")
    for name, row in results["rows"].items():
        cells = " ".join(f"{row['nll'][d]:9.4f}" if d in row["nll"] else f"{'':9s}" for d in DOMAINS)
        print(f"{name:44s} {cells}  {row['params'] or '':>8}  {row['seconds'] if row['seconds'] is not None else ''}")
    print("\nheld-out change over the backbone (%): " + json.dumps({
        name: {d: round(100 * (row["nll"][d] - base[d]) / base[d], 2) for d in HELD_OUT if d in row["nll"]}
        for name, row in results["rows"].items()}))


if __name__ == "__main__":
    sys.exit(main())
