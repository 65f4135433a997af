"""Convert the embedded GGUF model into a Hugging Face folder that vLLM can serve on a CPU.

Run by the vLLM venv's Python (``python convert_gguf.py MODEL.gguf OUT_DIR``), not imported by
SportHub: it needs transformers, gguf and accelerate, which only that venv has.
"""

import shutil
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig


def main(gguf: Path, out: Path) -> None:
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    # dequantize: transformers would otherwise keep the GGUF blocks, which vLLM cannot run on a
    # CPU; bfloat16 is what vLLM's CPU path computes in
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16,
        quantization_config=GgufConfig(gguf_file=str(gguf), dequantize=True))
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)  # with the chat template, which vLLM's chat endpoint needs
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
