"""Files irene writes are files the IrEne reference implementation reads.

The reference (StonyBrookNLP/irene) reads JSONL trees under three rules, restated here from its
tree reader and evaluator: node ids are unique across the whole file (it keys nodes by id over
the file), every leaf is typed "ml", and every node carries its features (num_parameters, flops,
mem_bytes, ...) and, where measured, its "ground_truth_energy". Its evaluation is, per node type,
the mean over every gold node of that type of 100 x |predicted - gold| / gold, nodes matched by
id over the whole file, rounded to 2 decimals. This test applies those rules to a prediction file
irene writes from the published data and compares the percentages with `irene evaluate`.

Both ways: `reference_train_reads` restates what the reference's train.py does with a file
(lib/tree_node.py read_from_json, lib/ml_level.py, lib/non_ml_level.py) and raises the error it
would raise; `irene data import` writes files it reads, and `--all` the two kinds it does not.
`reference_predict_output` writes a prediction file the way its predict.py does (tree_node.py
write_to_json: the node dicts it read, instance_type lower-cased, predicted_energy added), and
`irene evaluate` reads it.
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


# lib/utils.py: get_feature_types_to_feature_list(IRENE_CONFIG["feature_sets"]), the features the
# reference reads from every node (input_size, batch_size and seq_len come from the record).
REFERENCE_FEATURES = ["num_parameters", "input_size", "batch_size", "seq_len", "flops", "mem_bytes", "cpu", "mem",
                      "gpu", "gpu_mem", "gpu_clk", "gpu_mem_clk", "times_mean", "gpu_energy_mean"]
# lib/utils.py: ML_OPERATIONS_LIST (compared with instance_type.lower()).
ML_OPERATIONS_LIST = ["embedding", "layernorm", "linear", "tanh", "conv1d", "softmax", "matmul"]


def reference_train_reads(path):
    """What train.py does with the file, up to its first error (raised as the reference raises it)."""
    records = [json.loads(line) for line in open(path) if line.strip()]
    nodes = []
    # TreeNode.read_from_jsons: every tree is read before any training.
    for record in records:
        batch_size, seq_len = record["batch_size"], record["seq_len"]

        def read(node):
            for name in REFERENCE_FEATURES:
                if name not in ("batch_size", "seq_len", "input_size"):
                    node[name]  # KeyError: 'cpu' on a node without its CSV row
            node_type = "ml" if node["type"] == "ml-np" else node["type"]
            if not node["child_nodes_obj"]:
                assert node_type == "ml", f"Leaf nodes must be ml typed. Found {node_type}"
            nodes.append((node, node_type, batch_size * seq_len))
            for child in node["child_nodes_obj"]:
                read(child)

        read(record["frontend_tree"])
    # train_ml_level_models / predict_ml_level_models: a regressor per operation of the list; other
    # classes get a warning and no prediction.
    predicted = {id(n) for n, t, _ in nodes if t == "ml" and n["instance_type"].lower() in ML_OPERATIONS_LIST}
    # prepare_for_non_ml_training: unique ids, and a tensor of every node's gold energy.
    ids = [n["id"] for n, _, _ in nodes]
    assert len(set(ids)) == len(ids), "Node-ids need to be unique, but they aren't."
    for n, _, _ in nodes:
        gold = n.get("ground_truth_energy", None)
        if not isinstance(gold, (int, float)):
            raise RuntimeError(f"torch.tensor({gold!r}): node {n['id']} has no ground_truth_energy")
    # RecursiveTreeComputation.forward on every leaf.
    for n, _, _ in nodes:
        if not n["child_nodes_obj"]:
            assert id(n) in predicted, "Found leaf node w/o energy prediction."
    return len(records)


def reference_predict_output(input_path, irene_pred_path, out_path):
    """The file predict.py writes for `input_path`, with irene's predicted energies as its numbers.

    TreeNode.read_from_json lower-cases instance_type in the node dicts it keeps; write_to_json sets
    "id" and "predicted_energy" (float) on them, rebuilds child_nodes_obj and wraps the root in
    {"model_name", "seq_len", "batch_size", "frontend_tree"} (other record fields are dropped);
    write_jsonl writes json.dumps of each.
    """
    predicted = {}
    with open(irene_pred_path) as f:
        for line in f:
            for n in walk(json.loads(line)["frontend_tree"]):
                predicted[n["id"]] = n["predicted_energy"]

    def write(node):
        node["instance_type"] = node["instance_type"].lower()
        node["id"] = node["id"]
        node["predicted_energy"] = float(predicted[node["id"]])
        node["child_nodes_obj"] = [write(c) for c in node["child_nodes_obj"]]
        return node

    with open(input_path) as f, open(out_path, "w") as out:
        for line in f:
            record = json.loads(line)
            tree = write(record["frontend_tree"])
            out.write(json.dumps({"model_name": record["model_name"], "seq_len": record["seq_len"],
                                  "batch_size": record["batch_size"], "frontend_tree": tree}) + "\n")


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

    # The file the reference's predict.py writes for gold: lower-cased classes, so irene recomputes
    # other ids ("bertmodel"); `irene evaluate` matches them and gets the same figures.
    ref_pred = tmp_path / "ref_pred.jsonl"
    reference_predict_output(gold, pred, ref_pred)
    first = json.loads(ref_pred.read_text().splitlines()[0])
    assert list(first) == ["model_name", "seq_len", "batch_size", "frontend_tree"]
    assert first["frontend_tree"]["instance_type"] == first["frontend_tree"]["instance_type"].lower()
    assert any(c != c.lower() for c in json.loads(gold.read_text().splitlines()[0])["frontend_tree"]["instance_type"])
    check_reference_rules(ref_pred)
    from_ref = json.loads(subprocess.run([IRENE, "evaluate", str(gold), str(ref_pred), "--format", "json"],
                                         check=True, capture_output=True, text=True).stdout)
    assert reference_evaluation(gold, ref_pred) == theirs
    for level in ("ml", "module", "model"):
        assert from_ref[level] == pytest.approx(ours[level], rel=1e-12), (level, from_ref, ours)
    # A prediction file whose node really differs (another class, not another case) is still refused.
    lines = ref_pred.read_text().splitlines()
    first["frontend_tree"]["child_nodes_obj"][0]["instance_type"] = "relu"
    lines[0] = json.dumps(first)
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    r = subprocess.run([IRENE, "evaluate", str(gold), str(tmp_path / "bad.jsonl")], capture_output=True, text=True)
    assert r.returncode == 1
    assert "mismatched ids" in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_imported_files_are_what_the_reference_trains_on(tmp_path):
    device = data_dir() / "device_1"
    if not device.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"IrEne dataset missing at {device} (set IRENE_DATA)")
        pytest.skip(f"IrEne dataset missing at {device}")
    out = tmp_path / "d1.jsonl"
    r = subprocess.run([IRENE, "data", "import", str(device), "-o", str(out)], check=True, capture_output=True,
                       text=True)
    assert "openai-gpt/32/128: no model row, no module rows, no ml1 rows (not written)" in r.stdout, r.stdout
    assert "sshleifer/tiny-ctrl (" in r.stdout and "leaves of class ReLU" in r.stdout, r.stdout
    trees = reference_train_reads(out)
    models = {json.loads(line)["model_name"] for line in open(out)}
    assert "sshleifer/tiny-ctrl" not in models and len(models) == 6
    # --keep-other-leaves: tiny-ctrl's ReLU leaves stop the reference's training.
    subprocess.run([IRENE, "data", "import", str(device), "-o", str(out), "--keep-other-leaves"], check=True,
                   capture_output=True)
    with pytest.raises(AssertionError, match="Found leaf node w/o energy prediction"):
        reference_train_reads(out)
    # --all: the incomplete openai-gpt/32/128 stops it first, when it reads the trees.
    subprocess.run([IRENE, "data", "import", str(device), "-o", str(out), "--all"], check=True, capture_output=True)
    with pytest.raises(KeyError, match="cpu"):
        reference_train_reads(out)
    assert sum(1 for _ in open(out)) > trees
