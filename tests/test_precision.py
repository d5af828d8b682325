"""bigbird.precision: dtype names, `auto` under both answers of the CPU probe, refusals; docs/precision.md runs."""

import json
import re
import shlex
from pathlib import Path

import pytest
import torch

import bigbird
from bigbird import precision
from bigbird.precision import CpuSupport, resolve_dtype
from tiny_checkpoints import checkpoints, made_up_text  # noqa: F401 (fixture)

DOC = Path(__file__).resolve().parents[1] / "docs" / "precision.md"
NATIVE = CpuSupport(bf16=True, fp16=True, flags=("amx_bf16", "avx512_bf16", "avx512_fp16"))
NONE = CpuSupport(bf16=False, fp16=False)


@pytest.fixture
def cpu(monkeypatch):
    """Set what the CPU probe answers: cpu(NATIVE) or cpu(NONE)."""
    return lambda support: monkeypatch.setattr(precision, "cpu_support", lambda: support)


def test_auto_is_bf16_on_a_cpu_with_native_bf16(cpu):
    cpu(NATIVE)
    assert resolve_dtype("auto", "cpu") is torch.bfloat16
    assert resolve_dtype("AUTO") is torch.bfloat16
    assert precision.describe_choice(torch.bfloat16, "auto") == "bfloat16 (auto: CPU with AMX-BF16, AVX512-BF16, " \
                                                                "AVX512-FP16)"


def test_auto_is_fp32_on_a_cpu_without(cpu):
    cpu(NONE)
    assert resolve_dtype("auto", torch.device("cpu")) is torch.float32
    assert precision.describe_choice(torch.float32, "auto") == "float32 (auto: CPU with no native bf16/fp16 flags)"


def test_explicit_names_and_dtypes(cpu):
    cpu(NONE)
    for name, dtype in [("float32", torch.float32), ("fp32", torch.float32), ("bfloat16", torch.bfloat16),
                        ("bf16", torch.bfloat16), (torch.bfloat16, torch.bfloat16), (None, torch.float32)]:
        assert resolve_dtype(name, "cpu") is dtype
    assert precision.describe_choice(torch.bfloat16, "bfloat16") == "bfloat16"


def test_float16_needs_native_fp16_on_cpu(cpu):
    cpu(NONE)
    for name in ("float16", "fp16", torch.float16):
        with pytest.raises(ValueError, match="float16 on this CPU is emulated"):
            resolve_dtype(name, "cpu")
    assert resolve_dtype("float16", "meta") is torch.float16  # only CPUs are probed
    cpu(NATIVE)
    assert resolve_dtype("float16", "cpu") is torch.float16


@pytest.mark.parametrize("name", ["float64", "int8", "bf", "", torch.float64, 3])
def test_unknown_names_list_the_valid_ones(name):
    with pytest.raises(ValueError, match="auto, float32, bfloat16, float16"):
        resolve_dtype(name)


def test_auto_elsewhere_is_fp32():
    assert resolve_dtype("auto", "meta") is torch.float32


def test_probe_reads_this_machine():
    support = precision.cpu_support()
    flags = set(precision._cpuinfo_flags())
    assert support.bf16 == bool(flags & set(precision.BF16_FLAGS)) or not flags
    assert set(support.flags) <= set(precision.BF16_FLAGS + precision.FP16_FLAGS)


@pytest.fixture
def no_weights(monkeypatch):
    """Make loading any weights fail loudly: what is refused must be refused before."""
    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded")

    for name in ("BigBirdForSequenceClassification", "BigBirdModel"):
        monkeypatch.setattr(getattr(bigbird, name), "from_pretrained", refuse)


def test_cli_refuses_float16_on_a_cpu_without_it_before_loading(cpu, no_weights, checkpoints, tmp_path, capsys):
    from bigbird.cli import main

    cpu(NONE)
    text = tmp_path / "a.txt"
    text.write_text(made_up_text(20))
    assert main(["classify", "--model", str(checkpoints["classify"]), "--dtype", "float16", str(text)]) == 1
    assert "float16 on this CPU is emulated" in capsys.readouterr().err
    assert main(["embed", "--model", str(checkpoints["fill-mask"]), "--dtype", "float16", str(text)]) == 1
    assert "float16 on this CPU is emulated" in capsys.readouterr().err


def test_cli_refuses_unknown_dtype_names(capsys):
    from bigbird.cli import main

    for command in (["classify", "--model", "m"], ["embed"], ["search", "query"], ["bench"]):
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--dtype", "float64", "x.txt"])
        assert exit_info.value.code == 2
        assert "choose from 'auto', 'float32', 'bfloat16', 'float16'" in capsys.readouterr().err


@pytest.mark.parametrize("support, dtype", [(NATIVE, torch.bfloat16), (NONE, torch.float32)])
def test_cli_auto_runs_the_chosen_dtype_and_says_so(support, dtype, cpu, checkpoints, tmp_path, capsys,
                                                   monkeypatch):
    from bigbird.cli import main
    from bigbird.pipelines import loading

    cpu(support)
    loaded = []
    original = loading.load
    monkeypatch.setattr(loading, "load", lambda *a, **k: loaded.append(original(*a, **k)) or loaded[-1])
    text = tmp_path / "a.txt"
    text.write_text(made_up_text(20))
    assert main(["classify", "--model", str(checkpoints["classify"]), "--dtype", "auto", str(text)]) == 0
    assert loaded[0].model.dtype == dtype
    reason = "AMX-BF16, AVX512-BF16, AVX512-FP16" if support.bf16 else "no native bf16/fp16 flags"
    assert f"dtype {str(dtype)[6:]} (auto: CPU with {reason})" in capsys.readouterr().err


def test_pipelines_take_auto_and_refuse_what_cannot_run(cpu, checkpoints):
    from bigbird.pipelines import classify
    from bigbird.pipelines.loading import load

    cpu(NATIVE)
    assert load("classify", checkpoints["classify"], dtype="auto").model.dtype == torch.bfloat16
    assert classify(made_up_text(30), checkpoints["classify"], dtype="auto")["label"]
    cpu(NONE)
    assert load("classify", checkpoints["classify"], dtype="auto").model.dtype == torch.float32
    with pytest.raises(ValueError, match="float16 on this CPU is emulated"):
        classify("text", checkpoints["classify"], dtype="float16")
    with pytest.raises(ValueError, match="unknown dtype 'half-precision'"):
        classify("text", checkpoints["classify"], dtype="half-precision")


def test_quantized_weights_are_not_cast(checkpoints, no_weights, tmp_path):
    import shutil

    from bigbird.pipelines.loading import load

    directory = tmp_path / "quantized"
    shutil.copytree(checkpoints["classify"], directory)
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "quantization_config": {"quant_method": "gptq"}}))
    with pytest.raises(ValueError, match="holds quantized weights, which cannot be cast to torch.bfloat16"):
        load("classify", directory, dtype="bfloat16")


def doc_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_docs_have_code():
    assert len(doc_blocks("python")) >= 4 and doc_blocks("bash")


def test_docs_python_blocks_run_in_order(checkpoints, tmp_path, monkeypatch):
    """The python blocks of docs/precision.md run one after the other in one namespace, as a reader would, the
    classifier they name replaced by a tiny one."""
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__doc__"}
    for number, block in enumerate(doc_blocks("python"), start=1):
        block = block.replace('"./my-bigbird-classifier"', repr(str(checkpoints["classify"])))
        exec(compile(block, f"docs/precision.md python block {number}", "exec"), namespace)


def test_docs_commands_run(checkpoints, tmp_path, monkeypatch, capsys):
    from bigbird.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "reviews.txt").write_text(made_up_text(60))
    commands = [line for block in doc_blocks("bash") for line in block.splitlines() if line.startswith("bigbird ")]
    assert commands
    for command in commands:
        command = command.replace("./my-bigbird-classifier", str(checkpoints["classify"]))
        assert main(shlex.split(command)[1:]) == 0, command
    assert re.search(r"dtype (bfloat16|float32) \(auto: CPU with ", capsys.readouterr().err)
