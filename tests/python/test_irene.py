"""The Python module: the same results as the command line, plain objects, irene.Error."""
import json
import math
import os
import subprocess
import sys

import pytest

import irene

IRENE = os.environ.get("IRENE_BINARY", "irene")


def cli(*args):
    out = subprocess.run([IRENE, *args], check=True, capture_output=True, text=True)
    return out.stdout


def test_module_does_not_load_libtorch():
    # The core is torch-free: importing and predicting maps no libtorch into the process.
    irene.predict("gpt2", batch=1, seq=8)
    with open("/proc/self/maps") as f:
        maps = f.read()
    assert "libtorch" not in maps


def test_predict_matches_the_command_line():
    r = irene.predict("bert-base-uncased", batch=8, seq=64)
    j = json.loads(cli("predict", "bert-base-uncased", "--batch", "8", "--seq", "64", "--format", "json"))
    root = j["frontend_tree"]
    assert r["energy_j"] == pytest.approx(root["predicted_energy"], rel=1e-12)
    assert r["low_j"] <= r["energy_j"] <= r["high_j"]
    assert r["batch_size"] == 8 and r["seq_len"] == 64
    assert "device_1" in r["hardware"]
    ids = [n["id"] for n in r["nodes"]]
    assert len(ids) == len(set(ids)) == 214
    assert r["nodes"][0]["parent_id"] == ""
    by_id = {n["id"]: n for n in r["nodes"]}
    # Every non-root record names its parent, and the depth is one more than the parent's.
    for n in r["nodes"][1:]:
        assert by_id[n["parent_id"]]["depth"] + 1 == n["depth"]
    # Shares of a parent's children and of its own operations add up to one.
    for p in r["nodes"]:
        kids = [n for n in r["nodes"] if n["parent_id"] == p["id"]]
        if kids:
            own = p["own_ops_share_of_parent"] or 0.0
            assert sum(k["share_of_parent"] for k in kids) + own == pytest.approx(1.0, abs=1e-9)
    assert any(n["own_ops"] for n in r["nodes"])


def test_records_fit_a_dataframe_as_they_are():
    pandas = pytest.importorskip("pandas")
    r = irene.predict("gpt2", batch=4, seq=32)
    df = pandas.DataFrame(r["nodes"])
    assert len(df) == len(r["nodes"])
    for col in ("id", "parent_id", "scope", "class_name", "type", "depth", "num_parameters", "flops_mflop",
                "mem_mib", "energy_j", "low_j", "high_j", "attributed_j"):
        assert col in df.columns, col
    # The leaves and every module's own operations account for the whole model.
    leaves = df[df["type"] == "ml"]
    assert leaves["attributed_j"].sum() + df["own_ops_attributed_j"].fillna(0).sum() == pytest.approx(
        r["energy_j"], rel=1e-9)


def test_tree_counts_match_hugging_face_and_overrides_apply():
    t = irene.tree("bert-base-uncased")
    assert t["num_parameters"] == 109482240
    assert t["energy_j"] is None and t["nodes"][0]["energy_j"] is None
    six = irene.tree("bert-base-uncased", overrides={"num_hidden_layers": 6})
    same = irene.tree("bert-base-uncased", overrides=["num_hidden_layers=6"])
    assert six["num_parameters"] == same["num_parameters"] < t["num_parameters"]
    assert len(six["nodes"]) < len(t["nodes"])


def test_a_config_dict_is_a_model():
    cfg = {"model_type": "bert", "vocab_size": 100, "hidden_size": 64, "num_hidden_layers": 2,
           "num_attention_heads": 4, "intermediate_size": 128, "max_position_embeddings": 64,
           "type_vocab_size": 2, "_name_or_path": "tiny"}
    r = irene.predict(cfg, batch=2, seq=16)
    assert r["model_name"] == "tiny"
    assert r["energy_j"] > 0


def test_explain_compare_sweep():
    e = irene.explain("gpt2", batch=8, seq=128, top=5)
    assert len(e["hotspots"]) == 5
    assert sum(g["share"] for g in e["by_kind"]) == pytest.approx(1.0, abs=1e-9)
    c = irene.compare("bert-base-uncased", overrides_b={"num_hidden_layers": 6})
    assert c["total"]["diff"]["j"] < 0
    same = irene.compare("gpt2")
    assert same["total"]["diff"]["j"] == 0
    s = irene.sweep("gpt2", batch=[1, 8], seq="32:96:32")
    assert [(p["batch_size"], p["seq_len"]) for p in s["points"]] == [(1, 32), (1, 64), (1, 96), (8, 32), (8, 64), (8, 96)]


def test_errors_raise_irene_error_a_value_error():
    assert issubclass(irene.Error, ValueError)
    with pytest.raises(irene.Error, match="unknown model 'no-such-model'"):
        irene.predict("no-such-model")
    with pytest.raises(irene.Error, match="batch size"):
        irene.tree("gpt2", batch=0)
    with pytest.raises(irene.Error, match="n_layer"):
        irene.tree("gpt2", overrides={"n_layer": 100000})
    with pytest.raises(irene.Error, match="model_type"):
        irene.tree({"vocab_size": 3})
    with pytest.raises(irene.Error):
        irene.sweep("gpt2", batch="8:1")
    with pytest.raises(irene.Error, match="no such file|not a"):
        irene.predict("gpt2", predictor="/nonexistent/p.json")


def test_hugging_face_cache_is_read_offline(tmp_path, monkeypatch):
    snap = tmp_path / "hub" / "models--acme--tiny-gpt" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (tmp_path / "hub" / "models--acme--tiny-gpt" / "refs").mkdir()
    (tmp_path / "hub" / "models--acme--tiny-gpt" / "refs" / "main").write_text("abc123")
    (snap / "config.json").write_text(json.dumps({
        "model_type": "gpt2", "vocab_size": 50, "n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 64}))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    t = irene.tree("acme/tiny-gpt", batch=1, seq=8)
    assert t["model_name"] == "acme/tiny-gpt"
    with pytest.raises(irene.Error, match="hf download acme/other config.json"):
        irene.tree("acme/other")


def test_csv_of_the_command_line_has_the_python_records_columns():
    import csv
    import io
    r = irene.predict("distilgpt2", batch=2, seq=32)
    for args in (["predict", "distilgpt2", "--batch", "2", "--seq", "32"],
                 ["explain", "distilgpt2", "--batch", "2", "--seq", "32"]):
        rows = list(csv.DictReader(io.StringIO(cli(*args, "--format", "csv"))))
        assert len(rows) == len(r["nodes"])
        assert list(rows[0].keys()) == sorted(r["nodes"][0].keys(), key=list(rows[0].keys()).index)
        assert set(rows[0].keys()) == set(r["nodes"][0].keys())
        for row, rec in zip(rows, r["nodes"]):
            assert row["id"] == rec["id"] and row["parent_id"] == rec["parent_id"]
            assert float(row["energy_j"]) == pytest.approx(rec["energy_j"], rel=1e-15)
            assert float(row["attributed_j"]) == pytest.approx(rec["attributed_j"], rel=1e-15)
    bare = list(csv.DictReader(io.StringIO(cli("tree", "distilgpt2", "--batch", "2", "--seq", "32", "--format", "csv"))))
    assert bare[0]["num_parameters"] == str(irene.tree("distilgpt2")["num_parameters"])
    assert bare[0]["energy_j"] == ""


def test_generate_matches_the_command_line():
    g = irene.generate("meta-llama/Llama-2-7b-hf", batch=1, prompt=128, generate=32)
    j = json.loads(cli("predict", "meta-llama/Llama-2-7b-hf", "--batch", "1", "--prompt", "128", "--generate", "32",
                       "--format", "json"))
    assert g["total_j"]["j"] == pytest.approx(j["total_j"]["j"], rel=1e-12)
    assert g["total_j"]["j"] == pytest.approx(g["prefill_j"]["j"] + g["decode_j"]["j"], rel=1e-12)
    assert g["per_token_j"]["j"] == pytest.approx(g["decode_j"]["j"] / 32, rel=1e-12)
    assert [s["past"] for s in g["steps"]] == list(range(128, 160))
    energies = [s["energy_j"] for s in g["steps"]]
    assert energies == sorted(energies)
    assert {k["name"] for k in g["by_kind"]} >= {"attention", "feed-forward", "lm head"}
    assert {s["class_name"] for s in g["stand_ins"]} == {"LlamaRMSNorm", "SiLU"}
    assert g["dtype"] == "float32"
    assert irene.generate("meta-llama/Llama-2-7b-hf", prompt=128, generate=4, dtype="bfloat16")["dtype"] == "bfloat16"


def test_decode_steps_and_dtypes_of_trees():
    t = irene.tree("meta-llama/Llama-2-7b-hf", batch=2, phase="decode", past=100)
    assert t["seq_len"] == 1 and t["past_len"] == 100 and t["phase"] == "decode"
    assert t["num_parameters"] == 6738415616
    h = irene.tree("meta-llama/Llama-2-7b-hf", batch=2, seq=16, dtype="bfloat16")
    f = irene.tree("meta-llama/Llama-2-7b-hf", batch=2, seq=16)
    assert h["mem_mib"] < f["mem_mib"] and h["flops_mflop"] == f["flops_mflop"]
    q = irene.tree("meta-llama/Llama-2-7b-hf", batch=2, seq=16, dtype="bfloat16", weights="fp8")
    assert q["weights"] == "fp8" and h["weights"] == "bfloat16"
    assert q["mem_mib"] < h["mem_mib"] and q["flops_mflop"] == h["flops_mflop"]
    assert irene.predict("meta-llama/Llama-2-7b-hf", batch=1, seq=8, weights="int4")["weights"] == "int4"
    assert irene.generate("meta-llama/Llama-2-7b-hf", prompt=16, generate=2, weights="mxfp4")["weights"] == "mxfp4"
    with pytest.raises(irene.Error, match="unknown weight format 'fp3'"):
        irene.tree("gpt2", weights="fp3")
    # The key/value cache's dtype: a decode step with an fp8 cache moves fewer bytes, same FLOPs.
    d = irene.tree("meta-llama/Llama-2-7b-hf", batch=4, phase="decode", past=1000, dtype="bfloat16")
    k = irene.tree("meta-llama/Llama-2-7b-hf", batch=4, phase="decode", past=1000, dtype="bfloat16",
                   kv_cache_dtype="fp8")
    assert d["kv_cache_dtype"] == "bfloat16" and k["kv_cache_dtype"] == "fp8"
    assert k["mem_mib"] < d["mem_mib"] and k["flops_mflop"] == d["flops_mflop"]
    pk = irene.predict("meta-llama/Llama-2-7b-hf", batch=4, phase="decode", past=1000, dtype="bfloat16",
                       kv_cache_dtype="fp8")
    pd = irene.predict("meta-llama/Llama-2-7b-hf", batch=4, phase="decode", past=1000, dtype="bfloat16")
    assert pk["kv_cache_dtype"] == "fp8" and pk["energy_j"] < pd["energy_j"]
    g = irene.generate("meta-llama/Llama-2-7b-hf", prompt=16, generate=2, kv_cache_dtype="fp8")
    assert g["kv_cache_dtype"] == "fp8"
    with pytest.raises(irene.Error, match="unknown key/value-cache dtype 'int4'"):
        irene.tree("gpt2", kv_cache_dtype="int4")
    p = irene.predict("meta-llama/Llama-2-7b-hf", batch=1, phase="decode", past=10)
    stand_ins = [n for n in p["nodes"] if n["stand_in"]]
    assert stand_ins and all(n["class_name"] in ("LlamaRMSNorm", "SiLU") for n in stand_ins)


def test_generation_errors_are_irene_errors():
    with pytest.raises(irene.Error, match="is an encoder"):
        irene.generate("bert-base-uncased", prompt=8, generate=8)
    with pytest.raises(irene.Error, match="exceeds the 4096 positions"):
        irene.generate("meta-llama/Llama-2-7b-hf", prompt=4000, generate=200)
    with pytest.raises(irene.Error, match="needs --phase decode"):
        irene.tree("gpt2", past=3)
