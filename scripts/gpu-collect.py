#!/usr/bin/env python3
"""Measure irene trees node by node on an NVIDIA GPU, with NVML energy: irene's GPU path.

irene's own executor (src/irene/measure) runs on this project's CPU libtorch; on a GPU machine that has
PyTorch with CUDA and Hugging Face transformers but none of irene's build dependencies, this runner
measures the same trees: it reads irene JSONL trees (`irene tree ... --format jsonl`, see
scripts/gpu-trees.sh), builds each model with transformers from its config.json (random weights, no
download), and runs every DISTINCT node of every tree (the model, every module, every ML primitive;
layers identical to layer 0 share its measurement) in isolation, with the inputs that node receives in
a real forward pass of the tree's configuration:

  * prefill trees: one forward of batch x seq tokens, no cache;
  * decode trees: one new token per sequence attending to `past` cached positions, through a
    transformers StaticCache of past + 1 positions filled with random keys and values (each call
    writes the same slot, so repeated calls see the same shapes, as a serving engine's paged cache).

Energy comes from NVML's total-energy counter (nvmlDeviceGetTotalEnergyConsumption, millijoules,
the GPU board only). The counter advances in steps (its update period is measured at start and
written to the provenance); each node runs in chunks of calls, synchronised after each chunk, and
its window is taken between two observed counter steps, so the window's edges fall within one chunk
(a few milliseconds) of the counter's own updates. Per node it writes, per forward pass of the node:

  ground_truth_energy   joules (GPU board, idle/static power included, as serving measurements count)
  energy_above_idle     joules above the idle power measured at start
  times_mean            seconds (wall clock, host launch overhead included: eager PyTorch)
  gpu_power_w           mean board power over the window, watts
  gpu_clk, gpu_mem_clk  SM and memory clocks at the end of the window, MHz
  passes, window_s      calls in the window and its length, seconds
  energy_spread         relative spread of repeated windows (nodes measured more than once)

and cuda_graph (1: replayed from a CUDA graph, 0: eager where capture failed), graph_calls, and on
roots eager_energy / eager_times_mean (the same step run eagerly, host launch overhead included).

The root and the model are captured with transformers' mask builders returning the mask the layers
received in the eager forward (mask_pinned = 1; --no-pinned-masks turns it off). The collection of
2026-12-04 (data/gpu-h200) predates that: captured whole, its large-cache decode steps took the
masked attention path, and `import` keeps those roots out of the ground truth. The pinning has not
yet run on a GPU; `import`'s level check says whether it closes the gap.

Output: irene JSONL (the input trees, annotated), readable by `irene evaluate`, `irene predict` etc.,
with the GPU, driver, CUDA, clocks, power limit and method in each tree's provenance. Finished trees
are appended as they complete, so an interrupted run keeps them; a rerun skips trees already in the
output. A deadline (--deadline-s) stops it cleanly between nodes.

The functions above the `--- torch ---` line use only the standard library; tests/python/
test_gpu_collect.py checks them where no GPU is.
"""
import argparse
import copy
import json
import math
import os
import re
import sys
import time
import traceback

# --------------------------------------------------------------------------------------------------
# Tree handling (standard library only)


def tree_key(record):
    """The identity of a tree in a collection: model, phase, batch, seq, past, dtype, attention."""
    return "|".join(
        str(x)
        for x in (
            record.get("model_name"),
            record.get("phase", "prefill"),
            record.get("batch_size"),
            record.get("seq_len"),
            record.get("past_len", 0),
            record.get("dtype", "float32"),
            record.get("attention", "eager"),
        )
    )


def walk(node, parent=None):
    """Pre-order (node, parent) pairs of a frontend_tree, without recursion."""
    stack = [(node, parent)]
    while stack:
        n, p = stack.pop()
        yield n, p
        for c in reversed(n.get("child_nodes_obj", [])):
            stack.append((c, n))


def is_module_like(node):
    return node.get("type") in ("model", "module")


def signature(record, node):
    """Nodes with equal signatures do the same computation and share one measurement.

    An ML primitive is fixed by its class and shape attributes (a Linear of a decode step does not
    depend on the cache length); a module or the model also depends on the whole configuration of
    its tree (its attributes do not name the cache length its attention reads)."""
    attrs = json.dumps(node.get("attrs", {}), sort_keys=True)
    base = f"{record.get('model_name')}|{record.get('dtype')}|{node.get('instance_type')}|{attrs}"
    if is_module_like(node):
        return base + "|" + tree_key(record)
    return base


def layer_index(scope):
    m = re.search(r"\.layers\.(\d+)(\.|$)", scope or "")
    return int(m.group(1)) if m else None


def plan(record):
    """The distinct nodes of a tree to measure, in order: (signature, node) with the first node of
    each signature in pre-order (layer 0 before the others)."""
    seen = {}
    for node, _ in walk(record["frontend_tree"]):
        sig = signature(record, node)
        if sig not in seen:
            seen[sig] = node
    return list(seen.items())


def annotate(record, measured):
    """A copy of `record` whose nodes carry the measurement of their signature, where measured."""
    out = copy.deepcopy(record)
    for node, _ in walk(out["frontend_tree"]):
        m = measured.get(signature(out, node))
        if not m:
            continue
        for k, v in m.items():
            if isinstance(v, (int, float)) and math.isfinite(v):
                node["ground_truth_energy" if k == "energy_j" else k] = v
    return out


def resolve_config(record, repo_root):
    """The config.json a tree was built from, found from the repository root."""
    prov = record.get("provenance", {})
    name = record.get("model_name", "")
    candidates = []
    if prov.get("config"):
        c = prov["config"]
        candidates.append(c)
        # An absolute path of another checkout: take the part from the last known top folder.
        for top in ("/models/", "/data/"):
            i = c.rfind(top)
            if i >= 0:
                candidates.append(os.path.join(repo_root, c[i + 1 :]))
    candidates += [os.path.join(repo_root, "models", name, "config.json"), os.path.join(repo_root, name)]
    for c in candidates:
        if c and os.path.isfile(c):
            return c
    raise FileNotFoundError(f"no config.json found for model '{name}' (tried {', '.join(candidates)})")


def done_keys(path):
    keys = set()
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    keys.add(tree_key(json.loads(line)))
    return keys


# The committed form of a collection: one CSV row per measured node of layer 0 and outside the
# layers, per tree (data/gpu-h200/nodes.csv), and the provenance of each model's measurement
# (provenance.json); `import` puts them back on the trees scripts/gpu-trees.sh builds, every layer
# taking layer 0's row (the layers are identical).

KEY_FIELDS = ["model_name", "phase", "batch_size", "seq_len", "past_len", "scope", "class"]
MEASURED_FIELDS = [
    "ground_truth_energy", "energy_above_idle", "times_mean", "gpu_power_w", "gpu_clk", "gpu_mem_clk",
    "passes", "window_s", "energy_spread", "cuda_graph", "graph_calls", "eager_energy", "eager_times_mean",
    "mask_pinned", "sdpa_gqa", "sdpa_masked",
]


def canonical_scope(scope):
    """The scope of the same node in layer 0: model.layers.5.mlp -> model.layers.0.mlp."""
    return re.sub(r"\.layers\.\d+(?=\.|$)", ".layers.0", scope or "")


def row_key(record, scope, cls):
    return (
        str(record.get("model_name")),
        str(record.get("phase", "prefill")),
        str(int(record.get("batch_size"))),
        str(int(record.get("seq_len"))),
        str(int(record.get("past_len", 0))),
        canonical_scope(scope),
        str(cls),
    )


def export_rows(records):
    """CSV rows (dicts) of the measured nodes of layer 0 and outside the layers, per tree, and the
    provenance per model (without the per-tree 'config' path and 'complete' flag)."""
    rows, prov, seen = [], {}, set()
    for rec in records:
        p = {k: v for k, v in rec.get("provenance", {}).items() if k not in ("config", "complete", "source")}
        prov.setdefault(rec["model_name"], p)
        for node, _ in walk(rec["frontend_tree"]):
            if "ground_truth_energy" not in node:
                continue
            key = row_key(rec, node.get("scope", ""), node.get("instance_type"))
            if key in seen or canonical_scope(node.get("scope", "")) != (node.get("scope") or ""):
                continue
            seen.add(key)
            row = dict(zip(KEY_FIELDS, key))
            for f in MEASURED_FIELDS:
                v = node.get(f)
                row[f] = "" if v is None else repr(float(v))
            rows.append(row)
    return rows, prov


# A model node measured above this multiple of its children's sum ran another attention path
# than its layers (see data/gpu-h200/README.md: transformers materialises the attention mask while
# a CUDA graph is captured, repeats the key/value heads and uses the masked SDPA kernel, where the
# layers, called with the inputs of an eager forward, do not). Its own operations (rotary tables,
# the mask) stay below 1.25x on every tree where the paths agree.
LEVEL_TOLERANCE = 1.4


def check_levels(rec):
    """Move the root's and the model's energies out of the ground truth where the model is more than
    LEVEL_TOLERANCE times the sum of its children; returns that ratio."""
    root = rec["frontend_tree"]
    model = next((c for c in root.get("child_nodes_obj", []) if c.get("scope") == "model"), None)
    if model is None or "ground_truth_energy" not in model:
        return None
    kids = [c.get("ground_truth_energy") for c in model.get("child_nodes_obj", [])]
    if not kids or any(k is None for k in kids) or sum(kids) <= 0:
        return None
    ratio = model["ground_truth_energy"] / sum(kids)
    if ratio > LEVEL_TOLERANCE:
        for node in (root, model):
            for f in ("ground_truth_energy", "times_mean", "energy_above_idle"):
                if f in node:
                    node["capture_path_" + ("energy" if f == "ground_truth_energy" else f)] = node.pop(f)
        rec.setdefault("provenance", {})["levels"] = (
            f"the model measured {ratio:.2f}x its children: root and model ran another attention path than the "
            "layers; their energies are kept as capture_path_energy, not as ground truth"
        )
    return ratio


def import_rows(records, rows, prov):
    """The trees with every node's measurement from `rows` (by tree, layer-0 scope and class) and
    each tree's provenance, levels checked (check_levels); counts of nodes measured and not, and
    the keys of the trees whose root and model were moved out of the ground truth."""
    table = {tuple(r[k] for k in KEY_FIELDS): r for r in rows}
    out, found, missing, moved = [], 0, 0, []
    for rec in records:
        rec = copy.deepcopy(rec)
        for node, _ in walk(rec["frontend_tree"]):
            r = table.get(row_key(rec, node.get("scope", ""), node.get("instance_type")))
            if r is None:
                missing += 1
                continue
            found += 1
            for f in MEASURED_FIELDS:
                if r.get(f, "") != "":
                    node[f] = float(r[f])
        rec.setdefault("provenance", {}).update(prov.get(rec["model_name"], {}))
        ratio = check_levels(rec)
        if ratio is not None and ratio > LEVEL_TOLERANCE:
            moved.append(tree_key(rec))
        out.append(rec)
    return out, found, missing, moved


# --- torch ----------------------------------------------------------------------------------------


class Nvml:
    """NVML energy, power, clocks and identity of GPU 0."""

    def __init__(self):
        import pynvml

        self.n = pynvml
        pynvml.nvmlInit()
        self.h = pynvml.nvmlDeviceGetHandleByIndex(0)
        try:
            pynvml.nvmlDeviceGetTotalEnergyConsumption(self.h)
            self.has_energy = True
        except Exception:
            self.has_energy = False

    def energy_mj(self):
        return self.n.nvmlDeviceGetTotalEnergyConsumption(self.h)

    def clocks(self):
        n = self.n
        try:
            return n.nvmlDeviceGetClockInfo(self.h, n.NVML_CLOCK_SM), n.nvmlDeviceGetClockInfo(self.h, n.NVML_CLOCK_MEM)
        except Exception:
            return float("nan"), float("nan")

    def identity(self):
        n = self.n
        out = {}

        def put(key, fn):
            try:
                v = fn()
                out[key] = v.decode() if isinstance(v, bytes) else str(v)
            except Exception as e:  # noqa: BLE001 (a field NVML does not give is left out, with why)
                out[key] = f"unavailable ({type(e).__name__})"

        put("gpu", lambda: n.nvmlDeviceGetName(self.h))
        put("driver", lambda: n.nvmlSystemGetDriverVersion())
        put("cuda_driver", lambda: n.nvmlSystemGetCudaDriverVersion_v2())
        put("power_limit_w", lambda: n.nvmlDeviceGetPowerManagementLimit(self.h) / 1000.0)
        put("max_sm_clock_mhz", lambda: n.nvmlDeviceGetMaxClockInfo(self.h, n.NVML_CLOCK_SM))
        put("max_mem_clock_mhz", lambda: n.nvmlDeviceGetMaxClockInfo(self.h, n.NVML_CLOCK_MEM))
        put("memory_mib", lambda: n.nvmlDeviceGetMemoryInfo(self.h).total // (1 << 20))
        put("temperature_c", lambda: n.nvmlDeviceGetTemperature(self.h, n.NVML_TEMPERATURE_GPU))
        return out


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


class Runner:
    def __init__(self, args):
        import torch

        self.torch = torch
        self.args = args
        self.nvml = Nvml()
        if not self.nvml.has_energy:
            raise SystemExit("gpu-collect: error: NVML gives no total-energy counter on this GPU")
        self.dev = torch.device("cuda")
        torch.manual_seed(0)
        self.t_start = time.perf_counter()

    # ---------------------------------------------------------------- the counter and the machine
    def sync(self):
        self.torch.cuda.synchronize()

    def burn(self, seconds):
        """Matrix products for `seconds`, to bring clocks and temperature to a working state."""
        t = self.torch
        a = t.randn(8192, 8192, device=self.dev, dtype=t.bfloat16)
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            for _ in range(8):
                a @ a
            self.sync()

    def counter_period(self, seconds=1.5):
        """The energy counter's update period under load: median time between observed changes."""
        t = self.torch
        a = t.randn(8192, 8192, device=self.dev, dtype=t.bfloat16)
        changes, last = [], self.nvml.energy_mj()
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            for _ in range(4):
                a @ a
            while not t.cuda.current_stream().query():
                e = self.nvml.energy_mj()
                if e != last:
                    changes.append(time.perf_counter())
                    last = e
        self.sync()
        d = sorted(b - a for a, b in zip(changes, changes[1:]))
        return (d[len(d) // 2] if d else float("nan")), len(changes)

    def idle_power(self, seconds=1.0):
        self.sync()
        time.sleep(0.2)
        e0, t0 = self.nvml.energy_mj(), time.perf_counter()
        time.sleep(seconds)
        e1, t1 = self.nvml.energy_mj(), time.perf_counter()
        return (e1 - e0) / 1000.0 / (t1 - t0)

    # ---------------------------------------------------------------- one node
    def window(self, fn, min_s, max_s, chunk_s=0.002):
        """Energy and time per call of fn over a window between two counter steps."""
        fn()
        self.sync()
        t0 = time.perf_counter()
        for _ in range(3):
            fn()
        self.sync()
        per_call = max((time.perf_counter() - t0) / 3, 1e-7)
        chunk = max(1, int(chunk_s / per_call))
        target = min(max_s, max(min_s, 30 * per_call))
        hard_end = time.perf_counter() + 3 * target + 2.0
        e_prev, n, start = self.nvml.energy_mj(), 0, None
        while True:
            for _ in range(chunk):
                fn()
            self.sync()
            n += chunk
            e, t = self.nvml.energy_mj(), time.perf_counter()
            if e != e_prev:
                if start is None:
                    start = (e, t, n)
                elif t - start[1] >= target:
                    break
            e_prev = e
            if t > hard_end:
                raise RuntimeError("the energy counter did not advance within the window")
        e0, ta, n0 = start
        calls = n - n0
        joules = (e - e0) / 1000.0
        sm, mem = self.nvml.clocks()
        return {
            "energy_j": joules / calls,
            "times_mean": (t - ta) / calls,
            "gpu_power_w": joules / (t - ta),
            "gpu_clk": float(sm),
            "gpu_mem_clk": float(mem),
            "passes": float(calls),
            "window_s": t - ta,
        }

    def measure(self, fn, repeats, per_call=1):
        """Energy and time per call of a node run `per_call` times by each fn()."""
        runs = [self.window(fn, self.args.window_s, self.args.max_window_s) for _ in range(repeats)]
        m = dict(runs[0])
        if repeats > 1:
            es = [r["energy_j"] for r in runs]
            m["energy_j"] = sum(es) / len(es)
            m["times_mean"] = sum(r["times_mean"] for r in runs) / len(runs)
            m["energy_spread"] = (max(es) - min(es)) / m["energy_j"]
        m["energy_j"] /= per_call
        m["times_mean"] /= per_call
        m["passes"] *= per_call
        m["energy_above_idle"] = m["energy_j"] - self.idle_w * m["times_mean"]
        return m

    def graph(self, call, reset, n, context=None):
        """A CUDA graph of n calls (reset, host-side only, after each); `context` (a context manager
        factory) is active while Python runs the calls, i.e. while they are captured."""
        import contextlib

        t = self.torch
        s = t.cuda.Stream()
        s.wait_stream(t.cuda.current_stream())
        with context() if context else contextlib.nullcontext():
            with t.cuda.stream(s):
                for _ in range(3):
                    call()
                    reset()
            t.cuda.current_stream().wait_stream(s)
            g = t.cuda.CUDAGraph()
            with t.cuda.graph(g):
                for _ in range(n):
                    call()
                    reset()
        return g

    def pinned_masks(self, mask):
        """A context in which transformers' mask builders return `mask` (the one the layers received in
        the eager forward). Captured whole, a model otherwise builds its attention mask as it does under
        tracing and takes the masked attention path (key/value heads repeated, the masked SDPA kernel)
        where its layers, run with the eager forward's arguments, do not (data/gpu-h200/README.md)."""
        import contextlib

        @contextlib.contextmanager
        def ctx():
            saved = []
            for name, module in list(sys.modules.items()):
                if not name.startswith("transformers.models.") or module is None:
                    continue
                for fn in ("create_causal_mask", "create_sliding_window_causal_mask"):
                    if hasattr(module, fn):
                        saved.append((module, fn, getattr(module, fn)))
                        setattr(module, fn, lambda *a, **k: mask)
            try:
                yield
            finally:
                for module, fn, f in saved:
                    setattr(module, fn, f)

        return ctx

    def measure_node(self, call, reset, repeats, context=None):
        """The node's GPU work replayed from a CUDA graph (no host launch overhead, as serving engines
        run decode steps); eager PyTorch where capture fails. Returns the measurement with cuda_graph
        1 or 0."""
        def eager():
            call()
            reset()

        if self.args.graphs:
            try:
                g1 = self.graph(call, reset, 1, context)
                g1.replay()
                self.sync()
                t0 = time.perf_counter()
                for _ in range(5):
                    g1.replay()
                self.sync()
                one = max((time.perf_counter() - t0) / 5, 1e-6)
                n = max(1, min(256, math.ceil(self.args.graph_s / one)))
                g = g1 if n == 1 else self.graph(call, reset, n, context)
                m = self.measure(g.replay, repeats, per_call=n)
                m["cuda_graph"] = 1.0
                m["graph_calls"] = float(n)
                del g, g1
                return m
            except Exception as e:  # noqa: BLE001 (capture can fail where a node syncs with the host)
                self.sync()
                log(f"    (no CUDA graph: {type(e).__name__}: {str(e)[:160]}; eager)")
        m = self.measure(eager, repeats)
        m["cuda_graph"] = 0.0
        return m

    # ---------------------------------------------------------------- one model
    def load(self, config_path):
        import transformers

        t = self.torch
        # from_pretrained reads a folder's config.json: give it one holding this file.
        import shutil
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            shutil.copyfile(config_path, os.path.join(d, "config.json"))
            cfg = transformers.AutoConfig.from_pretrained(d)
        with t.device(self.dev):
            try:
                model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=t.bfloat16, attn_implementation="sdpa")
            except TypeError:
                model = transformers.AutoModelForCausalLM.from_config(
                    cfg, torch_dtype=t.bfloat16, attn_implementation="sdpa"
                )
        if next(model.parameters()).dtype != t.bfloat16:
            model = model.to(dtype=t.bfloat16)
        model = model.to(device=self.dev).eval()
        return cfg, model

    def inputs(self, cfg, model, record):
        """Keyword arguments of the root's forward for this tree and the host-side reset after a call.

        Decode: a transformers DynamicCache holding `past` random keys and values per layer; each call
        appends the new token's (transformers' own decode path: torch.cat of the layer's cache) and the
        reset crops it back, so every call sees the same shapes."""
        import transformers

        t = self.torch
        b, s = int(record["batch_size"]), int(record["seq_len"])
        vocab = int(cfg.vocab_size)
        if record.get("phase", "prefill") != "decode":
            ids = t.randint(0, vocab, (b, s), device=self.dev)
            return {"input_ids": ids, "use_cache": False}, lambda: None
        past = int(record.get("past_len", 0))
        heads = int(cfg.num_attention_heads)
        kv = int(getattr(cfg, "num_key_value_heads", None) or heads)
        hd = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // heads)
        cache = transformers.DynamicCache()
        for layer in range(int(cfg.num_hidden_layers)):
            k = t.randn(b, kv, past, hd, device=self.dev, dtype=t.bfloat16)
            cache.update(k, t.randn_like(k), layer)
        pos = t.full((1,), past, device=self.dev, dtype=t.long)
        kw = {
            "input_ids": t.randint(0, vocab, (b, 1), device=self.dev),
            "past_key_values": cache,
            "cache_position": pos,
            "position_ids": pos.view(1, 1).expand(b, 1),
            "use_cache": True,
        }
        return kw, lambda: cache.crop(past)

    def capture(self, model, kw, reset, wanted_scopes):
        """One forward; the (args, kwargs) each wanted module and SDPA call received."""
        t = self.torch
        import torch.nn.functional as F

        got, handles = {}, []
        try:  # the first decoder layer's arguments give the mask the eager forward built
            model.get_submodule("model.layers.0")
            wanted_scopes = set(wanted_scopes) | {"model.layers.0"}
        except AttributeError:
            pass
        for scope in wanted_scopes:
            if scope == "":
                continue
            mod = model.get_submodule(scope)

            def hook(m, args, kwargs, scope=scope):
                if scope not in got:
                    got[scope] = (args, dict(kwargs))

            handles.append(mod.register_forward_pre_hook(hook, with_kwargs=True))
        sdpa_calls, orig = [], F.scaled_dot_product_attention

        def spy(*a, **k):
            sdpa_calls.append((a, k))
            return orig(*a, **k)

        F.scaled_dot_product_attention = spy
        try:
            with t.no_grad():
                model(**kw)
            reset()
        finally:
            F.scaled_dot_product_attention = orig
            for h in handles:
                h.remove()
        return got, sdpa_calls, orig

    def sdpa_inputs(self, attrs):
        """Query (batch, heads, m, d) and keys/values (batch, heads, n, d) of an irene SDPA node."""
        t = self.torch
        b, h, m, n, d = (int(attrs[k]) for k in ("batch", "heads", "m", "n", "d"))
        q = t.randn(b, h, m, d, device=self.dev, dtype=t.bfloat16)
        kv = t.randn(2, b, h, n, d, device=self.dev, dtype=t.bfloat16)
        return (q, kv[0], kv[1]), {"is_causal": bool(attrs.get("causal", 0)) and m > 1}

    def run_tree(self, cfg, model, record, measured, deadline):
        t = self.torch
        kw, reset = self.inputs(cfg, model, record)
        todo = [(sig, n) for sig, n in plan(record) if sig not in measured]
        scopes = {n.get("scope", "") for _, n in todo if n.get("instance_type") != "ScaledDotProductAttention"}
        got, sdpa_calls, sdpa = self.capture(model, kw, reset, scopes)
        decode = record.get("phase") == "decode"
        for sig, node in todo:
            if time.perf_counter() > deadline:
                log("  deadline reached: the rest of this tree is left unmeasured")
                return False
            scope, cls = node.get("scope", ""), node.get("instance_type")
            node_reset = lambda: None  # noqa: E731
            li = 0
            if cls == "ScaledDotProductAttention":
                li = layer_index(scope) or 0
                if li < len(sdpa_calls):
                    a, k = sdpa_calls[li]
                else:  # transformers did not call it through torch.nn.functional: shapes from the tree
                    a, k = self.sdpa_inputs(node.get("attrs", {}))
                    log(f"  {scope}: SDPA inputs made from the tree's shapes (call not seen)")
                call = lambda a=a, k=k: sdpa(*a, **k)  # noqa: E731
            elif scope == "":
                call, node_reset = (lambda kw=kw: model(**kw)), reset
            else:
                mod = model.get_submodule(scope)
                a, k = got[scope]
                call = lambda mod=mod, a=a, k=k: mod(*a, **k)  # noqa: E731
                if decode and "past_key_values" in k:
                    node_reset = reset
            root = scope == ""
            context = None
            if scope in ("", "model") and "model.layers.0" in got and self.args.pin_masks:
                context = self.pinned_masks(got["model.layers.0"][1].get("attention_mask"))
            try:
                with t.no_grad():
                    m = self.measure_node(call, node_reset, 3 if root else 1, context)
                    if context is not None:
                        m["mask_pinned"] = 1.0
                    if cls == "ScaledDotProductAttention" and li < len(sdpa_calls):
                        m["sdpa_gqa"] = 1.0 if k.get("enable_gqa") else 0.0
                        m["sdpa_masked"] = 0.0 if k.get("attn_mask") is None else 1.0
                    if root:
                        def eager(call=call, node_reset=node_reset):
                            call()
                            node_reset()

                        e = self.measure(eager, 1)
                        m["eager_energy"], m["eager_times_mean"] = e["energy_j"], e["times_mean"]
            except Exception as e:  # noqa: BLE001 (a node's failure is logged; the others go on)
                log(f"  FAILED {scope or '<root>'} ({cls}): {type(e).__name__}: {str(e)[:300]}")
                traceback.print_exc(limit=3)
                continue
            measured[sig] = m
            log(
                f"  {scope or '<root>'} ({cls}): {m['energy_j']:.6g} J, {m['times_mean'] * 1e3:.4g} ms, "
                f"{m['gpu_power_w']:.0f} W, {m['passes']:.0f} passes{'' if m['cuda_graph'] else ', eager'}"
            )
        del kw, got, sdpa_calls
        t.cuda.empty_cache()
        return True


def export_main(argv):
    ap = argparse.ArgumentParser(prog="gpu-collect.py export", description="measured JSONL -> CSV + provenance")
    ap.add_argument("measured", help="JSONL written by gpu-collect.py measure")
    ap.add_argument("--csv", required=True)
    ap.add_argument("--provenance", required=True)
    a = ap.parse_args(argv)
    import csv

    with open(a.measured) as f:
        rows, prov = export_rows([json.loads(line) for line in f if line.strip()])
    tmp = a.csv + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, KEY_FIELDS + MEASURED_FIELDS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, a.csv)
    tmp = a.provenance + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(prov, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, a.provenance)
    print(f"{len(rows)} node rows, {len(prov)} models")


def import_main(argv):
    ap = argparse.ArgumentParser(prog="gpu-collect.py import", description="trees + CSV -> measured irene JSONL")
    ap.add_argument("--trees", required=True, help="irene JSONL trees (scripts/gpu-trees.sh)")
    ap.add_argument("--csv", required=True)
    ap.add_argument("--provenance", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    import csv

    with open(a.trees) as f:
        records = [json.loads(line) for line in f if line.strip()]
    with open(a.csv, newline="") as f:
        rows = list(csv.DictReader(f))
    with open(a.provenance) as f:
        prov = json.load(f)
    out, found, missing, moved = import_rows(records, rows, prov)
    if found == 0:
        raise SystemExit(f"gpu-collect.py: error: {a.csv}: no row matches a node of {a.trees}")
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        for rec in out:
            f.write(json.dumps(rec, separators=(",", ":")) + "\n")
    os.replace(tmp, a.out)
    print(
        f"{len(out)} trees, {found} nodes measured, {missing} without a row, in {a.out}; "
        f"{len(moved)} trees with root and model out of the ground truth (levels disagree)"
    )


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "export":
        return export_main(argv[1:])
    if argv and argv[0] == "import":
        return import_main(argv[1:])
    if argv and argv[0] == "measure":
        argv = argv[1:]
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trees", required=True, help="irene JSONL trees to measure")
    ap.add_argument("--out", required=True, help="annotated JSONL (appended; trees already there are skipped)")
    ap.add_argument("--repo", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--deadline-s", type=float, default=360.0, help="stop cleanly after this many seconds")
    ap.add_argument("--window-s", type=float, default=0.25, help="shortest measuring window, seconds")
    ap.add_argument("--max-window-s", type=float, default=1.0, help="longest measuring window, seconds")
    ap.add_argument("--graph-s", type=float, default=0.002, help="GPU seconds one graph replay aims at")
    ap.add_argument("--models", default="", help="comma-separated model names to measure (default: all)")
    ap.add_argument("--no-graphs", dest="graphs", action="store_false", help="eager PyTorch only, no CUDA graphs")
    ap.add_argument(
        "--no-pinned-masks",
        dest="pin_masks",
        action="store_false",
        help="capture the root and the model without pinning transformers' attention mask to the eager forward's",
    )
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--deadline-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    with open(args.trees) as f:
        records = [json.loads(line) for line in f if line.strip()]
    if args.models:
        keep = set(args.models.split(","))
        records = [x for x in records if x.get("model_name") in keep]
    skip = done_keys(args.out)
    by_model = {}
    for rec in records:
        if tree_key(rec) not in skip:
            by_model.setdefault(rec["model_name"], []).append(rec)

    if not args.child:
        # One process per model: a CUDA error that poisons a process's context loses one model, not all.
        import subprocess

        deadline_at = time.time() + args.deadline_s
        for name in by_model:
            if time.time() > deadline_at - 10:
                log(f"deadline: model {name} and the rest left unmeasured")
                break
            cmd = [sys.executable, os.path.abspath(__file__), *argv]
            cmd += ["--child", "--models", name, "--deadline-at", str(deadline_at)]
            rc = subprocess.call(cmd)
            if rc != 0:
                log(f"model {name}: its process ended with status {rc}")
        log(f"done: {len(done_keys(args.out))} trees in {args.out}")
        return

    import torch
    import transformers

    r = Runner(args)
    deadline = r.t_start + (args.deadline_at - time.time())
    ident = r.nvml.identity()
    log("GPU:", json.dumps(ident))
    r.idle_w = r.idle_power()
    log(f"idle power {r.idle_w:.1f} W")
    r.burn(1.0)
    period, changes = r.counter_period(1.0)
    log(f"energy counter: median update period {period * 1e3:.2f} ms ({changes} changes seen)")
    prov_common = {
        **{k: str(v) for k, v in ident.items()},
        "torch": torch.__version__,
        "cuda_runtime": str(torch.version.cuda),
        "transformers": transformers.__version__,
        "sensor": "nvml total energy counter (GPU board only), joules per forward pass of the node",
        "energy_counter_period_s": f"{period:.6f}",
        "idle_power_w": f"{r.idle_w:.2f}",
        "method": (
            "scripts/gpu-collect.py: transformers modules with random weights, bfloat16, sdpa; each distinct node "
            "run in isolation with the inputs it gets in a real forward, replayed from a CUDA graph (cuda_graph=1; "
            "eager where capture fails, cuda_graph=0), in chunks synchronised after each, the window between two "
            "energy-counter steps; decode through a DynamicCache of past random positions (each call appends one "
            "and is cropped back); identical layers share layer 0's measurement; roots also eager "
            "(eager_energy, eager_times_mean); root and model graphs with the eager forward's attention mask "
            "where mask_pinned=1"
        ),
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for name, recs in by_model.items():
        cfg, model = r.load(resolve_config(recs[0], args.repo))
        log(f"model {name}: {sum(p.numel() for p in model.parameters()):,} parameters on the GPU")
        measured = {}
        for rec in recs:
            if time.perf_counter() > deadline:
                break
            log(f"tree {tree_key(rec)}")
            complete = r.run_tree(cfg, model, rec, measured, deadline)
            out = annotate(rec, measured)
            out.setdefault("provenance", {}).update(prov_common)
            out["provenance"]["complete"] = "yes" if complete else "no (deadline)"
            with open(args.out, "a") as f:
                f.write(json.dumps(out, separators=(",", ":")) + "\n")
        del model
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
