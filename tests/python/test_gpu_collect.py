"""scripts/gpu-collect.py without a GPU: which nodes it measures, how a collection is committed
(CSV + provenance) and put back on the trees, and the check of the levels."""
import copy
import importlib.util
import os

import pytest

SRC = os.environ.get("IRENE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
_spec = importlib.util.spec_from_file_location("gpu_collect", os.path.join(SRC, "scripts", "gpu-collect.py"))
gc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gc)


def node(scope, cls, typ, attrs, children=()):
    return {"scope": scope, "instance_type": cls, "type": typ, "attrs": attrs, "child_nodes_obj": list(children)}


def tree(past=256, layers=2):
    lin = {"in_features": 8, "out_features": 8, "batch": 2, "seq": 1}
    lays = []
    for i in range(layers):
        p = f"model.layers.{i}"
        attn = node(
            p + ".self_attn",
            "LlamaAttention",
            "module",
            {"batch": 2},
            [
                node(p + ".self_attn.k_proj", "Linear", "ml", lin),
                node(p + ".self_attn.v_proj", "Linear", "ml", lin),
                node(p + ".self_attn", "ScaledDotProductAttention", "ml", {"batch": 2, "n": past + 1}),
            ],
        )
        lays.append(node(p, "LlamaDecoderLayer", "module", {"batch": 2}, [attn]))
    model = node("model", "LlamaModel", "module", {"batch": 2}, lays)
    root = node("", "LlamaForCausalLM", "model", {"batch": 2}, [model])
    return {"model_name": "m", "phase": "decode", "batch_size": 2, "seq_len": 1, "past_len": past,
            "dtype": "bfloat16", "attention": "sdpa", "frontend_tree": root, "provenance": {}}


def test_plan_measures_each_distinct_computation_once():
    p = gc.plan(tree())
    classes = [n["instance_type"] for _, n in p]
    # k_proj and v_proj are the same Linear; layer 1 repeats layer 0.
    assert classes == ["LlamaForCausalLM", "LlamaModel", "LlamaDecoderLayer", "LlamaAttention", "Linear",
                       "ScaledDotProductAttention"]
    assert all(".layers.1" not in n["scope"] for _, n in p)
    # A primitive's measurement is shared across cache lengths; a module's is not.
    a, b = tree(256), tree(2048)
    lin_a = [s for s, n in gc.plan(a) if n["instance_type"] == "Linear"][0]
    lin_b = [s for s, n in gc.plan(b) if n["instance_type"] == "Linear"][0]
    attn_a = [s for s, n in gc.plan(a) if n["instance_type"] == "LlamaAttention"][0]
    attn_b = [s for s, n in gc.plan(b) if n["instance_type"] == "LlamaAttention"][0]
    assert lin_a == lin_b and attn_a != attn_b


def measured(rec, energy_of):
    m = {}
    for sig, n in gc.plan(rec):
        m[sig] = {"energy_j": energy_of(n), "times_mean": 1e-3, "cuda_graph": 1.0}
    return gc.annotate(rec, m)


def test_export_then_import_gives_back_every_node():
    energies = {"LlamaForCausalLM": 10.0, "LlamaModel": 9.0, "LlamaDecoderLayer": 4.0, "LlamaAttention": 3.5,
                "Linear": 1.0, "ScaledDotProductAttention": 1.2}
    rec = measured(tree(), lambda n: energies[n["instance_type"]])
    rec["provenance"] = {"gpu": "NVIDIA H200", "config": "/x/models/m/config.json", "complete": "yes"}
    rows, prov = gc.export_rows([rec])
    assert all(".layers.1" not in r["scope"] for r in rows)
    assert prov == {"m": {"gpu": "NVIDIA H200"}}
    back, found, missing, moved = gc.import_rows([tree()], rows, prov)
    assert missing == 0 and moved == []
    assert found == sum(1 for _ in gc.walk(rec["frontend_tree"]))
    for (a, _), (b, _) in zip(gc.walk(rec["frontend_tree"]), gc.walk(back[0]["frontend_tree"])):
        assert a.get("ground_truth_energy") == b.get("ground_truth_energy")
    assert back[0]["provenance"]["gpu"] == "NVIDIA H200"


def test_a_model_far_above_its_children_leaves_the_ground_truth():
    def energies(model_j):
        table = {"LlamaForCausalLM": model_j + 0.1, "LlamaModel": model_j, "LlamaDecoderLayer": 4.0,
                 "LlamaAttention": 3.5, "Linear": 1.0, "ScaledDotProductAttention": 1.2}
        return lambda n: table[n["instance_type"]]

    ok = measured(tree(), energies(1.2 * 8.0))  # 1.2x its two layers
    assert gc.check_levels(ok) == pytest.approx(1.2)
    assert "levels" not in ok["provenance"] and "ground_truth_energy" in ok["frontend_tree"]
    bad = measured(tree(), energies(2.0 * 8.0))
    before = copy.deepcopy(bad)
    assert gc.check_levels(bad) == pytest.approx(2.0)
    root, model = bad["frontend_tree"], bad["frontend_tree"]["child_nodes_obj"][0]
    for n, was in ((root, before["frontend_tree"]), (model, before["frontend_tree"]["child_nodes_obj"][0])):
        assert "ground_truth_energy" not in n and n["capture_path_energy"] == was["ground_truth_energy"]
    assert "layers" in bad["provenance"]["levels"]
    assert "ground_truth_energy" in model["child_nodes_obj"][0]


def test_canonical_scope_and_config_lookup(tmp_path):
    assert gc.canonical_scope("model.layers.17.mlp.up_proj") == "model.layers.0.mlp.up_proj"
    assert gc.canonical_scope("model.layers.3") == "model.layers.0"
    assert gc.canonical_scope("lm_head") == "lm_head"
    (tmp_path / "data" / "c").mkdir(parents=True)
    cfg = tmp_path / "data" / "c" / "x.json"
    cfg.write_text("{}")
    rec = {"model_name": "x", "provenance": {"config": "/elsewhere/checkout/data/c/x.json"}}
    assert gc.resolve_config(rec, str(tmp_path)) == str(cfg)
    with pytest.raises(FileNotFoundError, match="no config.json found for model 'y'"):
        gc.resolve_config({"model_name": "y", "provenance": {}}, str(tmp_path))


def test_import_of_rows_that_match_no_tree_is_one_error_line(tmp_path, capsys):
    import json

    trees = tmp_path / "trees.jsonl"
    trees.write_text(json.dumps(tree()) + "\n")
    rows = tmp_path / "nodes.csv"
    rows.write_text(",".join(gc.KEY_FIELDS + gc.MEASURED_FIELDS) + "\n" + "other,decode,2,1,256,,X" + "," * len(gc.MEASURED_FIELDS) + "\n")
    prov = tmp_path / "prov.json"
    prov.write_text("{}")
    out = tmp_path / "out.jsonl"
    with pytest.raises(SystemExit, match=r"gpu-collect.py: error: .*nodes.csv: no row matches a node of .*trees.jsonl"):
        gc.main(["import", "--trees", str(trees), "--csv", str(rows), "--provenance", str(prov), "--out", str(out)])
    assert not out.exists()
