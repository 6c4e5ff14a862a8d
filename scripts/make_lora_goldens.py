#!/usr/bin/env python3
"""LoRA goldens from PEFT: adapters made by PEFT on the small model fixtures, with the logits
PEFT computes for base + adapter, and the logits PEFT computes for adapters that moeforge wrote.

Run in the reference environment from the repository root, with PEFT on the path (the
reference environment has no pip: unpack the pure-Python wheel, `pip download --no-deps peft`,
into build-ref/pylib):
    ../shared/reference/run.sh env PYTHONPATH=build-ref/pylib python3 scripts/make_lora_goldens.py make
        -> tests/golden/data/lora/<name>/ (adapter_config.json, adapter_model.safetensors, golden.json)
    ../shared/reference/run.sh env PYTHONPATH=build-ref/pylib python3 scripts/make_lora_goldens.py check ADAPTER_DIR BASE_DIR OUT.json
        -> PEFT's logits for an adapter written by another tool (moeforge's round trip)
scripts/make_lora_goldens.sh runs both and llama.cpp's GGUF converter.
"""
import json, os, sys

import torch
import transformers
import peft
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

MODELS = "tests/golden/data/models"
OUT = "tests/golden/data/lora"
PROBE = [5, 17, 300, 2, 999, 64, 1, 512, 33, 7]
N_VOCAB_KEPT = 48  # logits of the first ids at every position, and of the first 1024 at the last one
N_LAST_KEPT = 1024

ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ADAPTERS = [
    # name, base fixture, LoraConfig kwargs, seed
    ("llama-gqa4-untied-r4", "llama-gqa4-untied", dict(r=4, lora_alpha=8, target_modules=ALL), 1),
    # rsLoRA, per-module ranks and alphas, a subset of the maps.
    ("llama-gqa4-untied-rslora", "llama-gqa4-untied",
     dict(r=6, lora_alpha=4, use_rslora=True, target_modules=["q_proj", "v_proj", "down_proj"],
          rank_pattern={"down_proj": 3}, alpha_pattern={"v_proj": 10}), 2),
    ("qwen2-bias-gqa3-r4", "qwen2-bias-gqa3", dict(r=4, lora_alpha=16, target_modules=ALL), 3),
    ("gemma3-swa6-r8", "gemma3-swa6", dict(r=8, lora_alpha=8, target_modules=ALL), 4),
]


def logits_record(model):
    with torch.no_grad():
        out = model(torch.tensor([PROBE])).logits[0].float()  # [n, n_vocab]
    return {"probe_ids": PROBE, "logits_first_ids": out[:, :N_VOCAB_KEPT].tolist(), "logits_last_row": out[-1, :N_LAST_KEPT].tolist()}


def versions():
    return {"transformers": transformers.__version__, "torch": torch.__version__, "peft": peft.__version__}


def make():
    for name, base, kwargs, seed in ADAPTERS:
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(os.path.join(MODELS, base), dtype=torch.float32)
        # init_lora_weights=False: A and B both random (PEFT's default makes B zero, a no-op).
        cfg = LoraConfig(task_type="CAUSAL_LM", init_lora_weights=False, lora_dropout=0.0, **kwargs)
        pm = get_peft_model(model, cfg)
        pm.eval()
        d = os.path.join(OUT, name)
        pm.save_pretrained(d)
        rec = {"generator": "scripts/make_lora_goldens.py", "versions": versions(), "base": os.path.join(MODELS, base)}
        rec.update(logits_record(pm))
        with open(os.path.join(d, "golden.json"), "w") as f:
            json.dump(rec, f, indent=1)
        print("wrote", d)


def check(adapter, base, out):
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    pm = PeftModel.from_pretrained(model, adapter)
    pm.eval()
    rec = {"generator": "scripts/make_lora_goldens.py check", "versions": versions(), "base": base, "adapter": adapter}
    rec.update(logits_record(pm))
    with open(out, "w") as f:
        json.dump(rec, f, indent=1)
    print("wrote", out)


if __name__ == "__main__":
    if sys.argv[1:2] == ["make"]:
        make()
    elif sys.argv[1:2] == ["check"] and len(sys.argv) == 5:
        check(*sys.argv[2:])
    else:
        sys.exit(__doc__)
