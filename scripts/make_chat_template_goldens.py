#!/usr/bin/env python3
"""Chat-template goldens from Hugging Face transformers (tokenizer.apply_chat_template).

Run in the reference environment from the repository root:
  ../shared/reference/run.sh python3 scripts/make_chat_template_goldens.py
Reads tests/golden/data/chat_templates/*.jinja, renders every conversation below with
add_generation_prompt false and true through transformers, and writes goldens.json (an
"error" entry with jinja2's message where the template raises)."""
import json
import os

import jinja2
import transformers
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast

DIR = "tests/golden/data/chat_templates"

# template file -> the model's special tokens (None: the model has none of that kind)
TEMPLATES = {
    "smollm2-135m-instruct.jinja": {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "unk_token": "<|endoftext|>", "pad_token": "<|im_end|>"},
    "gemma-3-it.jinja": {"bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>", "pad_token": "<pad>"},
    "qwen2.5-instruct.jinja": {"bos_token": None, "eos_token": "<|im_end|>", "unk_token": None, "pad_token": "<|endoftext|>"},
    "llama-3.1-instruct.jinja": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "unk_token": None, "pad_token": None},
    "mistral-7b-instruct-v0.2.jinja": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": None},
}

CONVERSATIONS = {
    "system_user": [{"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": "What is the capital of France?"}],
    "user_only": [{"role": "user", "content": "Hello!"}],
    "multi_turn": [{"role": "user", "content": "Hi"},
                   {"role": "assistant", "content": "Hello! How can I help?"},
                   {"role": "user", "content": "Tell me a joke."}],
    "system_multi_turn": [{"role": "system", "content": "Be brief."},
                          {"role": "user", "content": "2+2?"},
                          {"role": "assistant", "content": "4"},
                          {"role": "user", "content": "And 3+3?"}],
    "ends_with_assistant": [{"role": "user", "content": "Say hi"},
                            {"role": "assistant", "content": "hi"}],
    "tricky_content": [{"role": "user", "content": "  Line one\nline \"two\" with 'quotes'\n\tand a tab  "},
                       {"role": "assistant", "content": "Ünïcödé: 日本語, emoji 🙂, {{ not a tag }} {% raw %}"},
                       {"role": "user", "content": "Backslash \\n and </s> <|im_end|>\n\n"}],
    "wrong_alternation": [{"role": "user", "content": "one"},
                          {"role": "user", "content": "two"}],
    "empty_content": [{"role": "system", "content": ""},
                      {"role": "user", "content": ""}],
}


def main():
    cases = []
    for name, tokens in TEMPLATES.items():
        template = open(os.path.join(DIR, name), encoding="utf-8").read()
        # Any tokenizer will do: only its special tokens and chat template take part.
        tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"x": 0}, unk_token="x")))
        for k, v in tokens.items():
            setattr(tok, k, v)
        tok.chat_template = template
        for conv_name, messages in CONVERSATIONS.items():
            for gen in (False, True):
                case = {"template": name, "conversation": conv_name, "add_generation_prompt": gen}
                try:
                    case["text"] = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
                except jinja2.TemplateError as e:
                    case["error"] = str(e)
                cases.append(case)
    out = {
        "generator": "scripts/make_chat_template_goldens.py",
        "transformers": transformers.__version__,
        "jinja2": jinja2.__version__,
        "special_tokens": TEMPLATES,
        "conversations": CONVERSATIONS,
        "cases": cases,
    }
    with open(os.path.join(DIR, "goldens.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"{len(cases)} cases, {sum('error' in c for c in cases)} errors")


if __name__ == "__main__":
    main()
