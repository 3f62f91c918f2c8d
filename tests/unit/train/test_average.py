"""Checkpoint averaging: the newest k complete checkpoints written by the loop's own `save_checkpoint` average to the
elementwise mean, tied weights stay tied when loaded, and fewer than two checkpoints give None."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from tuneforge.train.average import average_checkpoints, averaged_checkpoints, load_averaged
from tuneforge.train.checkpoint import STATE_FILE, checkpoints_dir, save_checkpoint


def _tiny_mbart():
    from transformers import MBartConfig, MBartForConditionalGeneration

    torch.manual_seed(0)
    return MBartForConditionalGeneration(MBartConfig(vocab_size=40, d_model=16, encoder_layers=1, decoder_layers=1,
                                                     encoder_attention_heads=2, decoder_attention_heads=2,
                                                     encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=16,
                                                     pad_token_id=0, eos_token_id=1, bos_token_id=3,
                                                     decoder_start_token_id=1, scale_embedding=True))


@pytest.fixture(scope="module")
def three_checkpoints(tmp_path_factory):
    """A run folder with checkpoints at steps 1, 2, 3 (the weights shifted by +step) and one incomplete at 4."""
    from accelerate import Accelerator

    run = tmp_path_factory.mktemp("run")
    accelerator = Accelerator(cpu=True)
    model = accelerator.prepare(_tiny_mbart())
    states = {}
    for step in (1, 2, 3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
        states[step] = {k: v.clone() for k, v in model.state_dict().items()}
        save_checkpoint(accelerator, run, step, {"step": step}, keep=5)
    crashed = checkpoints_dir(run) / "step-4"
    crashed.mkdir()
    save_file({"model.shared.weight": torch.zeros(40, 16)}, str(crashed / "model.safetensors"))  # no STATE_FILE
    yield run, states
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)  # later tests build accelerators of other precisions
    GradientState._reset_state()


def test_two_checkpoints_average_to_the_elementwise_mean(three_checkpoints):
    run, states = three_checkpoints
    assert [p.name for p in averaged_checkpoints(run, 2)] == ["step-2", "step-3"]  # newest complete ones
    averaged = average_checkpoints(run, 2)
    stored = load_file(str(checkpoints_dir(run) / "step-3" / "model.safetensors"))
    assert averaged.keys() == stored.keys()
    assert "lm_head.weight" not in averaged and "model.shared.weight" in averaged  # Accelerate keeps one tied name
    for key, value in averaged.items():
        torch.testing.assert_close(value, (states[2][key] + states[3][key]) / 2, rtol=0, atol=1e-6)
        assert value.dtype == stored[key].dtype
    everything = average_checkpoints(run, 10)  # more than exist: all three complete ones
    torch.testing.assert_close(everything["model.shared.weight"], states[2]["model.shared.weight"])


def test_loaded_average_keeps_tied_weights_tied(three_checkpoints):
    run, states = three_checkpoints
    model = _tiny_mbart()
    load_averaged(model, average_checkpoints(run, 3))
    assert model.lm_head.weight is model.model.shared.weight
    torch.testing.assert_close(model.lm_head.weight, states[2]["lm_head.weight"], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="lack "):
        load_averaged(model, {"model.shared.weight": states[2]["model.shared.weight"]})
    with pytest.raises(ValueError, match="lack "):  # a weight tied to nothing is missing
        load_averaged(model, {k: v for k, v in states[2].items() if k != "model.encoder.layers.0.fc1.weight"})
    with pytest.raises(ValueError, match="the model lacks"):
        load_averaged(model, dict(states[2]) | {"extra.weight": torch.zeros(1)})


def test_fewer_than_two_checkpoints_give_none(tmp_path, three_checkpoints):
    run, _ = three_checkpoints
    assert average_checkpoints(run, 1) is None
    assert average_checkpoints(tmp_path, 5) is None  # no checkpoints folder
    one = checkpoints_dir(tmp_path) / "step-7"
    one.mkdir(parents=True)
    save_file({"w": torch.ones(2)}, str(one / "model.safetensors"))
    (one / STATE_FILE).write_text("{}", encoding="utf-8")
    assert average_checkpoints(tmp_path, 5) is None


def test_bf16_weights_are_summed_in_fp32_and_stay_bf16(tmp_path):
    values = [torch.tensor([1.0, 1000.0]), torch.tensor([1.0078125, 1001.0])]  # 1000.5 is not a bf16 number
    for step, value in enumerate(values, 1):
        folder = checkpoints_dir(tmp_path) / f"step-{step}"
        folder.mkdir(parents=True)
        save_file({"w": value.bfloat16(), "count": torch.tensor([step])}, str(folder / "model.safetensors"))
        (folder / STATE_FILE).write_text("{}", encoding="utf-8")
    averaged = average_checkpoints(tmp_path, 2)
    assert averaged["w"].dtype == torch.bfloat16
    torch.testing.assert_close(averaged["w"], torch.tensor([1.00390625, 1000.5]).bfloat16())
    assert averaged["count"].tolist() == [2]  # integer buffers: the newest
