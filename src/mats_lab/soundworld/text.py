"""Text generators over scene metadata: captions, label descriptions, QA and multiple choice.

Everything here is a pure function of (scene or label, rng): no audio is read. Variety comes from
synonyms, word order, relations ("while", "followed by", "in the background") and counting.
Label descriptions are written offline from the catalogue's descriptions and templates; when the
environment variable MATS_LLM_ENDPOINT names an OpenAI-compatible server, `llm_description` can
rephrase them (optional, not used by default builds, so builds stay deterministic).
"""

from __future__ import annotations

import json
import os
import urllib.request

import numpy as np

from mats.data.instructions import SOUNDWORLD

from .catalogue import pick
from .scenes import Event, Scene, overlaps

NUMBERS = ["zero", "one", "two", "three", "four", "five"]
HEAR = ["can be heard", "is heard", "is audible", "sounds"]
OPEN_1 = [
    "{A}.",
    "{A} {hear}.",
    "You can hear {A}.",
    "There is {A}.",
    "The sound of {A}.",
    "A recording of {A}.",
    "In this clip, {A} {hear}.",
]
SEQ_2 = [
    "{A}, followed by {B}.",
    "{A} and then {B}.",
    "First {A}, then {B}.",
    "{A} before {B}.",
    "{A} {hear}, after which {B}.",
    "{A}; afterwards {B}.",
]
SIM_2 = [
    "{A} while {B}.",
    "{A} as {B} at the same time.",
    "{A} together with {B}.",
    "{A} and {B} at once.",
    "While {A}, {B} {hear}.",
]
THREE = [
    "{A}, then {B}, and finally {C}.",
    "{A}, followed by {B} and {C}.",
    "Three sounds: {A}, {B} and {C}.",
    "First {A}, next {B}, then {C}.",
    "{A}, {B} and {C} one after another.",
]
BG = [
    "{S} with {X} in the background",
    "{S} over {X} in the background",
    "{S}, {X} in the background",
    "{S} against a background of {X}",
]
LEVEL_WORDS = {"quiet": ["faint", "quiet", "soft", "distant"], "loud": ["loud", "loud", "strong", "close"]}
CAPTION_INSTR = SOUNDWORLD["sound_caption"]
MUSIC_INSTR = SOUNDWORLD["music_caption"]
CLASS_INSTR = SOUNDWORLD["classification"]
INSTR_CLASS_INSTR = SOUNDWORLD["instrument_classification"]
TEMPO = {
    "slow": ["slow", "unhurried", "gentle", "leisurely"],
    "moderate": ["moderate", "medium-tempo", "steady"],
    "fast": ["fast", "lively", "quick", "upbeat"],
}
PATTERN = {
    "melody": ["melody", "tune", "melodic line"],
    "chords": ["chord progression", "series of chords", "sequence of sustained chords"],
    "arpeggio": ["arpeggio", "broken-chord figure", "arpeggiated pattern"],
    "beat": ["beat", "rhythm", "groove"],
}
REGISTER = {"low": ["low", "deep"], "middle": ["middle", "mid-range"], "high": ["high", "bright"]}
MASS_NOUNS = {
    "fireworks",
    "coins",
    "crickets",
    "bagpipes",
    "strings",
    "applause",
    "thunder",
    "fire",
    "wind",
    "water",
    "traffic",
    "machinery",
    "speech",
    "electric sparks",
    "ocean waves",
    "birds chirping",
    # 0ad-data's labels ("the sound of rain", never "a rain")
    "rain",
    "footsteps",
    "rustling leaves",
    "chopping meat",
}
QUESTION_CATS = {"animal": "animal", "musical instrument": "instrument", "vehicle": "vehicle"}


def article(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def is_mass(label: str) -> bool:
    """A label that takes no article: "the sound of slurping", "... of fireworks"."""
    return label.endswith("ing") or label in MASS_NOUNS


def label_noun(label: str) -> str:
    """The label as a noun phrase: "a dog", but "rain" and "hammering" bare."""
    return label if is_mass(label) else article(label)


def cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def event_phrase(e: Event, rng: np.random.Generator) -> str:
    """A noun phrase naming the event: its catalogue description or one built from its label."""
    if e.kind == "speech":
        who, said = e.meta.get("speaker", "person"), e.meta.get("text", "")
        return pick(rng, [f'a {who} saying "{said}"', f'a {who} speaking the words "{said}"', f'a {who} says "{said}"'])
    if e.kind == "music":
        return pick(rng, [article(e.label) + " playing", "the sound of " + article(e.label), article(e.label)])
    options = [e.description, e.description, "the sound of " + label_noun(e.label)]
    if not is_mass(e.label):
        options.append(article(e.label) + " " + pick(rng, ["noise", "sound"]))
    return pick(rng, options)


def sound_caption(scene: Scene, rng: np.random.Generator) -> str:
    ev = scene.events
    phr = [event_phrase(e, rng) for e in ev]
    if scene.level in LEVEL_WORDS and rng.random() < 0.5:
        word = pick(rng, LEVEL_WORDS[scene.level])
        head, _, rest = phr[0].partition(" ")
        if head in ("a", "an") and rest:
            phr[0] = article(f"{word} {rest}")
    hear = pick(rng, HEAR)
    if len(ev) == 1:
        s = pick(rng, OPEN_1).format(A=phr[0], hear=hear)
    elif len(ev) == 2:
        tpl = SIM_2 if overlaps(ev[0], ev[1]) else SEQ_2
        s = pick(rng, tpl).format(A=phr[0], B=phr[1], hear=hear)
    else:
        s = pick(rng, THREE).format(A=phr[0], B=phr[1], C=phr[2])
    if scene.background is not None:
        s = pick(rng, BG).format(S=s.rstrip("."), X=event_phrase(scene.background, rng)) + "."
    return cap(s)


def music_caption(scene: Scene, rng: np.random.Generator) -> str:
    e0 = scene.events[0]
    tempo = pick(rng, TEMPO.get(e0.meta.get("tempo", "moderate"), ["steady"]))
    pattern = pick(rng, PATTERN.get(e0.meta.get("pattern", "melody"), ["melody"]))
    reg = e0.meta.get("register", "")
    reg_txt = f" in a {pick(rng, REGISTER[reg])} register" if reg in REGISTER and rng.random() < 0.7 else ""
    names = [e.label for e in scene.events]
    if len(names) == 1:
        s = pick(
            rng,
            [
                f"{article(names[0])} plays {article(tempo + ' ' + pattern)}{reg_txt}.",
                f"A solo {names[0]} performing {article(tempo + ' ' + pattern)}{reg_txt}.",
                f"{article(tempo + ' ' + pattern)} played on {article(names[0])}{reg_txt}.",
                f"Solo {names[0]} music with {article(tempo + ' ' + pattern)}.",
            ],
        )
    else:
        s = pick(
            rng,
            [
                f"{article(names[0])} and {article(names[1])} play {article(tempo + ' ' + pattern)} together.",
                f"A duet of {names[0]} and {names[1]} with {article(tempo + ' ' + pattern)}.",
                f"{article(names[1])} accompanies {article(names[0])} in {article(tempo)} piece.",
                f"{article(tempo + ' ' + pattern)} played by {article(names[0])} while {article(names[1])} joins in.",
            ],
        )
    if scene.level in LEVEL_WORDS and rng.random() < 0.4:
        s = s.rstrip(".") + pick(
            rng,
            {"quiet": [", played softly.", ", heard quietly."], "loud": [", played loudly.", ", at a high volume."]}[
                scene.level
            ],
        )
    return cap(s)


def speech_caption(scene: Scene, rng: np.random.Generator) -> str:
    e = scene.events[0]
    who, said = e.meta.get("speaker", "person"), e.meta.get("text", "")
    s = pick(
        rng,
        [
            f'A {who} says "{said}".',
            f'A {who} speaks: "{said}".',
            f'The {who} clearly says "{said}".',
            f'Someone, a {who}, says "{said}".',
            f'A {who}\'s voice saying "{said}".',
        ],
    )
    if scene.background is not None:
        s = pick(rng, BG).format(S=s.rstrip("."), X=event_phrase(scene.background, rng)) + "."
    return s


def caption(scene: Scene, rng: np.random.Generator) -> str:
    return {"sound": sound_caption, "music": music_caption, "speech": speech_caption}[scene.kind](scene, rng)


def label_description(label: str, category: str, descriptions: list[str], rng: np.random.Generator) -> str:
    """A description written from a class label (paper: GPT wrote these; here templates over the
    catalogue's own one-line descriptions)."""
    d = pick(rng, descriptions) if descriptions else label_noun(label)
    cat = "" if category in ("", "musical instrument") else category
    options = [
        cap(d) + ".",
        f"The sound of {label_noun(label)}.",
        f"A recording of {d}.",
        f"This is the sound of {d}.",
        cap(f"{d}, a typical {label} sound."),
    ]
    if cat:
        options.append(f"{cap(article(cat))} sound: {d}.")
    if category == "musical instrument":
        options.append(f"Music played on {article(label)}.")
    return pick(rng, options)


def llm_description(label: str, category: str, endpoint: str | None = None, timeout: float = 20.0) -> str | None:
    """Optional: ask an OpenAI-compatible chat endpoint (env MATS_LLM_ENDPOINT) for a description."""
    endpoint = endpoint or os.environ.get("MATS_LLM_ENDPOINT")
    if not endpoint:
        return None
    body = {
        "model": os.environ.get("MATS_LLM_MODEL", "default"),
        "temperature": 0.7,
        "messages": [
            {
                "role": "user",
                "content": f"Describe in one sentence what the sound of '{label}' "
                f"({category}) is like, as an audio caption.",
            }
        ],
    }
    req = urllib.request.Request(
        endpoint.rstrip("/") + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (user-configured endpoint)
        return json.loads(resp.read())["choices"][0]["message"]["content"].strip()


# --- QA ----------------------------------------------------------------------------------------


def qa_items(scene: Scene, vocab: dict[str, list[str]], rng: np.random.Generator) -> list[dict]:
    """Question/answer pairs true of `scene`. vocab: {category: [labels]} to draw absent labels from.
    Each item: {"question", "answer", "answer_type", "choices_from"} (choices_from: the list an MCQ
    may draw distractors from, or None)."""
    out: list[dict] = []
    fg = scene.events
    present = {e.label for e in scene.all_events()}
    all_labels = sorted({lab for labs in vocab.values() for lab in labs})
    # presence yes/no
    e = pick(rng, fg)
    if e.kind != "speech":
        out.append(
            {
                "question": pick(
                    rng,
                    [
                        f"Is there {label_noun(e.label)} in the recording?",
                        f"Can you hear {label_noun(e.label)}?",
                        f"Does the audio contain {label_noun(e.label)} sound?",
                    ],
                ),
                "answer": "yes",
                "answer_type": "yes_no",
                "choices_from": None,
            }
        )
    same_cat = [lab for lab in vocab.get(e.category, []) if lab not in present] or [
        lab for lab in all_labels if lab not in present
    ]
    if same_cat:
        absent = pick(rng, same_cat)
        out.append(
            {
                "question": pick(
                    rng, [f"Is there {label_noun(absent)} in the recording?", f"Can you hear {label_noun(absent)}?"]
                ),
                "answer": "no",
                "answer_type": "yes_no",
                "choices_from": None,
            }
        )
    # is someone speaking
    speaking = scene.kind == "speech"
    out.append(
        {
            "question": pick(
                rng, ["Is someone speaking?", "Is there a human voice speaking?", "Does anyone talk in this clip?"]
            ),
            "answer": "yes" if speaking else "no",
            "answer_type": "yes_no",
            "choices_from": None,
        }
    )
    if scene.kind == "speech":
        said = fg[0].meta.get("text", "")
        out.append(
            {
                "question": pick(rng, ["Which word is said?", "What does the speaker say?", "What words are spoken?"]),
                "answer": said,
                "answer_type": "open",
                "choices_from": "speech_text",
            }
        )
        out.append(
            {
                "question": "Is the speaker a man or a woman?",
                "answer": fg[0].meta.get("speaker", "man"),
                "answer_type": "open",
                "choices_from": ["man", "woman"],
            }
        )
    # which came first
    if scene.kind == "sound" and len(fg) >= 2 and fg[1].onset - fg[0].onset > 0.5:
        a, b = fg[0].label, fg[1].label
        pair = [a, b] if rng.random() < 0.5 else [b, a]
        out.append(
            {
                "question": f"Which sound comes first, the {pair[0]} or the {pair[1]}?",
                "answer": a,
                "answer_type": "open",
                "choices_from": [a, b],
            }
        )
    # how many sources
    if scene.kind in ("sound", "music"):
        n = len(fg)
        what = "instruments are playing" if scene.kind == "music" else "distinct sound events are there"
        out.append(
            {
                "question": f"How many {what}"
                + ("" if scene.background is None or scene.kind == "music" else ", not counting the background")
                + "?",
                "answer": NUMBERS[n],
                "answer_type": "open",
                "choices_from": NUMBERS[1:5],
            }
        )
    # what animal / instrument / vehicle
    for ev in fg:
        if ev.category in QUESTION_CATS:
            noun = QUESTION_CATS[ev.category]
            others = [x.label for x in fg if x.category == ev.category]
            if len(others) == 1:
                out.append(
                    {
                        "question": pick(
                            rng,
                            [
                                f"What {noun} can be heard?",
                                f"Which {noun} is making the sound?",
                                f"What kind of {noun} is in the recording?",
                            ],
                        ),
                        "answer": ev.label,
                        "answer_type": "open",
                        "choices_from": ev.category,
                    }
                )
            break
    # loud or quiet
    if scene.level in ("loud", "quiet"):
        out.append(
            {
                "question": pick(rng, ["Is the sound loud or quiet?", "Is this recording loud or soft?"]),
                "answer": scene.level,
                "answer_type": "open",
                "choices_from": ["loud", "quiet"],
            }
        )
    # fast or slow
    if scene.kind == "music" and fg[0].meta.get("tempo") in ("slow", "fast"):
        out.append(
            {
                "question": pick(rng, ["Is the music fast or slow?", "Is the tempo fast or slow?"]),
                "answer": fg[0].meta["tempo"],
                "answer_type": "open",
                "choices_from": ["fast", "slow"],
            }
        )
    if scene.kind == "speech" and fg[0].meta.get("rate") in ("slow", "fast"):
        out.append(
            {
                "question": "Does the person speak fast or slowly?",
                "answer": "fast" if fg[0].meta["rate"] == "fast" else "slowly",
                "answer_type": "open",
                "choices_from": ["fast", "slowly"],
            }
        )
    return out


def mcq_from(item: dict, vocab: dict[str, list[str]], speech_texts: list[str], rng: np.random.Generator) -> dict | None:
    """Turn an open QA item into an MMAU-style multiple-choice item (2-4 options, shuffled)."""
    src = item["choices_from"]
    if item["answer_type"] != "open" or src is None:
        return None
    if src == "speech_text":
        pool = speech_texts
    elif isinstance(src, str):
        pool = vocab.get(src, [])
    else:
        pool = list(src)
    distractors = sorted({p for p in pool if p != item["answer"]})
    if not distractors:
        return None
    k = min(3, len(distractors))
    picks = [distractors[i] for i in rng.choice(len(distractors), size=k, replace=False)]
    choices = picks + [item["answer"]]
    choices = [choices[i] for i in rng.permutation(len(choices))]
    return {"question": item["question"], "choices": choices, "answer": item["answer"]}
