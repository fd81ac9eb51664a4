"""The final evaluation's model: a LoRA student is evaluated merged (as evaluate.py target=student does)."""

from __future__ import annotations

import torch

from steper.tasks.train_eval import lora_merged


def test_lora_merged_merges_for_the_block_and_restores(noisy_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(noisy_dir, local_files_only=True, dtype=torch.float32)
    lora = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    lora.eval()
    x = torch.tensor([[5, 6, 7, 8, 9]])
    layer = lora.base_model.model.model.layers[0].self_attn.q_proj
    before = layer.base_layer.weight.detach().clone()
    with torch.inference_mode():
        unmerged = lora(input_ids=x).logits
        with lora_merged(lora) as m:
            assert m is lora and layer.merged
            assert not torch.equal(layer.base_layer.weight, before)  # the delta is in the weights
            merged = lora(input_ids=x).logits
        after = lora(input_ids=x).logits
    assert not layer.merged
    torch.testing.assert_close(merged, unmerged, rtol=1e-4, atol=1e-4)  # the same function
    torch.testing.assert_close(layer.base_layer.weight, before, rtol=0, atol=1e-6)  # restored up to rounding
    torch.testing.assert_close(after, unmerged, rtol=1e-5, atol=1e-5)


def test_lora_merged_leaves_a_plain_model_alone(noisy_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(noisy_dir, local_files_only=True)
    with lora_merged(model) as m:
        assert m is model
