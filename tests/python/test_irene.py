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
    with pytest.raises(irene.Error, match="--batch must be a positive integer, got 0"):
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
        # The records' columns, then what the answer rests on (the result's rests_on summary).
        assert list(rows[0].keys())[-1] == "rests_on"
        assert list(rows[0].keys())[:-1] == sorted(r["nodes"][0].keys(), key=list(rows[0].keys()).index)
        assert set(rows[0].keys()) == set(r["nodes"][0].keys()) | {"rests_on"}
        assert all(row["rests_on"] == r["rests_on"]["summary"] for row in rows)
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


LLAMA = "meta-llama/Llama-2-7b-hf"
MISTRAL = "mistralai/Mistral-7B-v0.1"


def cli_json(*args):
    return json.loads(cli(*args, "--format", "json"))


def test_sweep_of_generations_is_the_command_lines():
    s = irene.sweep(LLAMA, prompt=512, generate="128:1024:128")
    j = cli_json("sweep", LLAMA, "--prompt", "512", "--generate", "128:1024:128")
    assert s == j  # the one object the command line prints
    assert s["model_name"] == LLAMA and "device_1" in s["hardware"]
    assert [p["generate"] for p in s["points"]] == list(range(128, 1025, 128))
    totals = [p["total_j"]["j"] for p in s["points"]]
    assert totals == sorted(totals) and totals[0] < totals[-1]
    # Batch and generate ranges as lists: every combination, batch-major, as the command line's.
    b = irene.sweep(LLAMA, batch=[1, 4], prompt=128, generate=[16, 32])
    assert b == cli_json("sweep", LLAMA, "--batch", "1,4", "--prompt", "128", "--generate", "16,32")
    assert [(p["batch"], p["generate"]) for p in b["points"]] == [(1, 16), (1, 32), (4, 16), (4, 32)]
    # Four sequences cost more than one, and less per sequence.
    one, four = b["points"][1]["total_j"]["j"], b["points"][3]["total_j"]["j"]
    assert one < four <= 4 * one


def test_sweep_of_decode_steps_takes_past_ranges():
    s = irene.sweep(LLAMA, batch=2, phase="decode", past="128:512:128", dtype="bfloat16")
    assert s == cli_json("sweep", LLAMA, "--batch", "2", "--phase", "decode", "--past", "128:512:128",
                                   "--dtype", "bfloat16")
    assert [p["past_len"] for p in s["points"]] == [128, 256, 384, 512]


def test_compare_of_generations_is_the_command_lines():
    c = irene.compare(LLAMA, MISTRAL, prompt=512, generate=256)
    assert c == cli_json("compare", LLAMA, MISTRAL, "--prompt", "512", "--generate", "256")
    rows = {r["name"]: r for r in c["rows"]}
    assert rows["total"]["diff"]["j"] == pytest.approx(rows["total"]["b"]["j"] - rows["total"]["a"]["j"], rel=1e-9)
    assert c["last_step"]["a"]["past_len"] == 512 + 256 - 1


def test_compare_what_ifs_on_b_are_the_command_lines():
    # The same model, its b side in bfloat16 with an fp8 cache: fewer bytes, less energy.
    c = irene.compare(LLAMA, phase="decode", past=767, batch=4, dtype_b="bfloat16", kv_cache_dtype_b="fp8")
    assert c == cli_json("compare", LLAMA, "--phase", "decode", "--past", "767", "--batch", "4", "--dtype-b", "bfloat16",
                         "--kv-cache-dtype-b", "fp8")
    assert c["a"]["dtype"] == "float32" and c["b"]["dtype"] == "bfloat16" and c["b"]["kv_cache_dtype"] == "fp8"
    assert c["total"]["diff"]["j"] < 0
    # A longer cache on b costs more; overrides on a (set_a) and b (set) as --set-a / --set.
    p = irene.compare(LLAMA, phase="decode", past=128, past_b=1024, batch_b=8)
    assert p == cli_json("compare", LLAMA, "--phase", "decode", "--past", "128", "--past-b", "1024", "--batch-b", "8")
    assert p["b"]["past_len"] == 1024 and p["b"]["batch_size"] == 8 and p["total"]["diff"]["j"] > 0
    o = irene.compare(LLAMA, batch=1, seq=16, set_a=["num_hidden_layers=8"], overrides_b={"num_hidden_layers": 4},
                      weights_b="int8", attention_b="sdpa")
    assert o == cli_json("compare", LLAMA, "--batch", "1", "--seq", "16", "--set-a", "num_hidden_layers=8", "--set",
                         "num_hidden_layers=4", "--weights-b", "int8", "--attention-b", "sdpa")
    assert o["a"]["overrides"] == {"num_hidden_layers": 8} and o["b"]["overrides"] == {"num_hidden_layers": 4}
    assert o["b"]["weights"] == "int8" and o["total"]["diff"]["j"] < 0
    with pytest.raises(irene.Error, match="--past-b needs --phase decode"):
        irene.compare("gpt2", past_b=10)


def test_explain_of_a_decode_step_and_of_a_generation_is_the_command_lines():
    e = irene.explain(LLAMA, phase="decode", past=767, dtype="bfloat16")
    assert e == cli_json("explain", LLAMA, "--phase", "decode", "--past", "767", "--dtype", "bfloat16")
    assert e["phase"] == "decode" and e["past_len"] == 767 and e["dtype"] == "bfloat16" and e["seq_len"] == 1
    f = irene.explain(LLAMA, phase="decode", past=767)
    assert e["total"]["j"] < f["total"]["j"]
    # The carbon intensity: grams CO2e = kWh x g/kWh.
    c = irene.explain(LLAMA, phase="decode", past=767, dtype="bfloat16", carbon_intensity=400, top=3)
    assert c == cli_json("explain", LLAMA, "--phase", "decode", "--past", "767", "--dtype", "bfloat16",
                         "--carbon-intensity", "400", "--top", "3")
    assert len(c["hotspots"]) == 3 and c["carbon_intensity_g_per_kwh"] == 400
    assert c["normalized"]["co2e_g"] == pytest.approx(c["total"]["j"] / 3.6e6 * 400, rel=1e-12)
    g = irene.explain(LLAMA, prompt=128, generate=16, carbon_intensity=250)
    assert g == cli_json("explain", LLAMA, "--prompt", "128", "--generate", "16", "--carbon-intensity", "250")
    assert g["last_step_explanation"]["past_len"] == 128 + 16 - 1
    assert g["prefill_explanation"]["seq_len"] == 128
    assert g["prefill_explanation"]["total"]["j"] == pytest.approx(g["prefill_j"]["j"], rel=1e-9)
    assert g["normalized"]["co2e_g"] == pytest.approx(g["total_j"]["j"] / 3.6e6 * 250, rel=1e-9)


def test_generate_carries_the_node_records_of_the_prefill_and_the_last_step():
    g = irene.generate(LLAMA, prompt=64, generate=8, dtype="bfloat16")
    columns = set(irene.predict("gpt2", batch=1, seq=8)["nodes"][0].keys())
    for key in ("prefill_nodes", "step_nodes"):
        assert g[key] and set(g[key][0].keys()) == columns, key
        assert g[key][0]["parent_id"] == ""
    assert g["step_nodes"][0]["energy_j"] == pytest.approx(g["steps"][-1]["energy_j"], rel=1e-9)
    assert g["prefill_nodes"][0]["energy_j"] == pytest.approx(g["prefill_j"]["j"], rel=1e-9)
    assert g["prefill_nodes"][0]["seq_len"] == 64 and g["step_nodes"][0]["seq_len"] == 1
    # The last step is the one predict builds for it.
    p = irene.predict(LLAMA, batch=1, phase="decode", past=64 + 8 - 1, dtype="bfloat16", head="lm")
    assert len(p["nodes"]) == len(g["step_nodes"])
    # predict with prompt and generate is generate.
    assert irene.predict(LLAMA, prompt=64, generate=8, dtype="bfloat16")["total_j"] == g["total_j"]


def _options(command):
    """The long options of `irene COMMAND --help`."""
    import re
    return set(re.findall(r"\s--([a-z][a-z0-9-]*)", cli(command, "--help")))


def test_every_model_option_of_the_command_line_is_a_keyword():
    text_only = {"help", "format", "output", "depth", "expand", "jsonl", "report"}
    for command, call in (("explain", lambda **k: irene.explain("gpt2", **k)),
                          ("sweep", lambda **k: irene.sweep("gpt2", **k)),
                          ("compare", lambda **k: irene.compare("gpt2", **k))):
        flags = _options(command) - text_only - ({"top"} if command == "compare" else set())
        assert {"batch", "dtype", "kv-cache-dtype", "prompt", "generate", "set"} <= flags, command
        for flag in flags:
            # Accepted (None is the default), not refused as an unknown keyword.
            call(**{flag.replace("-", "_"): None})
    predict = irene.predict("gpt2", batch="2", seq=16, carbon_intensity=400, strict=False)
    assert predict["batch_size"] == 2 and predict["seq_len"] == 16
    assert predict["normalized"]["co2e_g"] == pytest.approx(predict["energy_j"] / 3.6e6 * 400, rel=1e-12)
    assert predict["normalized"]["per_token_j"] == pytest.approx(predict["energy_j"] / 32, rel=1e-12)


def test_unknown_keywords_and_bad_ranges_are_one_line_errors():
    with pytest.raises(irene.Error, match=r"sweep\(\) got an unknown keyword 'bach' \(accepted: batch, seq, ") as e:
        irene.sweep("gpt2", bach=8)
    assert "\n" not in str(e.value) and "kv_cache_dtype" in str(e.value)
    with pytest.raises(irene.Error, match="unknown keyword 'dtype_b'"):
        irene.explain("gpt2", dtype_b="bfloat16")
    with pytest.raises(irene.Error, match="bad --seq range '64:32'") as e:
        irene.sweep("gpt2", seq="64:32")
    assert "\n" not in str(e.value)
    with pytest.raises(irene.Error, match="--generate"):
        irene.sweep(LLAMA, prompt=128, generate="16:8")
    with pytest.raises(irene.Error, match="--batch must be a positive integer"):
        irene.explain("gpt2", batch=[1, 8])
    with pytest.raises(irene.Error, match="--carbon-intensity must be grams CO2e per kWh"):
        irene.explain("gpt2", carbon_intensity=-1)
    with pytest.raises(irene.Error, match="top must be an integer"):
        irene.explain("gpt2", top="many")
    with pytest.raises(irene.Error, match="--prompt P and --generate N go together"):
        irene.compare(LLAMA, generate=8)


def test_a_trees_file_and_a_config_dict_are_sources_as_on_the_command_line(tmp_path):
    trees = tmp_path / "trees.jsonl"
    cli("sweep", "gpt2", "--batch", "2", "--seq", "32:64:32", "--jsonl", str(trees))
    e = irene.explain(trees)
    assert e == cli_json("explain", str(trees))
    assert [x["seq_len"] for x in e] == [32, 64]
    assert irene.sweep(str(trees), seq=64) == cli_json("sweep", str(trees), "--seq", "64")
    with pytest.raises(irene.Error, match="do not apply to a trees file"):
        irene.explain(trees, dtype="bfloat16")
    cfg = {"model_type": "gpt2", "vocab_size": 50, "n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 64,
           "_name_or_path": "tiny-gpt"}
    s = irene.sweep(cfg, batch=1, seq=[8, 16])
    assert [p["seq_len"] for p in s["points"]] == [8, 16] and s["model_name"] == "tiny-gpt"
    c = irene.compare(cfg, cfg, overrides_b={"n_layer": 1}, batch=1, seq=8)
    assert c["total"]["diff"]["j"] < 0


def test_every_answer_says_what_it_rests_on():
    # The same object as the command line's JSON (explain/rests_on.hpp), in every result.
    g = irene.generate("meta-llama/Llama-2-7b-hf", batch=1, prompt=512, generate=8)
    r = g["rests_on"]
    assert r["question"]["phases"] == ["prefill", "decode"]
    assert r["question"]["context"] == [512, 520]
    dims = {o["dimension"]: o for o in r["outside"]}
    assert dims["size"]["factor"] > 50
    assert dims["phase"]["value"] == "decode"
    assert not r["within_training_data"]
    assert r["summary"].startswith("rests on: " + g["hardware"])
    e = irene.explain("meta-llama/Llama-2-7b-hf", phase="decode", past=767, dtype="bfloat16")
    dims = {o["dimension"]: o for o in e["rests_on"]["outside"]}
    assert dims["context"]["value"] == 768
    assert dims["dtype"]["value"] == "bfloat16"
    assert e["rests_on"]["dtype_applied"] == "bfloat16"
    inside = irene.predict("gpt2", batch=8, seq=128)["rests_on"]
    assert inside["within_training_data"] and inside["outside"] == []
    c = irene.compare("gpt2", batch=8, batch_b=64)
    assert c["a"]["rests_on"]["within_training_data"]
    assert [o["dimension"] for o in c["b"]["rests_on"]["outside"]] == ["batch"]


def test_generate_has_latency_throughput_and_power_from_the_time_companion():
    g = irene.generate("gpt2", batch=8, prompt=64, generate=6)
    t = g["time"]
    assert t["predictor"].endswith("device_1-time.json")
    assert math.isclose(t["total_s"]["s"], t["prefill_s"]["s"] + t["decode_s"]["s"], rel_tol=1e-12)
    assert math.isclose(t["decode_tokens_per_s"], 48 / t["decode_s"]["s"], rel_tol=1e-12)
    assert math.isclose(t["mean_power_w"], g["total_j"]["j"] / t["total_s"]["s"], rel_tol=1e-12)
    assert t["rests_on"]["predictor"]["target"] == "time"


def test_a_sweep_says_what_its_points_rest_on():
    s = irene.sweep("gpt2", batch=[8, 64], seq=128)
    assert s["rests_on"]["question"]["batch"] == [8, 64]
    assert [o["dimension"] for o in s["rests_on"]["outside"]] == ["batch"]
    g = irene.sweep("gpt2", prompt=64, generate="16,32")
    assert g["rests_on"]["question"]["context"] == [64, 96]


def test_compare_takes_the_carbon_intensity():
    c = irene.compare("gpt2", batch=8, batch_b=16, carbon_intensity=400)
    assert math.isclose(c["co2e_g"]["diff"], (c["total"]["b"]["j"] - c["total"]["a"]["j"]) * 400 / 3.6e6, rel_tol=1e-12)


def test_sweep_takes_the_carbon_intensity():
    s = irene.sweep("gpt2", batch=8, seq=[64, 128], carbon_intensity=400)
    assert s == cli_json("sweep", "gpt2", "--batch", "8", "--seq", "64,128", "--carbon-intensity", "400")
    assert s["carbon_intensity_g_per_kwh"] == 400
    for p in s["points"]:
        assert math.isclose(p["co2e_g"], p["model"]["j"] * 400 / 3.6e6, rel_tol=1e-12)
        assert p["rests_on"].startswith("rests on: ")
    g = irene.sweep("gpt2", prompt=32, generate=[4, 8], carbon_intensity=400)
    for p in g["points"]:
        assert math.isclose(p["co2e_g"], p["total_j"]["j"] * 400 / 3.6e6, rel_tol=1e-12)
        assert math.isclose(p["per_token_co2e_g"], p["per_token_j"]["j"] * 400 / 3.6e6, rel_tol=1e-12)
    assert irene.sweep("gpt2", batch=8, seq=64)["points"][0]["co2e_g"] is None


def test_explain_of_a_generation_holds_the_whole_generation_node_by_node():
    e = irene.explain("gpt2", prompt=32, generate=8)
    w = e["generation_explanation"]
    assert w["phase"] == "generation" and w["generate"] == 8
    assert math.isclose(w["total"]["j"], e["total_j"]["j"], rel_tol=1e-9)
    assert w["rests_on"] == e["rests_on"]
    kinds = {k["name"]: k["energy"]["j"] for k in e["by_kind"]}
    for k in w["by_kind"]:
        assert math.isclose(k["energy"]["j"], kinds[k["name"]], rel_tol=1e-9, abs_tol=1e-12)


def test_every_csv_reads_into_pandas_as_it_is(tmp_path):
    # Debian's python3 with pandas: read_csv without options; every row says what it rests on.
    pandas = pytest.importorskip("pandas")
    for name, args in [("sweep", ["sweep", "gpt2", "--batch", "8", "--seq", "32,64", "--carbon-intensity", "400"]),
                       ("generations", ["sweep", "gpt2", "--prompt", "16", "--generate", "4,8"]),
                       ("predict", ["predict", "gpt2", "--batch", "2", "--seq", "16"]),
                       ("explain", ["explain", "gpt2", "--batch", "2", "--seq", "16"])]:
        f = tmp_path / (name + ".csv")
        cli(*args, "--format", "csv", "-o", str(f))
        df = pandas.read_csv(f)
        assert df.columns[-1] == "rests_on", name
        assert len(df) >= 2 and df["rests_on"].str.startswith("rests on: device_1").all(), name
    df = pandas.read_csv(tmp_path / "sweep.csv")
    assert list(df["seq"]) == [32, 64]
    assert ((df["co2e_g"] - df["model_j"] * 400 / 3.6e6).abs() <= 1e-9 * df["co2e_g"]).all()
    nodes = pandas.read_csv(tmp_path / "predict.csv")
    assert len(nodes) == len(irene.predict("gpt2", batch=2, seq=16)["nodes"])


# ---- serving: the options of `irene serving` / `irene explain --serving`, from the same table ----

SERVING_HEADER = ("model_id,task,architecture,weight_precision,total_params_billions,activated_params_billions,"
                  "gpu_model,num_gpus,tensor_parallel,expert_parallel,data_parallel,max_num_seqs,avg_batch_size,"
                  "avg_output_len,energy_per_token_joules,energy_per_request_joules,avg_power_watts,median_itl_ms,"
                  "p90_itl_ms,output_throughput_tokens_per_sec\n")


@pytest.fixture(scope="module")
def serving_table(tmp_path_factory):
    """A small table of one model on H100 whose labels follow energy per token = power x ITL / batch."""
    rows = []
    for batch, power, itl_ms in ((8, 480.0, 7.4), (32, 520.0, 9.0), (128, 560.0, 15.0), (256, 590.0, 25.0)):
        ept = power * itl_ms / 1000 / batch
        rows.append(f"meta-llama/Llama-3.1-8B-Instruct,lm-arena-chat,Dense Transformer,bfloat16,8,8,H100,1,1,1,1,"
                    f"{batch},{batch},500,{ept},{ept * 500},{power},{itl_ms},{itl_ms * 1.5},{batch / itl_ms * 1000}\n")
    p = tmp_path_factory.mktemp("serving") / "table.csv"
    p.write_text(SERVING_HEADER + "".join(rows))
    return str(p)


def test_serving_matches_the_command_line(serving_table):
    model = "meta-llama/Llama-3.1-8B-Instruct"
    r = irene.serving(model, hardware="H100", max_num_seqs=8, prompt=180, table=serving_table)
    j = json.loads(cli("serving", model, "--hardware", "H100", "--max-num-seqs", "8", "--prompt", "180",
                       "--table", serving_table, "--format", "json"))
    assert r["energy_per_token_j"] == j["energy_per_token_j"]
    assert r["serving"]["hardware"]["name"] == "H100"
    # a task: its assumed prompt, the median output length of its rows (500 here)
    t = irene.serving(model, hardware="H100", task="lm-arena-chat", table=serving_table)
    assert t["serving"]["workload"]["output_tokens"] == 500
    assert "assumed" in t["serving"]["workload"]["sources"]["prompt_tokens"]
    # a list sweeps
    s = irene.serving(model, hardware="H100", max_num_seqs=[8, 256], table=serving_table)
    assert [p["serving"]["workload"]["sequences_in_flight"] for p in s["points"]] == [8, 256]
    # a dict is a distribution of lengths (length: weight), one point at its mean
    d = irene.serving(model, hardware="H100", output_tokens={100: 1, 700: 1}, table=serving_table)
    w = d["serving"]["workload"]
    assert w["output_tokens"] == 400 and w["mean_context_tokens"] == 493
    assert w["output_distribution"] == [{"tokens": 100, "share": 0.5}, {"tokens": 700, "share": 0.5}]
    assert d == irene.serving(model, hardware="H100", output_tokens="100:1,700:1", table=serving_table)
    with pytest.raises(irene.Error, match="as a dict must map lengths to weights"):
        irene.serving(model, hardware="H100", output_tokens={100: "x"}, table=serving_table)


def test_explain_serving_parts_add_up_and_match_the_command_line(serving_table):
    model = "meta-llama/Llama-3.1-8B-Instruct"
    e = irene.explain(model, serving=True, hardware="H100", max_num_seqs=[8, 256], prompt="180,1200",
                      table=serving_table)
    j = json.loads(cli("explain", model, "--serving", "--hardware", "H100", "--max-num-seqs", "8,256",
                       "--prompt", "180,1200", "--table", serving_table, "--format", "json"))
    assert e["shares"] == j["shares"]
    assert len(e["points"]) == 4
    for p in e["points"]:
        assert sum(x["share_pct"] for x in p["by_part"]) == pytest.approx(100, abs=1e-9)
        assert sum(x["step_j"] for x in p["by_part"]) == pytest.approx(p["step_j"], rel=1e-9)
    # the weights are streamed once per step whatever the batch: a token costs less at a larger batch
    small, large = e["points"][0], e["points"][2]
    assert (small["max_num_seqs"], large["max_num_seqs"]) == (8, 256) and small["prompt_tokens"] == large["prompt_tokens"]
    assert small["energy_per_token_j"] > large["energy_per_token_j"]


def test_serving_errors_are_irene_errors(serving_table):
    model = "meta-llama/Llama-3.1-8B-Instruct"
    for kw, says in ((dict(task="chat"), "unknown --task"), (dict(max_num_seqs=0), "--max-num-seqs"),
                     (dict(max_num_seqs="8,"), "--max-num-seqs"), (dict(expert_parallel=2), "not a mixture"),
                     (dict(batch=8), "unknown keyword 'batch'")):
        with pytest.raises(irene.Error, match=says):
            irene.serving(model, hardware="H100", table=serving_table, **kw)
    with pytest.raises(irene.Error, match="serving must be True or False"):
        irene.explain(model, serving="yes", hardware="H100")
    with pytest.raises(irene.Error, match="hardware applies with serving=True only"):
        irene.explain("gpt2", hardware="H100")
    # every option of `irene serving` is a keyword of irene.serving (None: the default)
    flags = _options("serving") - {"help", "format", "output-file"}
    assert {"hardware", "max-num-seqs", "output-tokens", "task", "expert-parallel", "data-parallel"} <= flags
    for flag in flags - {"table"}:
        with pytest.raises(irene.Error, match="needs --hardware"):
            irene.serving(model, table=serving_table, **{flag.replace("-", "_"): None})
