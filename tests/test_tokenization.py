"""BigBirdTokenizer and PegasusTokenizer against Transformers' tokenizers on SentencePiece models trained here."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import transformers

import bigbird
from tokenizer_fixtures import sample_texts, save_like_old_hub, train_spm, write_corpus

TEXTS = sample_texts()
PAIRS = [(TEXTS[1], TEXTS[0]), (TEXTS[7], TEXTS[5]), ("", TEXTS[6]), (TEXTS[8], ""), (TEXTS[10], TEXTS[9])]
VARIANTS = [
    "bigbird-spm",
    "bigbird-spm-user-symbols",
    "bigbird-saved",
    "bigbird-old-hub",
    "bigbird-old-hub-special-map",
    "pegasus-spm",
    "pegasus-spm-config",
    "pegasus-saved",
]


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """Tokenizer directories of every variant, written by the sentencepiece trainer and by Transformers."""
    root = tmp_path_factory.mktemp("tokenizers")
    corpus = write_corpus(root / "corpus.txt")
    dirs = {
        "bigbird-spm": train_spm(corpus, root / "bigbird-spm", "bigbird").parent,
        "bigbird-spm-user-symbols": train_spm(corpus, root / "bigbird-user", "bigbird", "user_defined").parent,
        "pegasus-spm": train_spm(corpus, root / "pegasus-spm", "pegasus").parent,
    }
    dirs["pegasus-spm-config"] = root / "pegasus-spm-config"
    shutil.copytree(dirs["pegasus-spm"], dirs["pegasus-spm-config"])
    config = {"mask_token": "<mask_2>", "mask_token_sent": "<mask_1>", "offset": 50, "model_max_length": 64}
    (dirs["pegasus-spm-config"] / "tokenizer_config.json").write_text(json.dumps(config))
    for family, theirs in [("bigbird", transformers.BigBirdTokenizer), ("pegasus", transformers.PegasusTokenizer)]:
        dirs[f"{family}-saved"] = root / f"{family}-saved"
        theirs.from_pretrained(dirs[f"{family}-spm"]).save_pretrained(dirs[f"{family}-saved"])
    dirs["bigbird-old-hub"] = save_like_old_hub(dirs["bigbird-saved"], root / "old-hub", with_decoder=True)
    dirs["bigbird-old-hub-special-map"] = save_like_old_hub(dirs["bigbird-saved"], root / "old-hub-map", False)
    return dirs


def _classes(variant):
    if variant.startswith("bigbird"):
        return bigbird.BigBirdTokenizer, transformers.BigBirdTokenizer
    return bigbird.PegasusTokenizer, transformers.PegasusTokenizer


_LOADED = {}


@pytest.fixture(params=VARIANTS)
def pair(request, checkpoints):
    """(ours, Transformers') tokenizers loaded from the same directory."""
    variant = request.param
    if variant not in _LOADED:
        ours, theirs = _classes(variant)
        _LOADED[variant] = ours.from_pretrained(checkpoints[variant]), theirs.from_pretrained(checkpoints[variant])
    return _LOADED[variant]


def _plain(value):
    if isinstance(value, torch.Tensor):
        return ("tensor", value.dtype, value.tolist())
    if isinstance(value, np.ndarray):
        return ("array", value.dtype, value.tolist())
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def assert_same_output(ours, theirs):
    assert list(ours.keys()) == list(theirs.keys())
    for key in theirs:
        assert _plain(ours[key]) == _plain(theirs[key]), key


def _backend_json(tokenizer):
    data = json.loads(tokenizer.backend_tokenizer.to_str())
    data["padding"] = data["truncation"] = None  # per-call state
    return data


ALL_OUTPUTS = dict(
    return_token_type_ids=True, return_attention_mask=True, return_special_tokens_mask=True,
    return_offsets_mapping=True, return_length=True,
)  # fmt: skip


def test_backend_pipeline_is_transformers(pair):
    ours, theirs = pair
    assert _backend_json(ours) == _backend_json(theirs)


def test_single_texts(pair):
    ours, theirs = pair
    for text in TEXTS:
        mine, reference = ours(text, **ALL_OUTPUTS), theirs(text, **ALL_OUTPUTS)
        assert_same_output(mine, reference)
        assert mine.tokens() == reference.tokens()
        assert mine.word_ids() == reference.word_ids()
        assert_same_output(ours(text), theirs(text))
        assert ours.encode(text) == theirs.encode(text)
        assert ours.tokenize(text) == theirs.tokenize(text)
        assert ours(text, add_special_tokens=False)["input_ids"] == theirs(text, add_special_tokens=False)["input_ids"]


def test_pairs(pair):
    ours, theirs = pair
    for question, context in PAIRS:
        assert_same_output(ours(question, context, **ALL_OUTPUTS), theirs(question, context, **ALL_OUTPUTS))
        assert_same_output(
            ours(question, context, return_tensors="pt"), theirs(question, context, return_tensors="pt")
        )
        assert ours.encode(question, context) == theirs.encode(question, context)


@pytest.mark.parametrize(
    "options",
    [
        dict(padding=True),
        dict(padding="longest", return_tensors="pt"),
        dict(padding="max_length", max_length=48, truncation=True, return_tensors="pt"),
        dict(truncation=True, max_length=20),
        dict(max_length=9),
        dict(padding=True, truncation="longest_first", max_length=30, return_token_type_ids=True),
        dict(padding=True, pad_to_multiple_of=8, return_tensors="pt"),
        dict(padding=True, padding_side="left", return_offsets_mapping=True),
    ],
)
def test_batches_padding_truncation(pair, options):
    ours, theirs = pair
    mine, reference = ours(TEXTS, **options), theirs(TEXTS, **options)
    assert_same_output(mine, reference)
    for row in (0, 5, 9):  # tokens and words come from a second, full encoding when offsets were not asked for
        assert mine.tokens(row) == reference.tokens(row)
        assert mine.word_ids(row) == reference.word_ids(row)
        assert mine.sequence_ids(row) == reference.sequence_ids(row)
    questions, contexts = [q for q, _ in PAIRS], [c for _, c in PAIRS]
    assert_same_output(ours(questions, contexts, **options), theirs(questions, contexts, **options))


@pytest.mark.parametrize(
    "options",
    [
        dict(truncation="only_second", max_length=40, stride=8),
        dict(truncation="only_second", max_length=32, stride=4, padding="max_length", return_tensors="pt"),
        dict(truncation="longest_first", max_length=24, stride=2, padding=True),
        dict(truncation=True, max_length=16, stride=3, return_offsets_mapping=True, return_token_type_ids=True),
    ],
)
def test_overflow_windows(pair, options):
    ours, theirs = pair
    options = dict(options, return_overflowing_tokens=True)
    questions, contexts = ["Who wrote it?", "What is sparse attention?"], [TEXTS[0], TEXTS[5] + TEXTS[6]]
    mine, reference = ours(questions, contexts, **options), theirs(questions, contexts, **options)
    assert len(reference["input_ids"]) > len(questions)  # the contexts really overflow
    assert_same_output(mine, reference)
    if "padding" not in options and options["truncation"] is True:
        assert_same_output(ours(TEXTS[0], **options), theirs(TEXTS[0], **options))


def test_decode(pair):
    ours, theirs = pair
    for text in TEXTS:
        ids = theirs(text)["input_ids"]
        for skip in (False, True):
            for clean in (None, True, False):
                mine = ours.decode(ids, skip_special_tokens=skip, clean_up_tokenization_spaces=clean)
                assert mine == theirs.decode(ids, skip_special_tokens=skip, clean_up_tokenization_spaces=clean)
            assert ours.convert_ids_to_tokens(ids, skip_special_tokens=skip) == theirs.convert_ids_to_tokens(
                ids, skip_special_tokens=skip
            )
        tokens = theirs.convert_ids_to_tokens(ids)
        assert ours.convert_tokens_to_string(tokens) == theirs.convert_tokens_to_string(tokens)
        assert ours.convert_tokens_to_ids(tokens) == theirs.convert_tokens_to_ids(tokens)
        assert ours.decode(torch.tensor(ids)) == theirs.decode(torch.tensor(ids))
    batch = theirs(TEXTS, padding=True, return_tensors="pt")["input_ids"]
    for skip in (False, True):
        mine = ours.batch_decode(batch, skip_special_tokens=skip)
        assert mine == theirs.batch_decode(batch, skip_special_tokens=skip)
        assert ours.decode(batch.tolist(), skip_special_tokens=skip) == theirs.decode(
            batch.tolist(), skip_special_tokens=skip
        )
    assert ours.convert_ids_to_tokens(5) == theirs.convert_ids_to_tokens(5)


def test_vocabulary_and_special_tokens(pair):
    ours, theirs = pair
    assert len(ours) == len(theirs)
    assert ours.vocab_size == theirs.vocab_size
    assert ours.get_vocab() == theirs.get_vocab()
    assert ours.model_max_length == theirs.model_max_length
    assert ours.special_tokens_map == theirs.special_tokens_map
    assert ours.all_special_tokens == theirs.all_special_tokens
    assert ours.all_special_ids == theirs.all_special_ids
    for name in ("bos", "eos", "unk", "sep", "pad", "cls", "mask"):
        assert getattr(ours, f"{name}_token") == getattr(theirs, f"{name}_token"), name
        assert getattr(ours, f"{name}_token_id") == getattr(theirs, f"{name}_token_id"), name
    assert ours.convert_tokens_to_ids("no-such-token") == theirs.convert_tokens_to_ids("no-such-token")
    assert ours.num_special_tokens_to_add(pair=True) == theirs.num_special_tokens_to_add(pair=True)
    if isinstance(ours, bigbird.PegasusTokenizer):
        assert ours.offset == theirs.offset
        masks = ["<mask_1>", "<mask_2>"]
        assert ours.convert_tokens_to_ids(masks) == theirs.convert_tokens_to_ids(masks)


def test_save_pretrained_loads_in_transformers(pair, tmp_path):
    ours, theirs = pair
    ours.save_pretrained(tmp_path)
    reloaded_by_them = type(theirs).from_pretrained(tmp_path)
    reloaded_by_us = type(ours).from_pretrained(tmp_path)
    for other in (reloaded_by_them, reloaded_by_us):
        assert _backend_json(other) == _backend_json(ours)
        assert other.all_special_tokens == ours.all_special_tokens
        assert other.model_max_length == ours.model_max_length
        assert_same_output(other(TEXTS, padding=True, **ALL_OUTPUTS), ours(TEXTS, padding=True, **ALL_OUTPUTS))


def _features(tokenizer, **options):
    """Examples as a Dataset hands them to a collator: one dict of unpadded lists per text, with a label."""
    encoded = tokenizer(TEXTS, **options)
    return [dict({key: encoded[key][row] for key in encoded}, label=row % 3) for row in range(len(TEXTS))]


@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(padding="longest", return_tensors="pt"),
        dict(padding="max_length", max_length=400, return_tensors="np"),
        dict(padding=True, pad_to_multiple_of=16, return_attention_mask=True),
        dict(padding=True, padding_side="left", pad_to_multiple_of=8, return_tensors="pt"),
        dict(padding=False),
    ],
)
def test_pad_matches_transformers(pair, options):
    ours, theirs = pair
    features = _features(theirs, return_token_type_ids=True, return_special_tokens_mask=True)
    assert_same_output(ours.pad([dict(f) for f in features], **options), theirs.pad(features, **options))
    as_batch = {key: [f[key] for f in features] for key in ("input_ids", "token_type_ids")}
    assert_same_output(ours.pad(dict(as_batch), **options), theirs.pad(dict(as_batch), **options))
    single = {"input_ids": features[1]["input_ids"]}
    assert_same_output(ours.pad(dict(single), **options), theirs.pad(dict(single), **options))


def test_pad_tensors_and_encodings(pair):
    ours, theirs = pair
    rows = [theirs(text, return_tensors="pt") for text in TEXTS[:4]]
    as_tensors = [{key: value[0] for key, value in row.items()} for row in rows]
    mine, reference = ours.pad(as_tensors), theirs.pad(as_tensors)
    assert isinstance(mine["input_ids"], torch.Tensor)
    assert_same_output(mine, reference)
    assert_same_output(ours.pad([ours(text) for text in TEXTS[:4]]), theirs.pad([theirs(text) for text in TEXTS[:4]]))
    arrays = theirs(TEXTS[:4], return_tensors="np", padding=True)
    assert_same_output(ours.pad(dict(arrays), pad_to_multiple_of=64), theirs.pad(dict(arrays), pad_to_multiple_of=64))


@pytest.mark.parametrize("options", [dict(), dict(pad_to_multiple_of=8), dict(padding="max_length", max_length=400)])
def test_data_collator_with_padding(pair, options):
    ours, theirs = pair
    features = _features(theirs)
    for row, feature in enumerate(features):
        feature["label"] = row / 4  # a regression target: float32 tensors, as with Transformers
    mine = transformers.DataCollatorWithPadding(tokenizer=ours, **options)([dict(f) for f in features])
    reference = transformers.DataCollatorWithPadding(tokenizer=theirs, **options)([dict(f) for f in features])
    assert_same_output(mine, reference)
    assert mine["labels"].dtype == torch.float32 and "label" not in mine
    width = mine["input_ids"].shape[1]
    assert width == options.get("max_length", width) and width % options.get("pad_to_multiple_of", 1) == 0


def test_masked_lm_collator(pair):
    ours, theirs = pair
    features = _features(theirs)
    for feature in features:
        del feature["label"]
    batches = []
    for tokenizer in (ours, theirs):
        collator = transformers.DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm_probability=0.5, seed=3)
        batches.append(collator([dict(f) for f in features]))
    assert_same_output(*batches)
    assert (batches[0]["labels"] != -100).any()
    plain = ours("Hello world", add_special_tokens=False)["input_ids"]
    mask = ours.get_special_tokens_mask([ours.eos_token_id, *plain, ours.eos_token_id], already_has_special_tokens=True)
    assert mask == [1] + [0] * len(plain) + [1]
    with pytest.raises(ValueError, match="already_has_special_tokens"):
        ours.get_special_tokens_mask([9, 10])


def test_pad_bad_input(checkpoints):
    tokenizer = bigbird.BigBirdTokenizer.from_pretrained(checkpoints["bigbird-spm"])
    with pytest.raises(ValueError, match="input_ids"):
        tokenizer.pad([{"attention_mask": [1, 1]}])
    with pytest.raises(TypeError, match="encoded_inputs"):
        tokenizer.pad("not tokenized")
    with pytest.raises(ValueError, match="padding_side"):
        tokenizer.pad({"input_ids": [[1], [1, 2]]}, padding_side="middle")
    with pytest.raises(ValueError, match="different lengths"):
        tokenizer.pad({"input_ids": [[1], [1, 2]]}, padding=False, return_tensors="pt")
    tokenizer.pad_token = None
    with pytest.raises(ValueError, match="pad_token"):
        tokenizer.pad({"input_ids": [[1], [1, 2]]})


def _fresh(variant, checkpoints):
    ours, theirs = _classes(variant)
    return ours.from_pretrained(checkpoints[variant]), theirs.from_pretrained(checkpoints[variant])


@pytest.mark.parametrize("variant", ["bigbird-spm", "bigbird-saved", "pegasus-spm", "pegasus-saved"])
def test_special_tokens_set_and_added(variant, checkpoints, tmp_path):
    """Setting, adding and saving special and plain tokens does what Transformers does, and Transformers reloads it."""
    ours, theirs = _fresh(variant, checkpoints)
    text = "say newword [PAD] zzq <e1> hello <e2> there [MASK]"
    for tokenizer in (ours, theirs):
        tokenizer.pad_token = "[PAD]"  # not in the vocabulary: its id is unk's until it is added
        assert tokenizer.add_tokens(["newword", "hello"]) == 2
        assert tokenizer.add_tokens("zzq", special_tokens=True) == 1
        assert tokenizer.add_tokens(["newword"]) == 0
        new = {"pad_token": "[PAD]", "cls_token": "<cls2>", "extra_special_tokens": ["<e1>", "<e2>"]}
        assert tokenizer.add_special_tokens(new) == 4
        tokenizer.mask_token_id = 7
    assert len(ours) == len(theirs) and ours.get_vocab() == theirs.get_vocab()
    assert ours.get_added_vocab() == theirs.get_added_vocab()
    assert ours.special_tokens_map == theirs.special_tokens_map
    assert ours.all_special_ids == theirs.all_special_ids
    assert ours.pad_token_id == theirs.pad_token_id == ours.convert_tokens_to_ids("[PAD]")
    assert_same_output(ours([text, "x"], padding=True), theirs([text, "x"], padding=True))
    ids = theirs(text)["input_ids"]
    assert ours.decode(ids, skip_special_tokens=True) == theirs.decode(ids, skip_special_tokens=True)
    ours.save_pretrained(tmp_path / "ours")
    theirs.save_pretrained(tmp_path / "theirs")
    reference = type(theirs).from_pretrained(tmp_path / "theirs")
    for reloaded in (type(theirs).from_pretrained(tmp_path / "ours"), type(ours).from_pretrained(tmp_path / "ours")):
        assert len(reloaded) == len(reference)
        assert reloaded.special_tokens_map == reference.special_tokens_map
        assert reloaded.all_special_ids == reference.all_special_ids
        assert_same_output(reloaded([text, "x"], padding=True), reference([text, "x"], padding=True))


def test_special_token_setters_reject_bad_values(checkpoints):
    tokenizer = bigbird.BigBirdTokenizer.from_pretrained(checkpoints["bigbird-spm"])
    with pytest.raises(TypeError, match="pad_token"):
        tokenizer.pad_token = 3
    with pytest.raises(ValueError, match="pad_token_id"):
        tokenizer.pad_token_id = 10**6
    with pytest.raises(ValueError, match="'my_token'"):
        tokenizer.add_special_tokens({"my_token": "<x>"})
    with pytest.raises(TypeError, match="extra_special_tokens"):
        tokenizer.add_special_tokens({"extra_special_tokens": "<x>"})
    tokenizer.pad_token_id = tokenizer.cls_token_id
    assert tokenizer.pad_token == tokenizer.cls_token


def test_mask_strips_the_space_on_its_left(checkpoints):
    ours = bigbird.BigBirdTokenizer.from_pretrained(checkpoints["bigbird-old-hub"])
    theirs = transformers.BigBirdTokenizer.from_pretrained(checkpoints["bigbird-old-hub"])
    text = "The capital of France is [MASK]."
    assert ours(text, return_offsets_mapping=True) == theirs(text, return_offsets_mapping=True)
    ids = ours(text)["input_ids"]
    assert ids.count(ours.mask_token_id) == 1
    assert ours.convert_ids_to_tokens(ids[ids.index(ours.mask_token_id) - 1]) != "▁"
    assert ours.decode(ids) == theirs.decode(ids)


def test_text_target_gives_labels(pair):
    ours, theirs = pair
    assert_same_output(ours(TEXTS[:3], text_target=TEXTS[3:6]), theirs(TEXTS[:3], text_target=TEXTS[3:6]))
    assert_same_output(ours(text_target=TEXTS[4]), theirs(text_target=TEXTS[4]))


def test_pretokenized_words(pair):
    ours, theirs = pair
    words = [["Hello", "wor", "ld"], ["café", "  ", "[MASK]"]]
    options = dict(is_split_into_words=True, padding=True, return_offsets_mapping=True)
    assert_same_output(ours(words, **options), theirs(words, **options))


def test_result_unpacks_into_a_model(checkpoints):
    tokenizer = bigbird.BigBirdTokenizer.from_pretrained(checkpoints["bigbird-spm"])

    def model(input_ids, attention_mask):
        return input_ids.shape, attention_mask.sum()

    inputs = tokenizer(["a question", "a longer question here"], padding=True, return_tensors="pt")
    shape, ones = model(**inputs)
    assert shape == inputs.input_ids.shape and shape[0] == 2
    assert ones == inputs["attention_mask"].sum()
    assert inputs.to("cpu") is inputs
    with pytest.raises(AttributeError, match="token_type_ids"):
        inputs.token_type_ids


def test_hub_id_from_the_local_cache(checkpoints, tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--someone--pegasus-tok"
    shutil.copytree(checkpoints["pegasus-saved"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    ours = bigbird.PegasusTokenizer.from_pretrained("someone/pegasus-tok", cache_dir=tmp_path)
    theirs = transformers.PegasusTokenizer.from_pretrained("someone/pegasus-tok", cache_dir=tmp_path)
    assert _backend_json(ours) == _backend_json(theirs)
    assert ours(TEXTS)["input_ids"] == theirs(TEXTS)["input_ids"]
    with pytest.raises(FileNotFoundError, match="someone/missing"):
        bigbird.PegasusTokenizer.from_pretrained("someone/missing", cache_dir=tmp_path)


def test_constructor_reads_the_files_directly(checkpoints):
    for variant, ours_class, keyword, name in [
        ("bigbird-spm", bigbird.BigBirdTokenizer, "vocab_file", "spiece.model"),
        ("pegasus-saved", bigbird.PegasusTokenizer, "tokenizer_file", "tokenizer.json"),
    ]:
        direct = ours_class(**{keyword: checkpoints[variant] / name}, model_max_length=128)
        loaded = ours_class.from_pretrained(checkpoints[variant])
        assert _backend_json(direct) == _backend_json(loaded)
        assert direct.model_max_length == 128


def test_encoding_pickles_with_its_tokens(checkpoints):
    tokenizer = bigbird.BigBirdTokenizer.from_pretrained(checkpoints["bigbird-spm"])
    encoded = tokenizer(TEXTS[:3], padding=True)
    copy = pickle.loads(pickle.dumps(encoded))
    full = tokenizer(TEXTS[:3], padding=True, return_offsets_mapping=True)  # keeps its encodings
    assert copy == encoded and copy.tokens(1) == encoded.tokens(1) == full.tokens(1)


def test_torch_is_imported_only_for_pt_tensors(checkpoints):
    code = (
        "import sys; from bigbird import BigBirdTokenizer as T; t = T.from_pretrained(sys.argv[1]); "
        "t(['a b', 'c'], padding=True, return_tensors='np'); t.pad([{'input_ids': [5]}, {'input_ids': [5, 6]}]); "
        "t.batch_decode([[5, 6]]); assert 'torch' not in sys.modules; t('a', return_tensors='pt'); "
        "assert 'torch' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code, str(checkpoints["bigbird-spm"])], check=True)


def test_bytes_are_read_as_utf8(checkpoints):
    tokenizer = bigbird.BigBirdTokenizer.from_pretrained(checkpoints["bigbird-spm"])
    assert tokenizer("café".encode())["input_ids"] == tokenizer("café")["input_ids"]


# ----- bad input -----


def test_directory_without_tokenizer_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer.json.*spiece.model"):
        bigbird.BigBirdTokenizer.from_pretrained(tmp_path)


def test_corrupt_model_file(tmp_path, checkpoints):
    original = (checkpoints["bigbird-spm"] / "spiece.model").read_bytes()
    for name, data in [("truncated", original[: len(original) // 3]), ("garbage", b"\xff" * 64), ("empty", b"")]:
        directory = tmp_path / name
        directory.mkdir()
        (directory / "spiece.model").write_bytes(data)
        with pytest.raises(ValueError, match=str(directory / "spiece.model")):
            bigbird.BigBirdTokenizer.from_pretrained(directory)


def test_corrupt_tokenizer_json(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ValueError, match="tokenizer.json"):
        bigbird.PegasusTokenizer.from_pretrained(tmp_path)


def test_spiece_parser_matches_protobuf(tmp_path, checkpoints):
    """Pieces in the usual encoding and in the odd ones (long, unset score or type, explicit defaults)."""
    from sentencepiece import sentencepiece_model_pb2

    from bigbird.tokenization_spm import read_sentencepiece_model

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString((checkpoints["pegasus-spm"] / "spiece.model").read_bytes())
    odd = [("▁" + "long" * 40, -3.5, 4), ("é" * 70, None, None), ("▁東京", -1.25, 1), ("x", 0.0, 3)]
    for text, score, kind in odd:
        piece = proto.pieces.add()
        piece.piece = text
        if score is not None:
            piece.score = score
        if kind is not None:
            piece.type = kind
    path = tmp_path / "spiece.model"
    path.write_bytes(proto.SerializeToString())
    model = read_sentencepiece_model(path)
    assert list(zip(model.pieces, model.scores, model.types)) == [(p.piece, p.score, p.type) for p in proto.pieces]
    assert model.precompiled_charsmap == proto.normalizer_spec.precompiled_charsmap
    spec = proto.trainer_spec
    ids = (model.unk_id, model.bos_id, model.eos_id, model.pad_id)
    assert ids == (spec.unk_id, spec.bos_id, spec.eos_id, spec.pad_id)
    data = path.read_bytes()
    for broken in (data.replace("▁東京".encode(), b"\xe2\x96\xe6\x9d\xb1\xff\xac", 1),
                   data.replace(("é" * 70).encode(), b"\xc3" * 140, 1)):  # fmt: skip
        path.write_bytes(broken)
        with pytest.raises(ValueError, match="spiece.model.*corrupt"):
            read_sentencepiece_model(path)


def test_model_without_needed_special_pieces(tmp_path, checkpoints):
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString((checkpoints["bigbird-spm"] / "spiece.model").read_bytes())
    proto.pieces[3].piece = "<not-unk>"
    (tmp_path / "spiece.model").write_bytes(proto.SerializeToString())
    with pytest.raises(ValueError, match="spiece.model.*<unk>"):
        bigbird.BigBirdTokenizer.from_pretrained(tmp_path)
    # BigBird's layout (</s> at 1, <s> at 2, <unk> at 3) is not Pegasus' (pad 0, eos 1, unk 2 then pieces)
    proto.pieces[0].piece = "<unk>"
    (tmp_path / "spiece.model").write_bytes(proto.SerializeToString())
    with pytest.raises(ValueError, match="spiece.model.*Pegasus"):
        bigbird.PegasusTokenizer.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda t: t(123), "`text`"),
        (lambda t: t(["fine", None]), r"`text\[1\]`"),
        (lambda t: t("fine", 4.5), "`text_pair`"),
        (lambda t: t(["a", "b"], "not a list"), "`text_pair`"),
        (lambda t: t(["a", "b"], ["only one"]), "`text_pair`"),
        (lambda t: t("ok", padding="sideways"), "padding"),
        (lambda t: t("ok", truncation="middle"), "truncation"),
        (lambda t: t("ok", return_tensors="tf"), "return_tensors"),
    ],
)
def test_bad_arguments(checkpoints, call, message):
    tokenizer = bigbird.BigBirdTokenizer.from_pretrained(checkpoints["bigbird-spm"])
    with pytest.raises((TypeError, ValueError), match=message):
        call(tokenizer)


def test_invalid_utf8(checkpoints):
    tokenizer = bigbird.PegasusTokenizer.from_pretrained(checkpoints["pegasus-spm"])
    with pytest.raises(ValueError, match="`text`.*UTF-8"):
        tokenizer(b"caf\xe9")
    with pytest.raises(ValueError, match=r"`text_pair\[0\]`"):
        tokenizer(["ok"], ["lone surrogate \udcff"])
    with pytest.raises(ValueError, match="`text` is not valid Unicode"):
        tokenizer("lone \ud800 surrogate")
    with pytest.raises(ValueError, match=r"`text\[1\]`"):
        tokenizer([["fine", "words"], ["a", "\udcff"]], is_split_into_words=True)


def test_unknown_option(checkpoints):
    with pytest.raises(TypeError, match="not_an_option"):
        bigbird.BigBirdTokenizer.from_pretrained(checkpoints["bigbird-spm"], not_an_option=1)
