"""Export to ONNX (graph, int8, parity) and the ONNX Runtime predictor, in process on the tiny BERT."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import fp_tolerance
from tuneforge.errors import UserError

TEXTS = ["great", "the service was awful and the food was terrible and the room was really very slow overall",
         "lovely happy staff", "bad", "this phone is superb and the app is excellent", "ugly broken delivery", "nice"]


@pytest.fixture(scope="module")
def classifier(tiny_classifier_dir):
    """The tiny encoder with a seeded 3-class head (untrained: parity does not need a good model)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier_dir).eval()
    return model, AutoTokenizer.from_pretrained(tiny_classifier_dir)


@pytest.fixture(scope="module")
def exported(tiny_classifier_onnx, tmp_path_factory):
    """The classifier's fp32 graph as export_onnx wrote it (through the export recipe, in the session's shared
    export: conftest.tiny_classifier_onnx), what it says about it, and the graph quantized to int8."""
    from tuneforge.export.quantize import quantize_int8

    folder, _ = tiny_classifier_onnx
    info = json.loads((folder / "tuneforge.json").read_text())["export"]
    int8 = tmp_path_factory.mktemp("graphs") / "model.int8.onnx"
    qinfo = quantize_int8(folder / "model.onnx", int8)
    return {"folder": folder, "int8": int8, "info": info, "quant": qinfo}


# Tracing a graph with torch.onnx takes ~8 s, so the tests that need a real export (the session's shared ones,
# conftest.tiny_classifier_onnx and tiny_encoder_onnx, or their own) are slow. In make test-fast the export logic
# is covered by the parity tests below (pure numpy: test_run_graphs_keeps_input_order_and_measures_the_largest_
# difference, test_limits_pass_and_fail, ...), the guards (test_export_guards) and the session options
# (test_sessions_spin_only_during_a_call_unless_asked, on a hand-made graph).
EXPORT = pytest.mark.slow


def _identity_graph(path):
    """A minimal valid ONNX graph with the exports' inputs (input_ids, attention_mask → logits = input_ids)."""
    import onnx
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])
              for n in ("input_ids", "attention_mask")]
    output = helper.make_tensor_value_info("logits", TensorProto.INT64, ["batch", "sequence"])
    graph = helper.make_graph([helper.make_node("Identity", ["input_ids"], ["logits"])], "identity", inputs, [output])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _batch(tokenizer, texts):
    enc = tokenizer(texts, padding=True, return_tensors="np")
    return enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)


def _fp32_tolerance(length: int, scale: float, head: bool = True) -> float:
    """ONNX Runtime's fp32 kernels vs PyTorch's on the tiny model: the same math in another order. 2 layers over
    `length` keys, 32 hidden, 64 FFN units (then pooler and classifier, 32 each, with a head), times the outputs'
    magnitude `scale`."""
    return fp_tolerance(np.float32, 2 * (length + 32 + 64) + (2 * 32 if head else 0)) * float(scale)


def _torch_logits(model, ids, mask):
    import torch

    with torch.inference_mode():
        return model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.numpy()


@EXPORT
def test_graph_has_named_inputs_dynamic_axes_and_opset(exported):
    import onnx

    graph = onnx.load(str(exported["folder"] / "model.onnx"))
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) == 23
    # opset 23: each attention block is one standard ONNX Attention op (ONNX Runtime runs it fused)
    assert sum(n.op_type == "Attention" for n in graph.graph.node) == 2  # the tiny model's two layers
    assert [i.name for i in graph.graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in graph.graph.output] == ["logits"]
    for tensor in graph.graph.input:
        dims = tensor.type.tensor_type.shape.dim
        assert all(d.dim_param and not d.dim_value for d in dims), dims  # batch and sequence are symbolic
    assert exported["info"]["output_name"] == "logits" and exported["info"]["opset"] >= 17


@EXPORT
def test_opset_18_exports_the_decomposed_graph_with_the_same_numbers(classifier, tmp_path):
    """--opset 18 (runtimes without opset 23) still works: no Attention op, logits as PyTorch's. The CLI's default
    is the exporter's (cli.py repeats the number so that `tuneforge --help` does not import torch)."""
    import inspect

    import onnx

    from tuneforge import cli
    from tuneforge.export.onnx import DEFAULT_OPSET, export_onnx
    from tuneforge.export.runtime import onnx_forward, open_session

    assert inspect.signature(cli.export).parameters["opset"].default.default == DEFAULT_OPSET
    model, tokenizer = classifier
    assert export_onnx(model, tmp_path / "m.onnx", opset=18)["opset"] == 18
    assert "Attention" not in {n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node}
    ids, mask = _batch(tokenizer, TEXTS)
    out = onnx_forward(open_session(tmp_path / "m.onnx", threads=1))(ids, mask)
    ref = _torch_logits(model, ids, mask)
    assert np.abs(out - ref).max() <= _fp32_tolerance(ids.shape[1], np.abs(ref).max())


@EXPORT
@pytest.mark.parametrize("texts", [TEXTS[:1], TEXTS], ids=["batch1", "batch7"])
def test_fp32_graph_matches_pytorch_at_any_batch_and_length(classifier, exported, texts):
    from tuneforge.export.runtime import onnx_forward, open_session

    model, tokenizer = classifier
    ids, mask = _batch(tokenizer, texts)
    assert len(texts) == 1 or mask.sum(1).min() < mask.shape[1]  # batch 7 really holds padding
    out = onnx_forward(open_session(exported["folder"] / "model.onnx", threads=1))(ids, mask)
    assert out.shape == (len(texts), 3)
    ref = _torch_logits(model, ids, mask)
    assert np.abs(out - ref).max() <= _fp32_tolerance(ids.shape[1], np.abs(ref).max())


def test_sessions_spin_only_during_a_call_unless_asked(tmp_path):
    """Default "call": threads spin inside a run and stop at its end (force_spinning_stop); "always" is ONNX
    Runtime's own default (no stop); "off" never spins; anything else is a one-line error."""
    from tuneforge.export.runtime import onnx_forward, open_session

    path = _identity_graph(tmp_path / "model.onnx")  # the options do not depend on the graph
    ids = np.array([[2, 7, 3]], dtype=np.int64)
    assert (onnx_forward(open_session(path, threads=1))(ids, np.ones_like(ids)) == ids).all()  # a working session

    def entries(**kwargs):
        options = open_session(path, threads=1, **kwargs).get_session_options()
        out = {}
        for key in ("session.intra_op.allow_spinning", "session.force_spinning_stop"):
            try:
                out[key] = options.get_session_config_entry(key)
            except RuntimeError:  # "does not have configuration with key": not set
                out[key] = None
        return out

    assert entries() == entries(spinning="call") == {"session.intra_op.allow_spinning": "1",
                                                     "session.force_spinning_stop": "1"}
    assert entries(spinning="always") == {"session.intra_op.allow_spinning": "1", "session.force_spinning_stop": None}
    assert entries(spinning="off")["session.intra_op.allow_spinning"] == "0"
    with pytest.raises(UserError, match="spinning 'fast': use one of call, always, off"):
        open_session(path, threads=1, spinning="fast")
    with pytest.raises(UserError, match="True is now 'always'"):  # the old bool setting: a hint, not a silent default
        open_session(path, threads=1, spinning=True)


@EXPORT
def test_int8_graph_is_quantized_and_close(classifier, exported):
    import onnx

    from tuneforge.export.runtime import onnx_forward, open_session

    ops = {n.op_type for n in onnx.load(str(exported["int8"])).graph.node}
    assert "MatMulIntegerToFloat" in ops, ops
    # activations quantized with one scale per row (token), none per tensor: answers independent of the batch
    assert "DynamicQuantizeLinear" not in ops and "QuantizeLinear" in ops, ops
    assert "Attention" in ops and "QAttention" not in ops, ops  # the quantizer leaves the standard op alone
    assert exported["quant"]["per_channel"] is True and exported["quant"]["activation_scales"] == "per row"
    model, tokenizer = classifier
    ids, mask = _batch(tokenizer, TEXTS)
    out = onnx_forward(open_session(exported["int8"], threads=1))(ids, mask)
    # not a rounding bound: int8 weights and activations carry quantization error (the product checks labels)
    assert np.abs(out - _torch_logits(model, ids, mask)).max() < 0.1


@EXPORT
def test_encoder_graph_outputs_last_hidden_state(tiny_model, encoder_export):
    import torch
    from transformers import AutoModel, AutoTokenizer

    from tuneforge.export.runtime import onnx_forward, open_session

    folder = encoder_export[0]  # the bare encoder as export_onnx wrote it, through the export recipe
    model, tokenizer = AutoModel.from_pretrained(tiny_model).eval(), AutoTokenizer.from_pretrained(tiny_model)
    assert json.loads((folder / "tuneforge.json").read_text())["export"]["output_name"] == "last_hidden_state"
    ids, mask = _batch(tokenizer, TEXTS)
    out = onnx_forward(open_session(folder / "model.onnx", threads=1))(ids, mask)
    with torch.inference_mode():
        ref = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state.numpy()
    keep = mask.astype(bool)
    assert out.shape == ref.shape
    assert np.abs(out - ref)[keep].max() <= _fp32_tolerance(ids.shape[1], np.abs(ref).max(), head=False)


# --- parity: pure numpy, with made-up forwards --------------------------------------------------------------


def _encoded(n: int = 9):
    from tuneforge.data.encode import Encoded

    rng = np.random.default_rng(0)
    return Encoded([list(rng.integers(5, 50, size=int(k))) for k in rng.integers(2, 12, size=n)])


def test_run_graphs_keeps_input_order_and_measures_the_largest_difference():
    from tuneforge.export.parity import run_graphs

    data = _encoded()
    first = lambda ids, mask: ids[:, :1].astype(np.float32)  # noqa: E731 - the first token id, per row
    shifted = lambda ids, mask: ids[:, :1].astype(np.float32) + 0.25  # noqa: E731
    ref, rows, diff = run_graphs(first, {"x": shifted}, data, pad_id=0, batch_size=4)
    assert ref[:, 0].tolist() == [row[0] for row in data.input_ids]
    assert np.array_equal(rows["x"], ref + 0.25) and diff["x"] == 0.25  # exact: small integers + 0.25 in float32


def test_hidden_state_difference_ignores_padding():
    from tuneforge.export.parity import run_graphs

    data = _encoded()
    hidden = lambda ids, mask: np.repeat(ids[..., None], 4, -1).astype(np.float32)  # noqa: E731
    junk_in_padding = lambda ids, mask: hidden(ids, mask) + 99.0 * (1 - mask[..., None])  # noqa: E731
    ref, rows, diff = run_graphs(hidden, {"x": junk_in_padding}, data, pad_id=0, batch_size=4)
    assert diff["x"] == 0.0
    # the same masked means, the junk graph's in float64 (99.0 * mask promotes it), ours in float32
    tol = fp_tolerance(np.float32, int(max(data.lengths)))
    assert np.allclose(rows["x"], ref, rtol=tol, atol=tol * np.abs(ref).max())


def test_limits_pass_and_fail():
    from tuneforge.export.parity import MIN_AGREEMENT, MIN_COSINE, measure, violations

    data = _encoded(20)
    labels = np.array([0] * 20)
    ref = lambda ids, mask: np.stack([np.full(len(ids), 1.0), ids[:, 0] % 2.0], 1)  # noqa: E731 - class 0 unless odd
    flipped = lambda ids, mask: ref(ids, mask)[:, ::-1].copy()  # noqa: E731
    good = measure(ref, {"fp32": ref, "int8": ref}, data, 0, classifier=True, labels=labels)
    assert violations(good) == []
    assert good["int8"]["label_agreement"] == 1.0 and good["int8"]["accuracy_drop_points"] == 0.0
    bad = measure(ref, {"fp32": flipped, "int8": flipped}, data, 0, classifier=True, labels=labels)
    problems = violations(bad, tolerance=1e-3, max_accuracy_drop=0.5)
    assert any("fp32" in p and "--tolerance" in p for p in problems)
    assert any("accuracy" in p for p in problems) and any(f"{MIN_AGREEMENT:.0%}" in p for p in problems)
    enc_ref = lambda ids, mask: np.ones((*ids.shape, 3), np.float32)  # noqa: E731
    enc_bad = lambda ids, mask: np.stack([np.ones(ids.shape), -np.ones(ids.shape), np.zeros(ids.shape)], -1)  # noqa: E731
    enc = measure(enc_ref, {"int8": enc_bad}, data, 0, classifier=False)
    assert enc["int8"]["min_cosine"] < MIN_COSINE and "cosine" in violations(enc)[0]


def test_multi_label_parity_compares_whole_label_sets():
    from tuneforge.export.parity import classifier_parity

    ref = np.array([[2.0, -1.0, 0.5], [-3.0, 1.0, -0.2], [0.1, 0.2, -0.3]])
    out = ref.copy()
    out[2, 2] = 0.3  # one label decision flips in the third row
    labels = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]], dtype=np.float32)
    r = classifier_parity(ref, out, 0.6, multi_label=True, labels=labels)
    assert r["label_agreement"] == pytest.approx(2 / 3)
    assert r["pytorch_accuracy"] == 1.0 and r["accuracy"] == pytest.approx(2 / 3)
    assert r["accuracy_drop_points"] == pytest.approx(100 / 3)


def test_nan_output_fails_the_fp32_limit():
    from tuneforge.export.parity import violations

    assert violations({"fp32": {"max_abs_diff": float("nan")}})


# --- the recipe and the ONNX predictor ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def encoder_export(tiny_encoder_onnx):
    """The export recipe on the bare tiny encoder: (folder, result), shared by the session (read-only)."""
    return tiny_encoder_onnx


@EXPORT
def test_export_folder_describes_itself(encoder_export, tiny_model):
    import tuneforge

    out, result = encoder_export
    assert {"model.onnx", "config.json", "tokenizer.json", "tuneforge.json"} <= {p.name for p in out.iterdir()}
    assert not list(out.parent.glob(".*"))  # no temp or old folder left next to it
    section = json.loads((out / "tuneforge.json").read_text())["export"]
    assert section["format"] == "onnx" and section["opset"] >= 17 and section["quantization"] is None
    assert section["output_name"] == "last_hidden_state" and "onnxruntime" in section["versions"]
    # fp32 parity within the rounding bound of texts up to max_length tokens, at the hidden states' magnitude (the
    # product's own limit, --tolerance 1e-3, is a user setting, not a rounding bound)
    hidden = tuneforge.load(str(tiny_model)).embed(TEXTS, return_hidden=True)[1]
    limit = _fp32_tolerance(json.loads((out / "tuneforge.json").read_text())["max_length"], np.abs(hidden).max(),
                            head=False)
    assert section["parity"]["fp32"]["max_abs_diff"] <= limit and section["parity"]["texts"] > 50
    assert result["parity"] == section["parity"]


@EXPORT
def test_onnx_predictor_embeddings_match_pytorch(encoder_export, tiny_model):
    import tuneforge
    from tuneforge.serve.onnx_backend import OnnxPredictor

    onnx_p, torch_p = tuneforge.load(str(encoder_export[0]), threads=1), tuneforge.load(str(tiny_model))
    assert isinstance(onnx_p, OnnxPredictor) and onnx_p.labels is None
    v, hidden, mask = onnx_p.embed(TEXTS, return_hidden=True)
    v2, hidden2, mask2 = torch_p.embed(TEXTS, return_hidden=True)
    length = mask2.shape[1]
    tol = _fp32_tolerance(length, np.abs(hidden2).max(), head=False)
    for pooling in ("mean", "cls"):
        # mean pooling adds a sum over the length
        limit = tol + fp_tolerance(np.float32, length) * np.abs(hidden2).max() if pooling == "mean" else tol
        assert np.abs(onnx_p.embed(TEXTS, pooling) - torch_p.embed(TEXTS, pooling)).max() <= limit
    assert hidden.shape == hidden2.shape and np.abs(hidden - hidden2).max() <= tol and (mask == mask2).all()
    with pytest.raises(UserError, match="last4"):
        onnx_p.embed(TEXTS, "last4")
    with pytest.raises(ValueError, match="classification head"):
        onnx_p.predict(TEXTS)


def test_export_guards(tiny_model, tmp_path):
    from tuneforge.recipes.export import export

    with pytest.raises(UserError, match="--format"):
        export(str(tiny_model), str(tmp_path / "x"), fmt="tflite")
    with pytest.raises(UserError, match="--quantize"):
        export(str(tiny_model), str(tmp_path / "x"), quantize="int4")
    with pytest.raises(UserError, match="--opset"):
        export(str(tiny_model), str(tmp_path / "x"), opset=11)
    with pytest.raises(UserError, match="would replace the model"):
        export(str(tiny_model), str(tiny_model))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not a TuneForge export"):
        export(str(tiny_model), str(tmp_path / "notes"))
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"


def test_default_threads_follow_cores_and_omp(monkeypatch):
    from tuneforge.export.runtime import default_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert 1 <= default_threads() <= 4
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert default_threads() == 1


def test_loading_pytorch_weights_from_an_export_says_why(tiny_model, tmp_path):
    """An export folder: config + tokenizer + model.onnx, no PyTorch weights (a stand-in graph file is enough)."""
    import shutil

    from tuneforge.model.build import load_trained

    folder = tmp_path / "exported"
    shutil.copytree(tiny_model, folder)
    (folder / "model.safetensors").unlink()
    _identity_graph(folder / "model.onnx")
    with pytest.raises(UserError, match="ONNX export"):
        load_trained(str(folder))


def test_session_options_on_a_pytorch_folder(tiny_model):
    """`spinning` names an ONNX Runtime setting: on a PyTorch folder it is a one-line error, not a TypeError;
    `threads` works on both kinds of folder."""
    import torch

    import tuneforge

    with pytest.raises(UserError, match="ONNX Runtime setting"):
        tuneforge.load(str(tiny_model), spinning="call")
    before = torch.get_num_threads()
    try:
        assert tuneforge.load(str(tiny_model), threads=1).embed(["good film"]).shape[0] == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_embed_file_at_each_precision_stays_close_to_fp32(tiny_model, tmp_path):
    from tuneforge.recipes.predict import embed_file

    texts = tmp_path / "texts.txt"
    texts.write_text("a good film\nthe worst plot\nfine acting and a long score\n")
    vectors = {}
    for precision in ("fp32", "bf16", "int8"):
        out = tmp_path / f"{precision}.npy"
        assert tuple(embed_file(str(tiny_model), str(texts), str(out), precision=precision)) == (3, 32)
        vectors[precision] = np.load(out)
        assert vectors[precision].dtype == np.float32
    for precision in ("bf16", "int8"):
        a, b = vectors["fp32"], vectors[precision]
        cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        assert cosine.min() > 0.98, (precision, cosine)
        assert not np.array_equal(a, b)  # the precision was really applied
    with pytest.raises(UserError, match="precision"):
        embed_file(str(tiny_model), str(texts), str(tmp_path / "x.npy"), precision="fp8")
