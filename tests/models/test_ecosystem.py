"""What Transformers users do with BigBird, done with ours: PEFT, Trainer, pipelines, Auto classes."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model

import bigbird
from bigbird_oracle import batch, labels_for, pair
from tiny_checkpoints import checkpoints  # noqa: F401 (fixture)

LORA = dict(target_modules=["query", "value"], r=4, lora_alpha=8, lora_dropout=0.0)


def test_tokenizers_and_configs_are_transformers_own():
    assert bigbird.BigBirdTokenizer is transformers.BigBirdTokenizer
    assert bigbird.PegasusTokenizer is transformers.PegasusTokenizer
    assert bigbird.BigBirdConfig is transformers.BigBirdConfig
    assert bigbird.BigBirdPegasusConfig is transformers.BigBirdPegasusConfig
    assert issubclass(bigbird.BigBirdForMaskedLM, transformers.BigBirdForMaskedLM)


def _train_lora(model, inputs, labels, steps=3):
    """LoRA on query/value, trained a few AdamW steps; returns the PEFT model."""
    peft_model = get_peft_model(model, LoraConfig(**LORA))
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name, p in peft_model.named_parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW(trainable, lr=5e-2)
    for _ in range(steps):
        peft_model(**inputs, **labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return peft_model.eval()


@pytest.mark.parametrize("length", [40, 150], ids=["full", "block-sparse"])
def test_lora_on_query_and_value_trains_and_changes_the_logits(length, tmp_path):
    _, ours = pair("BigBirdForSequenceClassification", tmp_path, num_labels=3)
    inputs = batch("BigBirdForSequenceClassification", length)
    labels = labels_for("BigBirdForSequenceClassification", inputs, num_labels=3)
    with torch.no_grad():
        before = ours(**inputs).logits
    peft_model = _train_lora(ours, inputs, labels)
    lora_b = [p for name, p in peft_model.named_parameters() if "lora_B" in name]
    assert len(lora_b) == 2 * 2 and all(p.abs().sum() > 0 for p in lora_b)  # query and value of both layers
    with torch.no_grad():
        after = peft_model(**inputs).logits
        with peft_model.disable_adapter():
            torch.testing.assert_close(peft_model(**inputs).logits, before, atol=1e-6, rtol=0)
    assert (after - before).abs().max() > 1e-3


def test_an_adapter_trained_on_transformers_bigbird_gives_its_logits_on_ours(tmp_path):
    theirs, ours = pair("BigBirdForSequenceClassification", tmp_path / "base", num_labels=3)
    inputs = batch("BigBirdForSequenceClassification", 150)
    labels = labels_for("BigBirdForSequenceClassification", inputs, num_labels=3)
    theirs.train()
    trained = _train_lora(theirs, inputs, labels)
    trained.save_pretrained(tmp_path / "adapter")
    applied = PeftModel.from_pretrained(ours, tmp_path / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(applied(**inputs).logits, trained(**inputs).logits, atol=1e-5, rtol=0)


class _Rows(torch.utils.data.Dataset):
    def __init__(self, inputs: dict, labels: torch.Tensor):
        self.inputs, self.labels = inputs, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return {**{key: value[index] for key, value in self.inputs.items()}, "labels": self.labels[index]}


@pytest.mark.parametrize("gradient_checkpointing", [False, True])
def test_trainer_checkpoints_reload_in_both_libraries(gradient_checkpointing, tmp_path):
    _, ours = pair("BigBirdForSequenceClassification", tmp_path / "base", num_labels=3)
    inputs = batch("BigBirdForSequenceClassification", 100, batch_size=4)
    labels = torch.tensor([0, 1, 2, 1])
    before = {name: p.detach().clone() for name, p in ours.named_parameters()}
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "run"), max_steps=2, save_steps=2, per_device_train_batch_size=2,
        learning_rate=1e-2, use_cpu=True, report_to=[], gradient_checkpointing=gradient_checkpointing,
        disable_tqdm=True)
    trainer = transformers.Trainer(model=ours, args=args, train_dataset=_Rows(inputs, labels))
    result = trainer.train()
    assert torch.isfinite(torch.tensor(result.training_loss))
    assert any(not torch.equal(before[name], p) for name, p in ours.named_parameters())
    trainer.save_model(str(tmp_path / "final"))
    ours.eval()
    with torch.no_grad():
        expected = ours(**inputs).logits
        for directory in (tmp_path / "run" / "checkpoint-2", tmp_path / "final"):
            for library in (transformers, bigbird):
                reloaded = library.BigBirdForSequenceClassification.from_pretrained(directory).eval()
                torch.testing.assert_close(reloaded(**inputs).logits, expected, atol=1e-5, rtol=0)


def _pipeline_results(task: str, directory, model_class, text: str):
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    model = model_class.from_pretrained(directory).eval()
    return transformers.pipeline(task, model=model, tokenizer=tokenizer, device="cpu")(text)


@pytest.mark.parametrize("task,key,class_name", [
    ("fill-mask", "fill-mask", "BigBirdForMaskedLM"),
    ("text-classification", "classify", "BigBirdForSequenceClassification"),
])
def test_transformers_pipelines_give_the_same_results_with_our_models(task, key, class_name, checkpoints):
    directory = checkpoints[key]
    words = "ba ke lo mi nu ra se ti vo sha tre " * 3
    text = words + "[MASK] qua." if task == "fill-mask" else words
    expected = _pipeline_results(task, directory, getattr(transformers, class_name), text)
    got = _pipeline_results(task, directory, getattr(bigbird, class_name), text)
    assert [r["label" if task != "fill-mask" else "token"] for r in got] == \
        [r["label" if task != "fill-mask" else "token"] for r in expected]
    torch.testing.assert_close(torch.tensor([r["score"] for r in got]), torch.tensor([r["score"] for r in expected]),
                               atol=1e-5, rtol=0)


_AUTO_SCRIPT = """
import sys, torch, transformers, bigbird
directory = sys.argv[1]
before = transformers.AutoModelForMaskedLM.from_pretrained(directory)
assert type(before).__module__.startswith("transformers."), type(before)
bigbird.use_in_transformers()
bigbird.use_in_transformers()
model = transformers.AutoModelForMaskedLM.from_pretrained(directory)
assert isinstance(model, bigbird.BigBirdForMaskedLM), type(model)
for auto, expected in [("AutoModel", bigbird.BigBirdModel),
                       ("AutoModelForSequenceClassification", bigbird.BigBirdForSequenceClassification),
                       ("AutoModelForQuestionAnswering", bigbird.BigBirdForQuestionAnswering)]:
    built = getattr(transformers, auto).from_config(model.config)
    assert type(built) is expected, (auto, type(built))
fill = transformers.pipeline("fill-mask", model=directory, device="cpu")
assert isinstance(fill.model, bigbird.BigBirdForMaskedLM)
text = "ba ke lo mi nu ra se ti vo sha tre " * 3 + "[MASK] qua."
with torch.no_grad():
    expected = transformers.pipeline("fill-mask", model=before.eval(), tokenizer=fill.tokenizer, device="cpu")(text)
got = fill(text)
assert [r["token"] for r in got] == [r["token"] for r in expected], (got, expected)
print("ok")
"""


def test_use_in_transformers_makes_auto_classes_and_pipelines_build_ours(checkpoints):
    done = subprocess.run([sys.executable, "-c", _AUTO_SCRIPT, str(checkpoints["fill-mask"])], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


def test_pegasus_auto_registration_covers_seq2seq(tmp_path):
    script = """
import transformers, bigbird
bigbird.use_in_transformers()
config = transformers.BigBirdPegasusConfig(d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
    decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, vocab_size=99)
assert type(transformers.AutoModelForSeq2SeqLM.from_config(config)) is bigbird.BigBirdPegasusForConditionalGeneration
assert type(transformers.AutoModel.from_config(config)) is bigbird.BigBirdPegasusModel
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
