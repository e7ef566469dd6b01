import inspect

from mats.api import Pipeline
from mats.data import instructions as I


def test_the_api_asks_what_the_shipped_models_were_trained_on():
    # The shipped models are trained on SoundWorld: the verbs' default instructions are among
    # its phrasings, as they are among the synthetic set's.
    assert I.CAPTION_INSTRUCTION in I.SOUNDWORLD["sound_caption"]
    assert I.CLASSIFY_INSTRUCTION in I.SOUNDWORLD["classification"]
    assert I.CAPTION_INSTRUCTION in I.SYNTHETIC["sound_caption"]
    assert I.CLASSIFY_INSTRUCTION in I.SYNTHETIC["classification"]
    default = lambda verb: inspect.signature(verb).parameters["instruction"].default  # noqa: E731
    assert default(Pipeline.caption) == I.CAPTION_INSTRUCTION
    assert default(Pipeline.classify) == I.CLASSIFY_INSTRUCTION


def test_phrasing_sets_are_distinct_non_empty_sentences():
    for sets in (I.SOUNDWORLD, I.IMPORTED, I.SYNTHETIC):
        for phrasings in sets.values():
            assert phrasings and len(set(phrasings)) == len(phrasings)
            assert all(p and p == p.strip() and p[-1] in ".?" for p in phrasings)


def test_zero_shot_prompt_has_the_label_slot():
    assert I.ZERO_SHOT_PROMPT.format(label="dog") == "dog"
