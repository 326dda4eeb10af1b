"""Files irene writes are files the IrEne reference implementation reads.

The reference (StonyBrookNLP/irene) reads JSONL trees under three rules, restated here from its
tree reader and evaluator: node ids are unique across the whole file (it keys nodes by id over
the file), every leaf is typed "ml", and every node carries its features (num_parameters, flops,
mem_bytes, ...) and, where measured, its "ground_truth_energy". Its evaluation is, per node type,
the mean over every gold node of that type of 100 x |predicted - gold| / gold, nodes matched by
id over the whole file, rounded to 2 decimals. This test applies those rules to a prediction file
irene writes from the published data and compares the percentages with `irene evaluate`.
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

IRENE = os.environ.get("IRENE_BINARY", "irene")


def data_dir():
    if os.environ.get("IRENE_DATA"):
        return Path(os.environ["IRENE_DATA"])
    src = Path(os.environ.get("IRENE_SOURCE_DIR", Path(__file__).resolve().parents[2]))
    return (src / ".." / "shared" / "irene-data").resolve()


def walk(node):
    yield node
    for child in node.get("child_nodes_obj", []):
        yield from walk(child)


def check_reference_rules(path):
    ids = set()
    nodes = 0
    with open(path) as f:
        for line in f:
            tree = json.loads(line)
            for key in ("model_name", "batch_size", "seq_len", "frontend_tree"):
                assert key in tree
            for n in walk(tree["frontend_tree"]):
                nodes += 1
                assert n["id"] not in ids, f"node id {n['id']} repeats in {path}"
                ids.add(n["id"])
                if not n["child_nodes_obj"]:
                    assert n["type"] == "ml", f"leaf {n['id']} typed {n['type']}"
                for feature in ("num_parameters", "flops", "mem_bytes", "scope", "instance_type", "level",
                                "parent_name", "child_nodes"):
                    assert feature in n, f"{n['id']} lacks {feature}"
    return nodes


def reference_evaluation(gold_path, pred_path):
    """Percentage errors per node type as the reference's evaluation computes them."""
    def by_id(path, field, node_type):
        out = {}
        with open(path) as f:
            for line in f:
                for n in walk(json.loads(line)["frontend_tree"]):
                    if n["type"] == node_type:
                        out[n["id"]] = n.get(field)
        return out

    results = {}
    for node_type in ("ml", "module", "model"):
        gold = by_id(gold_path, "ground_truth_energy", node_type)
        pred = by_id(pred_path, "predicted_energy", node_type)
        errors = [100 * abs(float(g) - float(pred.get(i) or 0)) / float(g) for i, g in gold.items()]
        results[node_type] = round(sum(errors) / len(errors), 2)
    return results


def test_written_trees_follow_the_reference_rules(tmp_path):
    out = tmp_path / "t.jsonl"
    for model in ("bert-base-uncased", "sshleifer/tiny-ctrl"):
        subprocess.run([IRENE, "tree", model, "--batch", "2", "--seq", "8", "--format", "jsonl", "-o",
                        str(tmp_path / "one.jsonl")], check=True)
        with open(out, "a") as f:
            f.write((tmp_path / "one.jsonl").read_text())
    # Two trees of different models in one file: ids stay unique, CTRL's ReLU is an ml leaf.
    assert check_reference_rules(out) > 200


def test_reference_evaluation_of_irene_predictions_matches_irene_evaluate(tmp_path):
    device = data_dir() / "device_2"
    if not device.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"IrEne dataset missing at {device} (set IRENE_DATA)")
        pytest.skip(f"IrEne dataset missing at {device}")
    gold = tmp_path / "gold.jsonl"
    pred = tmp_path / "pred.jsonl"
    subprocess.run([IRENE, "data", "import", str(device), "-o", str(gold)], check=True, capture_output=True)
    subprocess.run([IRENE, "predict", str(gold), "-o", str(pred)], check=True, capture_output=True)
    check_reference_rules(gold)
    check_reference_rules(pred)
    ours = json.loads(subprocess.run([IRENE, "evaluate", str(gold), str(pred), "--format", "json"], check=True,
                                     capture_output=True, text=True).stdout)
    theirs = reference_evaluation(gold, pred)
    for level in ("ml", "module", "model"):
        assert theirs[level] == round(ours[level], 2), (level, theirs, ours)
