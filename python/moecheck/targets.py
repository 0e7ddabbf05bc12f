"""Targets: the code under test, called through transformers' experts-interface signature.

- ``transformers:<name>``: an experts implementation registered in the installed transformers
  (``grouped_mm``, ``batched_mm``, ``eager`` or a hub kernel registered in
  ALL_EXPERTS_FUNCTIONS), run by the experts module of a real config class (Qwen3MoeConfig →
  Qwen3MoeExperts for SwiGLU, standard layout, no bias; GptOssConfig → GptOssExperts for the
  interleaved clamped activation, transposed layout, biases) with the case's small dimensions
  and ``config._experts_implementation = <name>``: the library's own dispatch and glue code.
  A case holding sentinel ids runs on a module marked expert-parallel (expert_parallel).
- ``callable:<module>:<function>``: a user's function ``(self, hidden_states, top_k_index,
  top_k_weights)`` run on moecheck.experts.Experts. The function may carry
  ``moecheck_capabilities`` (a dict merged into the defaults, e.g. {"dtypes": ["bf16"]}).
- ``ledger:<entry>``: a reconstructed historical bug (moecheck.ledger).
"""

from __future__ import annotations

import importlib
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from . import ledger, poison, transfer
from .experts import Experts
from .protocol import Case, CaseHeader

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}

# (act, layout, bias) combinations the transformers experts modules have.
QWEN_VARIANT = {"act": "swiglu", "layout": "standard", "bias": False}
GPTOSS_VARIANT = {"act": "gptoss", "layout": "transposed", "bias": True}


# Experts modules kept per shape (least recently used dropped first): building one means a
# config and a module from the model class; the weights are tiny, so many can be kept.
MODULE_CACHE = 512


class TargetError(Exception):
    """A target name that does not resolve (a usage error of the worker)."""


@dataclass
class Target:
    name: str
    fn: Callable
    # build(header, dtype, device, ep) → experts module for a case (ep: mark it expert-parallel)
    build: Callable[[CaseHeader, torch.dtype, torch.device, bool], torch.nn.Module]
    capabilities: Dict[str, Any] = field(default_factory=dict)
    _modules: Dict[Tuple, torch.nn.Module] = field(default_factory=dict)
    # each lane thread's pinned transfer buffers (transfer.Staging; shared by the per-lane
    # copies a worker makes with dataclasses.replace: keyed by thread)
    stagings: transfer.Stagings = field(default_factory=transfer.Stagings)

    def module(self, h: CaseHeader, device: torch.device, ep: Optional[bool] = None) -> torch.nn.Module:
        """The experts module for a case's sizes; ep (default: h.ep_world > 1) says whether it
        is presented as an expert-parallel rank (see expert_parallel)."""
        ep = h.ep_world > 1 if ep is None else ep
        key = (h.act, h.layout, h.bias, h.e, h.h, h.i, h.k, h.dtype, ep)
        m = self._modules.pop(key, None)
        if m is None:
            if len(self._modules) >= MODULE_CACHE:
                self._modules.pop(next(iter(self._modules)))  # the least recently used
            m = self.build(h, DTYPES[h.dtype], device, ep)
        self._modules[key] = m  # most recently used last
        return m


def expert_parallel(c: Case) -> bool:
    """Whether a case is an expert-parallel rank's view: EP world > 1, or any sentinel id
    (id E) in top_k_index. transformers produces sentinel ids only under expert parallelism
    (RouterParallel relabels the other ranks' slots), and since #48201 its experts paths
    handle them only when expert parallelism is on; a case with sentinel ids is therefore run
    on a module marked expert-parallel, whatever its EP world says."""
    if c.header.ep_world > 1:
        return True
    ids = c.tensors.get("ids")
    return ids is not None and bool((ids >= c.header.e).any())


def _base_caps(contract: str = "torch") -> Dict[str, Any]:
    return {
        "dtypes": ["bf16", "fp16", "fp32"],
        "variants": [dict(QWEN_VARIANT), dict(GPTOSS_VARIANT)],
        "ep_global_routing": False,
        "align": {},  # dtype → {"h": n, "i": n}: H and I must be multiples of n
        "non_finite": True,
        "poisons": ["zeros"],
        "stages": False,
        "triage": True,
        "faults": [],
        "contract": contract,
    }


def _plain_build(h: CaseHeader, dtype: torch.dtype, device: torch.device, ep: bool = False) -> torch.nn.Module:
    return Experts(h.e, h.h, h.i, act=h.act, transposed=h.layout == "transposed", bias=h.bias,
                   dtype=dtype, device=device)


# --- transformers ------------------------------------------------------------------------

def _make_config(cls: Any, **kw: Any) -> Any:
    """A config of cls with small dimensions; extra attention sizes are dropped if refused."""
    common = dict(num_hidden_layers=1, num_attention_heads=1, num_key_value_heads=1, head_dim=8, vocab_size=8)
    try:
        return cls(**kw, **common)
    except (TypeError, ValueError):
        return cls(**kw)


def _experts_class(mod: Any, name: str) -> Any:
    cls = getattr(mod, name, None)
    if cls is None:
        found = [c for n, c in vars(mod).items() if n.endswith("Experts") and isinstance(c, type)]
        if not found:
            raise TargetError(f"{mod.__name__} has no {name} (nor any *Experts class)")
        cls = found[0]
    return cls


def _transformers_build(impl: str) -> Callable[[CaseHeader, torch.dtype, torch.device, bool], torch.nn.Module]:
    def build(h: CaseHeader, dtype: torch.dtype, device: torch.device, ep: bool = False) -> torch.nn.Module:
        if h.act == "swiglu":
            from transformers import Qwen3MoeConfig
            from transformers.models.qwen3_moe import modeling_qwen3_moe as mm

            cfg = _make_config(Qwen3MoeConfig, hidden_size=h.h, moe_intermediate_size=h.i, intermediate_size=h.i,
                               num_experts=h.e, num_experts_per_tok=h.k, hidden_act="silu")
            cls = _experts_class(mm, "Qwen3MoeExperts")
        else:
            from transformers import GptOssConfig
            from transformers.models.gpt_oss import modeling_gpt_oss as mm

            cfg = _make_config(GptOssConfig, hidden_size=h.h, intermediate_size=h.i, num_local_experts=h.e,
                               num_experts_per_tok=h.k)
            cls = _experts_class(mm, "GptOssExperts")
        _set_impl(cfg, impl)
        if ep:
            _mark_expert_parallel(cfg)
        if device.type != "cpu" and hasattr(torch, "get_default_device"):
            with device:  # parameters allocated on the device (no host allocation and copy)
                m = cls(cfg)
        else:
            m = cls(cfg)
        return m.to(device=device, dtype=dtype)

    return build


def _mark_expert_parallel(cfg: Any) -> bool:
    """Presents the config as one expert-parallel rank, for transformers versions that mask
    sentinel slots only when expert parallelism is on (#48201 reads ``enable_expert_parallel``
    of the distributed config): the case's ids carry the sentinel E exactly as an EP router
    produces them. Best effort: returns whether a DistributedConfig was attached."""
    try:
        from transformers.distributed.configuration_utils import DistributedConfig
    except Exception:
        return False
    try:
        cfg.distributed_config = DistributedConfig(enable_expert_parallel=True)
        return True
    except Exception:
        return False


def _set_impl(cfg: Any, impl: str) -> None:
    try:
        cfg._experts_implementation = impl
    except Exception:  # some versions route it through a setter with validation
        setattr(cfg, "experts_implementation", impl)
    got = getattr(cfg, "_experts_implementation", None)
    if got != impl:
        raise TargetError(f"could not select experts implementation {impl!r} on {type(cfg).__name__} (it reads {got!r})")


def registered_experts() -> List[str]:
    """Experts implementations the installed transformers knows (eager + the registry)."""
    from transformers.integrations import moe as tmoe

    names = ["eager"]
    reg = tmoe.ALL_EXPERTS_FUNCTIONS
    try:
        names += [n for n in reg.valid_keys()]  # GeneralInterface
    except AttributeError:
        names += list(getattr(reg, "_global_mapping", {}).keys())
    return sorted(set(names))


def _transformers_target(impl: str, device: torch.device) -> Target:
    try:
        import transformers  # noqa: F401
    except ImportError as e:
        raise TargetError(f"transformers:{impl} needs transformers installed ({e})") from e
    known = registered_experts()
    if impl not in known:
        raise TargetError(f"transformers has no experts implementation {impl!r} (registered: {', '.join(known)})")
    caps = _base_caps()
    if impl == "grouped_mm":
        # torch._grouped_mm needs 16-byte aligned row strides.
        caps["align"] = {"bf16": {"h": 8, "i": 8}, "fp16": {"h": 8, "i": 8}, "fp32": {"h": 4, "i": 4}}

    def call(self, x, ids, w):
        return self(x, ids, w)  # the module's forward: use_experts_implementation's dispatch

    return Target(f"transformers:{impl}", call, _transformers_build(impl), caps)


# --- callable and ledger ----------------------------------------------------------------

def _callable_target(spec: str) -> Target:
    mod, sep, fn_name = spec.rpartition(":")
    if not sep or not mod or not fn_name:
        raise TargetError(f"callable target {spec!r}: want callable:<module>:<function>")
    try:
        m = importlib.import_module(mod)
    except Exception as e:
        raise TargetError(f"callable:{spec}: import {mod!r} failed: {e}\n{traceback.format_exc()}") from e
    fn = getattr(m, fn_name, None)
    if not callable(fn):
        raise TargetError(f"callable:{spec}: {mod!r} has no function {fn_name!r}")
    caps = _base_caps()
    extra = getattr(fn, "moecheck_capabilities", None)
    if isinstance(extra, dict):
        caps.update(extra)
    return Target(f"callable:{spec}", fn, _plain_build, caps)


def _ledger_target(entry: str) -> Target:
    fn = ledger.ENTRIES.get(entry)
    if fn is None:
        raise TargetError(f"ledger has no entry {entry!r} (entries: {', '.join(sorted(ledger.ENTRIES))})")
    return Target(f"ledger:{entry}", fn, _plain_build, _base_caps())


def resolve(name: str, device: torch.device) -> Target:
    """The target a name describes (TargetError names the problem)."""
    kind, sep, rest = name.partition(":")
    if not sep or not rest:
        raise TargetError(f"target {name!r}: want transformers:<impl>, callable:<module>:<function> or ledger:<entry>")
    if kind == "transformers":
        t = _transformers_target(rest, device)
    elif kind == "callable":
        t = _callable_target(rest)
    elif kind == "ledger":
        t = _ledger_target(rest)
    else:
        raise TargetError(f"target kind {kind!r}: want transformers, callable or ledger")
    return t


# --- running one case --------------------------------------------------------------------

def load_module(m: torch.nn.Module, c: Case, device: torch.device,
                src: Optional[Dict[str, torch.Tensor]] = None) -> None:
    """Copies the case's weights (and biases) into the module's parameters, clearing grads
    (src: the same tensors already on the device, else the case's own)."""
    t = src if src is not None else c.tensors
    pairs = [("gate_up_proj", "w1"), ("down_proj", "w2")]
    if c.header.bias:
        pairs += [("gate_up_proj_bias", "b1"), ("down_proj_bias", "b2")]
    with torch.no_grad():
        for attr, key in pairs:
            p = getattr(m, attr, None)
            if p is None:
                raise TargetError(f"the experts module has no {attr} (case with bias={c.header.bias})")
            if tuple(p.shape) != tuple(t[key].shape):
                raise TargetError(f"{attr} has shape {tuple(p.shape)}, the case's {key} {tuple(t[key].shape)} "
                                  f"(layout {c.header.layout})")
            p.copy_(t[key])  # copy_ moves it to the device
    for p in m.parameters():
        p.grad = None


@dataclass
class Prepared:
    """A case's module and inputs on the device, ready for forward (prepare)."""
    module: torch.nn.Module
    x: torch.Tensor
    ids: torch.Tensor
    rw: torch.Tensor
    dy: torch.Tensor
    staging: Optional[transfer.Staging] = None  # on CUDA: the lane's transfer buffers (collect)


def prepare(target: Target, c: Case, device: torch.device) -> Prepared:
    """Setup of one run: the (cached) experts module of the case's shape loaded with its
    weights, and the inputs on the device (x and rw as leaves that require grad)."""
    m = target.module(c.header, device, expert_parallel(c))
    if device.type == "cuda" and target.stagings.pinned:
        # every input in one asynchronous copy (transfer.Staging: pageable copies one by one
        # each waited for the stream)
        st = target.stagings.get(device)
        names = [k for k in ("w1", "w2", "b1", "b2", "x", "rw", "ids", "dy") if k in c.tensors]
        on = dict(zip(names, st.upload([c.tensors[k] for k in names])))
        load_module(m, c, device, on)
        x, rw = on["x"].detach().requires_grad_(True), on["rw"].detach().requires_grad_(True)
        return Prepared(m, x, on["ids"].to(torch.int64), rw, on["dy"], st)
    load_module(m, c, device)
    t = c.tensors
    x, rw = t["x"].to(device), t["rw"].to(device)
    if x is t["x"]:  # on the CPU .to is the decoded tensor itself: the leaves get their own
        x, rw = x.clone(), rw.clone()
    x, rw = x.detach().requires_grad_(True), rw.detach().requires_grad_(True)
    ids = t["ids"].to(device=device, dtype=torch.int64)
    return Prepared(m, x, ids, rw, t["dy"].to(device))


def forward(target: Target, p: Prepared, h: CaseHeader) -> torch.Tensor:
    """The target's forward (call it under the poison policy)."""
    y = target.fn(p.module, p.x, p.ids, p.rw)
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != (h.t, h.h):
        raise TypeError(f"the target returned {type(y).__name__} of shape "
                        f"{tuple(getattr(y, 'shape', ()))}, want a tensor of shape ({h.t}, {h.h})")
    return y


def backward(p: Prepared, y: torch.Tensor) -> None:
    """y.backward(dy) (call it under the poison policy). An output that depends on no input
    (e.g. every slot a sentinel) has no graph: every gradient is then 0."""
    if y.requires_grad:
        y.backward(p.dy.to(y.dtype))


def collect(p: Prepared, y: torch.Tensor, h: CaseHeader, sync_device: bool = True) -> Dict[str, torch.Tensor]:
    """The results in the case dtype on the CPU: y, dx, dw1, dw2, drw (and db1, db2 with
    bias). On a device they are packed into one buffer and copied back with one transfer
    (one synchronisation instead of one per tensor). sync_device: wait for the whole device
    before the copy (a worker without lanes: a user's kernel may run on streams of its own);
    False waits for the current stream only (a worker's lane: the other lanes' cases run on
    the device meanwhile; work of the target on other streams must then be ordered with the
    current stream, as torch requires of any multi-stream code)."""
    dt = DTYPES[h.dtype]
    m = p.module

    def grad(q: Optional[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
        # None: autograd found no path from the output (a zero gradient), not a missing value.
        g = q.grad if q is not None else None
        return (g if g is not None else torch.zeros_like(like)).detach()

    out = {"y": y.detach(), "dx": grad(p.x, p.x), "dw1": grad(m.gate_up_proj, m.gate_up_proj),
           "dw2": grad(m.down_proj, m.down_proj), "drw": grad(p.rw, p.rw)}
    if h.bias:
        out["db1"] = grad(m.gate_up_proj_bias, m.gate_up_proj_bias)
        out["db2"] = grad(m.down_proj_bias, m.down_proj_bias)
    if p.x.device.type == "cpu":
        return {k: v.to(dt) for k, v in out.items()}
    if p.x.device.type == "cuda" and sync_device:
        torch.cuda.synchronize(p.x.device)  # a fault surfaces here, inside the run's error handling
    flat = torch.cat([v.reshape(-1).to(dt) for v in out.values()])
    if p.staging is not None:
        flat = p.staging.download(flat)  # one wait on the current stream (a fault raises here)
    else:
        flat = flat.to("cpu")
    res, o = {}, 0
    for k, v in out.items():
        n = v.numel()
        res[k] = flat[o:o + n].view(v.shape)
        o += n
    return res


def run_case(target: Target, c: Case, device: torch.device, method: str,
             sync_device: bool = True) -> Dict[str, torch.Tensor]:
    """Forward and backward of one case under the case's poison policy; the results in the
    case dtype (CPU): y, dx, dw1, dw2, drw (and db1, db2 with bias). sync_device: see collect."""
    h = c.header
    p = prepare(target, c, device)
    with poison.poisoned(method, c.options.poison, DTYPES[h.dtype]):
        y = forward(target, p, h)
        backward(p, y)
    return collect(p, y, h, sync_device)
