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

Every function takes the model first (``compare`` two: ``a`` and ``b``), then keyword arguments
that are the command line's options of the same command, named for Python and read from the table
the command line registers its options from (``help(irene.explain)`` lists them): ``batch``,
``seq``, ``overrides`` (``--set``), ``predictor``, ``phase="decode"`` with ``past=P`` (one
generation step with a key/value cache of P positions; ``seq`` is then 1), ``dtype`` ("float32",
"float16", "bfloat16"), ``weights`` ("fp8", "mxfp4", "int8", "int4", "same"; default: the config's
``quantization_config``, else ``dtype``), ``kv_cache_dtype`` ("fp8", "bfloat16", "float16",
"float32"; default ``dtype``), ``attention`` ("eager", "sdpa"), ``head`` ("base", "lm"),
``allow_long``, ``prompt`` and ``generate`` (a generation: the prefill of ``prompt`` tokens and one
decode step per generated token), ``carbon_intensity`` (grams CO2e per kWh), ``top`` (``explain``);
``compare`` adds b's what-ifs: ``batch_b``, ``seq_b``, ``past_b``, ``dtype_b``, ``weights_b``,
``kv_cache_dtype_b``, ``attention_b``, ``predictor_b``, ``overrides_a`` / ``overrides_b``. Values
are what the command line takes: an int, a string, and where the command sweeps (``sweep``: batch,
seq, past, prompt, generate) a list of ints or a range string ("128:1024:128", "8,16,32"). An
unknown keyword raises ``irene.Error`` naming the accepted ones.

``explain``, ``compare`` and ``sweep`` compute through the same library functions as the command
line and return the objects its ``--format json`` prints (``sweep``: ``{"model_name", "hardware",
"points"}``, ``points`` being the printed list). ``generate`` is ``irene predict --prompt P
--generate N`` (defaults: batch 1, prompt 512, generate 256) plus ``prefill_nodes`` and
``step_nodes``: the flat node records (the columns of ``nodes`` above) of the prefill and of the last
decode step.

``serving(model, hardware="H100", max_num_seqs=8, ...)`` is ``irene serving --format json`` and
``explain(model, serving=True, hardware="H100", max_num_seqs=[8, 256], ...)`` is ``irene explain
--serving --format json`` (where the joules of a serving step go, by part, at every point): their
keyword arguments are the serving options of the command line, from the same table
(``max_num_seqs``, ``prompt``, ``output``, ``task``, ``tensor_parallel``, ``expert_parallel``,
``data_parallel``, ``precision``, ``kv_cache_dtype``, ``table``, ``allow_oversubscribe``,
``carbon_intensity``); a list of ints sweeps.

The module is built for Debian's interpreter (``/usr/bin/python3``); pandas is ``python3-pandas``.

Errors raise ``irene.Error`` (a ``ValueError``) with the message the command line prints.
"""

# Each function's signature and doc are written once, in the compiled module
# (python/irene_module.cpp); this package re-exports them.
from . import _irene
from ._irene import Error, compare, explain, generate, models, predict, serving, sweep, tree

__version__ = _irene.__version__

__all__ = ["Error", "models", "tree", "predict", "generate", "explain", "compare", "sweep", "serving", "__version__"]
