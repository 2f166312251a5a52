"""Every host declares what its speed-harness end-to-end case builds; the presets point at their host."""

import pytest
import yaml

from frameworks.registry import HOSTS, host_factory
from frameworks.speed import SpeedRequest, speed_config_hook

REQUESTS = {  # host -> (the released model as a speed preset names it, the host's random-weight preset)
    "rekv": (dict(model_config="llava_ov_7b", vision="", text=""), "7b"),
    "streamforest": (dict(model_config="", vision="siglip_so400m", text="qwen2_7b"), "7b"),
    "dispider": (dict(model_config="", vision="clip_vit_l14_224", text="qwen2_1_5b"), "released"),
    "livecc": (dict(model_config="qwen2_vl_7b", vision="", text=""), "7b"),
}


def request(**model):
    return SpeedRequest(model_path=None, device="cpu", dtype="float32", seed=3, frames_per_chunk=1, **model)


@pytest.mark.parametrize("host", sorted(REQUESTS))
def test_host_hook_builds_its_released_model_and_refuses_others(host):
    hook = speed_config_hook(host_factory(host))
    model, preset = REQUESTS[host]
    settings = hook(request(**model))
    assert settings["preset"] == preset and settings["device"] == "cpu" and settings["seed"] == 3
    with pytest.raises(ValueError, match="is not"):
        hook(request(model_config="some_other_model", vision="x", text="y"))
    assert hook(SpeedRequest("", "", "", "/ckpt", "cpu", "float32", 0, 1))["model_path"] == "/ckpt"


def test_every_model_host_has_a_hook_and_presets_name_registered_hosts():
    from pathlib import Path

    presets = Path(__file__).resolve().parents[2] / "configs" / "speed" / "preset"
    assert {h for h in HOSTS if h != "toy"} <= set(REQUESTS)
    named = set()
    for path in presets.glob("*.yaml"):
        host = (yaml.safe_load(path.read_text()).get("e2e") or {}).get("host")
        if host:
            named.add(host)
            assert host in HOSTS and speed_config_hook(host_factory(host)) is not None, path.name
    assert {"streamforest", "dispider", "livecc"} <= named
