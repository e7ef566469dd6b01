"""The fixed texts the models are given: the instruction phrasings of each text corpus, the
instructions of the API's verbs, and the CLAP zero-shot class prompt.

Each corpus keeps its own named set of phrasings. The sets differ (SoundWorld has six caption
phrasings, the importers five, the synthetic set three), and each is part of the data built with
it: merging them would change every SoundWorld build, imported corpus and synthetic run. They
live in one module so that what the models are asked is written once and can be read in one place.
"""

from __future__ import annotations

# What `Pipeline.caption` / `classify` ask (mats.api) unless told otherwise: the first phrasing of
# SoundWorld's sets, on which the shipped models were trained, and of the synthetic set.
CAPTION_INSTRUCTION = "Describe the audio."
CLASSIFY_INSTRUCTION = "What is the sound?"

# The text that stands for a class label in CLAP zero-shot classification: the label itself.
# mini-CLAP is trained on this same form (the label captions of mats_lab.clap_train), so that is
# what `mats eval --zero-shot`, clap_train's evaluation and the report's gap analysis use.
ZERO_SHOT_PROMPT = "{label}"

# mats_lab.soundworld: the AudioTIA records of a SoundWorld build.
SOUNDWORLD: dict[str, tuple[str, ...]] = {
    "sound_caption": (
        CAPTION_INSTRUCTION,
        "Write a caption for this audio.",
        "What can be heard in this recording?",
        "Describe the sound in one sentence.",
        "Caption the audio clip.",
        "What is happening in this audio?",
    ),
    "music_caption": (
        "Describe the music.",
        "Write a caption for this music.",
        "Describe this piece of music in one sentence.",
        "What does this music sound like?",
        "Caption the music clip.",
    ),
    "classification": (
        CLASSIFY_INSTRUCTION,
        "Classify the sound.",
        "Which class does this audio belong to?",
        "Name the sound source in one or two words.",
        "What sound is this? Answer with a label.",
        "Give the class label of this audio.",
    ),
    "instrument_classification": (
        "Which instrument is this?",
        "Classify the instrument.",
        "What instrument is playing?",
        "Name the instrument in one or two words.",
    ),
}

# mats.data.importers: the records made from real caption and label corpora.
IMPORTED: dict[str, tuple[str, ...]] = {
    "sound_caption": (
        "Describe the audio.",
        "Write a short caption for this sound.",
        "What can be heard in this recording?",
        "Describe what you hear in one sentence.",
        "Listen to this audio clip and provide its caption.",
    ),
    "music_caption": (
        "Describe the music.",
        "Write a caption for this piece of music.",
        "Describe the instruments, mood and style of this music.",
        "Listen to this music clip and describe it.",
    ),
    "classification": (
        "Classify the sound.",
        "What is the sound event in this audio?",
        "Which sound class does this audio belong to?",
        "Name the source of this sound.",
    ),
}

# mats.data.synthetic: the smoke-test set of the tiny preset.
SYNTHETIC: dict[str, tuple[str, ...]] = {
    "sound_caption": (CAPTION_INSTRUCTION, "Write a caption for this sound.", "What can be heard?"),
    "classification": (CLASSIFY_INSTRUCTION, "Classify this sound.", "Name the sound source."),
}
