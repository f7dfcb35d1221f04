"""Hardware profiles: the shipped ones load, thread overrides, and every way a user's
file can be broken gives one HardwareProfileError naming the file and the field."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from netcut import HardwareProfileError, UnknownHardwareError, list_hardware, load_hardware
from netcut.hardware import CpuProfile, GpuProfile

SHIPPED = list_hardware()
HWMODELS = Path(__file__).resolve().parents[1] / "hwmodels"


def test_shipped_profiles_are_listed():
    # one profile per YAML file in hwmodels/
    assert SHIPPED == sorted(p.stem for p in HWMODELS.glob("*.yaml"))
    assert {"h100-sxm", "xeon-emr-16c", "epyc-milan-2c"} <= set(SHIPPED)
    assert list_hardware("jetson*") == [n for n in SHIPPED if n.startswith("jetson")]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profile_loads(name):
    p = load_hardware(name)
    assert isinstance(p, (GpuProfile, CpuProfile)) and p.name == name
    peak = p.peak_flops("conv", "float32")
    assert isinstance(peak, float) and peak > 0
    bandwidth = p.bandwidth_bytes_per_s()
    assert isinstance(bandwidth, float) and bandwidth > 0
    assert p.default_mode in p.overhead


def test_thread_override_scales_cpu_peak_and_caps_bandwidth():
    full = load_hardware("xeon-emr-16c")
    four = load_hardware("xeon-emr-16c", cores=4)
    eff = full.compute.thread_efficiency  # 0.85 in the shipped file
    assert full.compute.cores == 16 and four.compute.cores == 4
    # effective cores = 1 + (n - 1) * eff: 16 -> 1 + 15 * 0.85 = 13.75, 4 -> 1 + 3 * 0.85 = 3.55
    factor = (1 + 3 * eff) / (1 + 15 * eff)
    assert four.peak_flops("conv", "float32") == pytest.approx(full.peak_flops("conv", "float32") * factor)
    # 134.4 GFLOP/s per core x 3.55 = 477.12 GFLOP/s
    assert four.peak_flops("conv", "float32") == pytest.approx(134.4e9 * 3.55)
    # bandwidth = min(socket, per-core x cores): 16 -> min(358.4, 15 x 16 = 240) = 240 GB/s,
    # 4 -> min(358.4, 15 x 4 = 60) = 60 GB/s
    assert full.bandwidth_bytes_per_s() == pytest.approx(240e9)
    assert four.bandwidth_bytes_per_s() == pytest.approx(60e9)


@pytest.mark.parametrize("cores", [0, 17, -1])
def test_thread_override_out_of_range(cores):
    with pytest.raises(HardwareProfileError, match="xeon-emr-16c"):
        load_hardware("xeon-emr-16c", cores=cores)  # max_cores is 16


def test_thread_override_on_gpu_is_refused():
    with pytest.raises(HardwareProfileError, match="CPU profiles only"):
        load_hardware("h100-sxm", cores=4)


def test_unknown_override_is_refused():
    with pytest.raises(HardwareProfileError, match="unknown override"):
        load_hardware("xeon-emr-16c", turbo=True)


def test_unknown_name_suggests_close_ones():
    with pytest.raises(UnknownHardwareError) as info:
        load_hardware("h100")
    assert "h100-sxm" in str(info.value)
    with pytest.raises(UnknownHardwareError, match="not found"):
        load_hardware("/no/such/dir/profile.yaml")


def test_user_file_loads(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text((HWMODELS / "epyc-milan-2c.yaml").read_text())
    assert load_hardware(path).name == "epyc-milan-2c"
    assert load_hardware(str(path)).compute.cores == 2


def test_max_pool_falls_back_to_pool_then_default(tmp_path):
    """A profile that does not list ``pool_max`` prices max-pooling as ``pool``, and one
    that lists neither as ``default``; a listed ``pool_max`` wins."""
    from netcut.estimate.roofline import profile_vectors
    from netcut.opclasses import OP_CLASSES

    pool, pool_max = OP_CLASSES.index("pool"), OP_CLASSES.index("pool_max")
    data = yaml.safe_load((HWMODELS / "epyc-milan-2c.yaml").read_text())
    data["efficiency"]["compute"].update({"default": 0.3, "pool": 0.01})
    data["efficiency"]["compute"].pop("pool_max", None)
    data["overhead"]["eager"]["dispatch_us"].update({"default": 2.0, "pool": 7.0})
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    v = profile_vectors(load_hardware(path), "float32", "eager")
    assert v.eff_compute[pool_max] == v.eff_compute[pool] == 0.01
    assert v.dispatch_s[pool_max] == v.dispatch_s[pool] == pytest.approx(7e-6)
    data["efficiency"]["compute"]["pool_max"] = 0.002
    path.write_text(yaml.safe_dump(data))
    v = profile_vectors(load_hardware(path), "float32", "eager")
    assert (v.eff_compute[pool_max], v.eff_compute[pool]) == (0.002, 0.01)
    del data["efficiency"]["compute"]["pool"], data["efficiency"]["compute"]["pool_max"]
    path.write_text(yaml.safe_dump(data))
    assert profile_vectors(load_hardware(path), "float32", "eager").eff_compute[pool_max] == 0.3


# ----- broken profiles ------------------------------------------------------------------

BASE = yaml.safe_load((HWMODELS / "epyc-milan-2c.yaml").read_text())


def _mutated(change) -> str:
    data = copy.deepcopy(BASE)
    change(data)
    return yaml.safe_dump(data, sort_keys=False)


def _set(*path_and_value):
    *path, key, value = path_and_value

    def change(data):
        for part in path:
            data = data[part]
        data[key] = value

    return change


def _drop(*path):
    def change(data):
        for part in path[:-1]:
            data = data[part]
        del data[path[-1]]

    return change


BROKEN = {
    # id: (file text, fragments the single error message must contain)
    "invalid_yaml": ("schema_version: 1\nname: [oops\nkind: cpu\n", [":3:5:", "not valid YAML"]),
    "list": ("- a\n- b\n", ["must be a YAML mapping", "list"]),
    "kind_tpu": (_mutated(_set("kind", "tpu")), ["kind", "'gpu' or 'cpu'"]),
    "negative_bandwidth": (_mutated(_set("memory", "bandwidth_gbs", -5)),
                           ["memory.bandwidth_gbs", "-5"]),
    "efficiency_above_1": (_mutated(_set("efficiency", "compute", "conv", 1.5)),
                           ["efficiency.compute.conv", "1.5"]),
    "no_default": (_mutated(_drop("efficiency", "compute", "default")),
                   ["efficiency.compute", "'default'"]),
    "undefined_unit": (_mutated(_set("compute", "use_unit", {"conv": {"float32": "amx"}})),
                       ["use_unit.conv.float32", "'amx'"]),
    "unsourced_number": (_mutated(_drop("sources", "memory.l3_cache_mib")),
                         ["memory.l3_cache_mib", "source"]),
    "unknown_key": (_mutated(_set("colour", "red")), ["colour"]),
    "channel_block_zero": (_mutated(_set("compute", "channel_block", 0)), ["compute.channel_block", "0"]),
    "pool_input_negative": (_mutated(_set("compute", "pool_input_ns_per_core", -1.0)),
                            ["compute.pool_input_ns_per_core", "-1"]),
    "activation_unknown_kind": (_mutated(_set("compute", "activation_ns_per_element_per_core",
                                              {"gelu_fast": 0.3})),
                                ["compute.activation_ns_per_element_per_core", "gelu_fast"]),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_profile(tmp_path, case):
    text, fragments = BROKEN[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    with pytest.raises(HardwareProfileError) as info:
        load_hardware(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert len(message.splitlines()) == 1, message  # one problem, one line
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_yaml_is_loaded_safely(tmp_path, capfd):
    marker = tmp_path / "pwned"
    for i, payload in enumerate([
        '!!python/object/apply:os.system ["echo hi"]\n',
        f'schema_version: 1\nname: !!python/object/apply:os.system ["touch {marker}"]\n',
    ]):
        path = tmp_path / f"evil{i}.yaml"
        path.write_text(payload)
        with pytest.raises(HardwareProfileError, match=str(path)):
            load_hardware(path)
    assert not marker.exists()
    assert "hi" not in capfd.readouterr().out


# ----- docs/hardware-schema.md stays true to the code ------------------------------------

DOC = (Path(__file__).resolve().parents[1] / "docs" / "hardware-schema.md").read_text()


def _yaml_blocks(section: str) -> list[str]:
    body = DOC.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return [block.split("```", 1)[0] for block in body.split("```yaml\n")[1:]]


def test_doc_example_is_a_valid_profile():
    from netcut.hardware import parse_profile

    (example,) = _yaml_blocks("Example")
    profile = parse_profile(example, origin="docs/hardware-schema.md")
    # 38.4 GFLOP/s per core x (1 + 3 x 0.85) = 136.32 GFLOP/s
    assert profile.peak_flops("conv", "float32") == pytest.approx(136.32e9)


def test_doc_defaults_are_what_datasheet_profiles_use():
    gpu_block, cpu_block = (yaml.safe_load(b) for b in _yaml_blocks("Defaults"))
    documented = {"gpu": gpu_block, "cpu": cpu_block}
    checked = 0
    for name in SHIPPED:
        p = load_hardware(name)
        if "#defaults" not in p.sources.get("efficiency", ""):
            continue
        checked += 1
        assert p.efficiency.compute == documented[p.kind]["efficiency"]["compute"], name
        assert p.efficiency.memory == documented[p.kind]["efficiency"]["memory"], name
    assert checked >= 10  # most shipped profiles are datasheet-only


def test_doc_names_every_op_class_and_field():
    from netcut.hardware.schema import (CpuCompute, Efficiency, GpuCompute, GpuProfile, Memory,
                                        ModeOverhead)
    from netcut.opclasses import OP_CLASSES

    for name in OP_CLASSES:
        assert f"`{name}`" in DOC, name
    for model in (GpuProfile, GpuCompute, CpuCompute, Memory, ModeOverhead, Efficiency):
        for field in model.model_fields:
            assert f"`{field}`" in DOC, f"{model.__name__}.{field}"
