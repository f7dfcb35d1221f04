"""bind_submodules: a TRN's layers reached as plain attributes, the module unchanged otherwise."""

from __future__ import annotations

import copy
import pickle

import torch
from torch import nn

from netcut.planner import trim
from netcut.planner.bind import bind_submodules


def _nested() -> nn.Module:
    inner = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    return nn.Sequential(nn.Sequential(inner, nn.BatchNorm2d(4)), nn.Flatten())


def _bound_everywhere(root: nn.Module) -> bool:
    return all(vars(p).get(name) is child for p in root.modules()
               for name, child in p._modules.items() if child is not None)


def test_every_submodule_becomes_an_ordinary_attribute_and_nothing_else_changes():
    model = _nested().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    names = [n for n, _ in model.named_modules()]
    x = torch.randn(2, 3, 8, 8)
    want = model(x)
    assert not _bound_everywhere(model)
    assert bind_submodules(model) is model and _bound_everywhere(model)
    assert [n for n, _ in model.named_modules()] == names
    assert model.state_dict().keys() == before.keys()
    assert torch.equal(model(x), want)


def test_replacing_a_submodule_is_seen_by_the_next_call():
    """fx's code reaches layers by attribute (what the binding speeds up); a layer
    replaced after binding must be the one that runs."""
    graph = bind_submodules(torch.fx.symbolic_trace(_nested().eval()))
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        assert float(graph(x).min()) >= 0  # ReLU, then an untrained BN (the identity in eval)
        setattr(graph.get_submodule("0.0"), "1", nn.Tanh())  # through nn.Module.__setattr__
        want = torch.tanh(graph.get_submodule("0.0.0")(x)).flatten(1)
        assert torch.allclose(graph(x), want, atol=1e-5)
        assert float(graph(x).min()) < 0


def test_a_deleted_submodule_is_dropped_when_bound_again():
    model = bind_submodules(_nested())
    del model[0]._modules["1"]  # what `del` on a container leaves behind
    assert "1" in vars(model[0])
    bind_submodules(model)
    assert "1" not in vars(model[0]) and _bound_everywhere(model)


def test_copies_and_pickles_stay_bound_to_their_own_modules():
    model = bind_submodules(_nested())
    for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert _bound_everywhere(twin)
        assert twin[0][0] is not model[0][0]


def test_trim_returns_a_bound_prefix():
    trn = trim("torchvision:mnasnet0_5", "layers.8.1", 10)
    assert _bound_everywhere(trn.features)
    assert any("." in n for n, _ in trn.features.named_modules())  # the source's paths are kept


def test_a_submodule_set_to_none_is_dropped_when_bound_again():
    model = bind_submodules(_nested())
    model[0][1] = None  # nn.Module keeps the key with None and leaves our entry
    bind_submodules(model)
    assert "1" not in vars(model[0]) and model[0]._modules["1"] is None
