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
``max_position_embeddings``, rotary models), ``weights`` ("fp8", "mxfp4", "int8", "int4", "same";
default: the config's ``quantization_config``, else ``dtype``), ``kv_cache_dtype`` ("fp8",
"bfloat16", "float16", "float32"; default ``dtype``: the key/value cache's element type).
``generate`` predicts the energy of generating text (``dtype``, ``attention``, ``weights``,
``kv_cache_dtype`` as above).

Errors raise ``irene.Error`` (a ``ValueError``) with the message the command line prints.
"""

# Each function's signature and doc are written once, in the compiled module
# (python/irene_module.cpp); this package re-exports them.
from . import _irene
from ._irene import Error, compare, explain, generate, models, predict, sweep, tree

__version__ = _irene.__version__

__all__ = ["Error", "models", "tree", "predict", "generate", "explain", "compare", "sweep", "__version__"]
