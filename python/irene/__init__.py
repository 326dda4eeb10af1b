"""irene: predict and explain the inference energy of Transformer models, node by node.

The same core as the ``irene`` command line (no libtorch is loaded). Every function returns plain
Python objects; energies are joules per forward pass, FLOPs MFLOP, memory traffic MiB. A model is
a built-in name (``irene.models()``), a path to a Hugging Face ``config.json`` (or its folder), a
name found in the local Hugging Face cache (``meta-llama/Llama-2-7b-hf``; nothing is downloaded),
or a config given as a dict. ``overrides`` change sizes as ``irene tree --set`` does:
``{"num_hidden_layers": 6}`` or ``["num_hidden_layers=6"]``. ``predictor`` is a predictor file
(default: the shipped one, or ``$IRENE_PREDICTOR``).

Results of ``tree`` and ``predict`` are dicts with the totals and a ``nodes`` list of flat records
(``id``, ``parent_id``, ``scope``, ``class_name``, ``type``, ``depth``, ``kind``,
``num_parameters``, ``flops_mflop``, ``mem_mib``, ``energy_j``, ``low_j``, ``high_j``,
``measured_j``, ``share_of_parent``, ``share_of_model``, ``attributed_j``) that
``pandas.DataFrame(result["nodes"])`` takes as it is.

The pass of a tree (``tree``, ``predict``): ``phase="decode", past=P`` for one generation step with
a key/value cache of P positions (``seq`` is then 1), ``dtype`` ("float32", "float16", "bfloat16"),
``attention`` ("eager", "sdpa"), ``head`` ("base", "lm"), ``allow_long`` (positions beyond
``max_position_embeddings``, rotary models). ``generate`` predicts the energy of generating text.

Errors raise ``irene.Error`` (a ``ValueError``) with the message the command line prints.
"""

from . import _irene
from ._irene import Error

__version__ = _irene.__version__

__all__ = ["Error", "models", "tree", "predict", "generate", "explain", "compare", "sweep", "__version__"]


def models():
    """Names of the built-in model configurations."""
    return _irene.models()


def tree(model, batch=8, seq=None, overrides=None, phase=None, past=None, dtype=None, attention=None, head=None,
         allow_long=False):
    """The model tree for ``batch`` sequences of ``seq`` tokens (default 128; 1 for a decode step):
    parameters, MFLOP and MiB per node. See the module doc for the pass options."""
    return _irene.tree(model, batch, seq, overrides, phase, past, dtype, attention, head, allow_long)


def predict(model, batch=8, seq=None, predictor=None, overrides=None, phase=None, past=None, dtype=None,
            attention=None, head=None, allow_long=False):
    """Predicted energy of every node (joules per forward pass) with its interval.

    Returns a dict: ``energy_j``, ``low_j``, ``high_j`` (the model), ``hardware`` (what the
    energies describe), ``dtype``, ``phase``, ``past_len``, ``stand_ins`` (leaves predicted by
    another class's regressor), totals, and ``nodes`` (flat records, see the module doc).
    """
    return _irene.predict(model, batch, seq, predictor, overrides, phase, past, dtype, attention, head, allow_long)


def generate(model, batch=1, prompt=512, generate=256, predictor=None, overrides=None, dtype=None, attention=None,
             allow_long=False):
    """The energy of generating ``generate`` tokens after a ``prompt``-token prompt, ``batch`` sequences.

    Returns a dict: ``prefill_j``, ``decode_j`` (the sum of the steps), ``total_j`` and
    ``per_token_j`` (decode / (batch x generate)), each ``{"j", "low_j", "high_j"}`` in joules;
    ``steps`` (``past``, ``energy_j``, ``low_j``, ``high_j`` for every decode step), ``by_kind``
    (attention, feed-forward, embeddings, norm, lm head, other over the whole generation),
    ``stand_ins``, ``dtype``, ``hardware``.
    """
    return _irene.generate(model, batch, prompt, generate, predictor, overrides, dtype, attention, allow_long)


def explain(model, batch=8, seq=128, predictor=None, overrides=None, top=10):
    """Where the energy goes: shares of every node, hotspots, energy by primitive type and module kind."""
    return _irene.explain(model, batch, seq, predictor, overrides, top)


def compare(a, b=None, batch=8, seq=128, batch_b=None, seq_b=None, overrides_a=None, overrides_b=None,
            predictor=None):
    """What a change costs: b against a, node by node, by module kind and by primitive type.

    ``b`` defaults to ``a`` (compare it with itself changed by ``overrides_b``, ``batch_b`` or ``seq_b``).
    """
    return _irene.compare(a, b, batch, seq, batch_b, seq_b, overrides_a, overrides_b, predictor)


def sweep(model, batch=8, seq="32:512:32", predictor=None, overrides=None):
    """Energy against batch size and sequence length.

    ``batch`` and ``seq`` are an int, a list of ints, or a range string (``"32:512:32"``,
    ``"8,16,32"``). Returns ``{"model_name", "hardware", "points": [...]}``, one point per
    (batch, seq), batch-major.
    """
    return _irene.sweep(model, batch, seq, predictor, overrides)
