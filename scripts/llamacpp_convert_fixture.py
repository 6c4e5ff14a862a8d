#!/usr/bin/env python3
"""llama.cpp's convert_hf_to_gguf.py for the test fixtures, run in the reference environment.

The fixtures share a GPT-2-style byte-level BPE tokenizer trained here, whose pre-tokenizer
hash llama.cpp's converter does not know; it is declared "gpt-2" (what it is) and the
converter otherwise runs unchanged. Usage (from the repository root):
    ../shared/reference/run.sh python3 scripts/llamacpp_convert_fixture.py DIR --outtype f16 --outfile OUT.gguf
"""
import runpy
import sys

TOOLS = "/usr/share/llama.cpp/llama.cpp-tools"
SCRIPT = "/usr/share/doc/llama.cpp-tools/scripts/convert_hf_to_gguf.py"
sys.path.insert(0, TOOLS)
import conversion.base as base  # noqa: E402

base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
sys.argv = [SCRIPT] + sys.argv[1:]
runpy.run_path(SCRIPT, run_name="__main__")
