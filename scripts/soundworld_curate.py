"""Write src/mats_lab/soundworld/curated.json: the curated mapping of SoundWorld recordings.

The mapping was written by reading each package's own descriptions (opensfx.cat strings, tuxpaint
.txt files, drumkit.xml names, file names) next to listen-through statistics of every file
(duration, RMS, active time above -40 dB of peak). The rules below ARE the curation: each names a
recording pattern and the everyday label, category and description it gets, or the reason it is
excluded. Statistics exclude silence and too-short blips automatically.

Run once after unpacking all packages (the build does it):
    .venv/bin/python scripts/soundworld_curate.py [CACHE]
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from mats_lab.soundworld import render, sources  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "src" / "mats_lab" / "soundworld" / "curated.json"

X = None  # marker: excluded (the third field is the reason)

# (regex on recording id, label, category, description) or (regex, X, reason)
OPENSFX = {
    0: X,
    1: X,
    2: ("splash", "water", "something heavy splashing into water"),
    3: ("steam whistle", "machinery", "a factory steam whistle blowing"),
    4: ("steam train", "vehicle", "a steam train sounding its whistle as it leaves"),
    5: ("steam train", "vehicle", "a steam engine whistling as it enters a tunnel"),
    6: ("ship horn", "vehicle", "the deep horn of a large ship"),
    7: ("ship horn", "vehicle", "a ferry blowing its horn"),
    8: ("propeller plane", "vehicle", "a small propeller plane starting its engine"),
    9: ("jet plane", "vehicle", "a passenger jet roaring as it takes off"),
    10: ("train horn", "vehicle", "a diesel locomotive horn in the distance"),
    11: ("machinery", "machinery", "heavy mining machinery grinding and clanking"),
    12: ("electric sparks", "machinery", "electricity crackling and sparking"),
    13: ("steam hissing", "machinery", "steam hissing from a steam engine"),
    14: ("level crossing bell", "alarm", "the ringing bell of a railway level crossing"),
    15: ("metal clang", "impact", "a heavy metal object dropped with a clang"),
    16: ("metal clang", "impact", "metal banging and clattering"),
    17: ("crash", "impact", "a loud crash of breaking metal"),
    18: ("explosion", "impact", "a loud explosion"),
    19: ("crash", "impact", "a big crash of metal and debris"),
    20: ("cash register", "household", "a cash register ringing up a sale"),
    21: (X, "interface beep shorter than 0.1 s"),
    22: ("morse code", "alarm", "beeps of morse code"),
    23: (X, "0.16 s skid fragment, too short to recognise"),
    24: ("helicopter", "vehicle", "the rotor of a helicopter thudding"),
    25: ("truck engine", "vehicle", "a truck engine starting and pulling away"),
    26: ("truck engine", "vehicle", "a truck starting and pulling away, honking its horn"),
    27: ("bus", "vehicle", "a bus starting and driving off"),
    28: ("bus", "vehicle", "an old bus engine starting"),
    29: ("applause", "human", "a large audience clapping and cheering"),
    30: ("crowd", "human", "a crowd saying oooh"),
    31: (X, "0.34 s game splat, no everyday meaning"),
    32: (X, "0.18 s kick-drum splat used as a game cue"),
    33: ("jackhammer", "machinery", "a jackhammer pounding"),
    35: ("car horn", "vehicle", "a car horn honking"),
    36: ("sheep", "animal", "sheep bleating in a field"),
    37: ("cow", "animal", "a cow mooing"),
    38: ("horse", "animal", "a horse neighing"),
    39: ("hammering", "tools", "a blacksmith hammering metal"),
    40: ("circular saw", "tools", "a circular saw cutting wood"),
    41: (X, "0.09 s shaker fragment"),
    42: (X, "toyland cartoon mix with no single source"),
    43: (X, "toyland cartoon mix with no single source"),
    44: (X, "toyland cartoon mix with no single source"),
    45: (X, "0.06 s shaker fragment"),
    46: ("bubbling", "water", "bubbles gurgling in water"),
    47: (X, "0.09 s plop, too short"),
    48: (X, "toyland cartoon mix with no single source"),
    49: ("slurping", "human", "a cartoon slurp of a drink"),
    51: ("bubbling", "water", "water bubbling and gurgling"),
    52: ("wind", "nature", "wind blowing"),
    53: (X, "toyland cartoon crash mix"),
    54: ("tree falling", "nature", "a tree cracking and crashing to the ground"),
    55: ("chopping wood", "tools", "an axe chopping a tree"),
    56: ("chainsaw", "tools", "a chainsaw cutting wood"),
    57: ("wind", "nature", "a strong wind howling"),
    58: (X, "toyland cartoon crash mix"),
    59: ("jet plane", "vehicle", "a fast jet roaring past"),
    60: (X, "cartoon mix of a bus and a boing"),
    61: ("jet plane", "vehicle", "military jets roaring overhead"),
    62: ("bus", "vehicle", "a bus starting with a bicycle horn toot"),
    63: (X, "cartoon mix of a truck and a squeaky toy"),
    64: (X, "cartoon mix of a bus and a boink"),
    65: ("train", "vehicle", "an electric train leaving a station"),
    66: ("bird", "animal", "a tropical bird calling"),
    67: ("lion", "animal", "a lion roaring"),
    68: ("monkey", "animal", "monkeys screeching"),
    69: ("propeller plane", "vehicle", "a propeller plane taking off"),
    70: (X, "cartoon mix of a jet, a car and a swoosh"),
    71: ("train", "vehicle", "a train passing by"),
    72: ("bird", "animal", "a tropical bird singing"),
}

ANIMAL_SOUND = {  # tuxpaint animal -> (label, description)
    "frog": ("frog", "a frog croaking"),
    "blackbird": ("bird", "a blackbird singing"),
    "crow": ("crow", "a crow cawing"),
    "cuckoo": ("cuckoo", "a cuckoo calling"),
    "drake": ("duck", "a drake quacking"),
    "duck": ("duck", "a duck quacking"),
    "gander": ("goose", "a goose honking"),
    "hen": ("chicken", "a hen clucking"),
    "heron_greatblue_flying": ("bird", "a heron calling as it flies"),
    "lark": ("bird", "a lark singing"),
    "owl": ("owl", "an owl hooting"),
    "penguin": ("penguin", "a penguin calling"),
    "quetzal": ("bird", "a quetzal calling"),
    "rooster": ("rooster", "a rooster crowing"),
    "seagull": ("seagull", "seagulls crying"),
    "tucan": ("bird", "a toucan croaking"),
    "turkey": ("turkey", "a turkey gobbling"),
    "vulture": ("bird", "a vulture screeching"),
    "bee": ("bee", "a bee buzzing"),
    "grasshopper": ("insect", "a grasshopper chirping"),
    "hornet": ("bee", "a hornet buzzing"),
    "mosquito": ("mosquito", "a mosquito whining"),
    "xanthia": ("insect", "a moth fluttering"),
    "chimp": ("monkey", "a chimpanzee screaming"),
    "gorilla": ("gorilla", "a gorilla grunting"),
    "dolphin": ("dolphin", "a dolphin clicking and whistling"),
    "orca": ("whale", "an orca calling"),
    "sea_lion": ("sea lion", "a sea lion barking"),
    "whale": ("whale", "a whale singing"),
    "badger": ("badger", "a badger snuffling"),
    "bear": ("bear", "a bear growling"),
    "bison": ("cow", "a bison grunting"),
    "bull": ("cow", "a bull bellowing"),
    "cow": ("cow", "a cow mooing"),
    "cow_white": ("cow", "a cow mooing"),
    "goat": ("goat", "a goat bleating"),
    "mountaingoat": ("goat", "a mountain goat bleating"),
    "ram": ("sheep", "a ram bleating"),
    "sheep": ("sheep", "a sheep bleating"),
    "sheep_lamb": ("sheep", "a lamb bleating"),
    "camel": ("camel", "a camel groaning"),
    "dromedary": ("camel", "a dromedary grunting"),
    "lion": ("lion", "a lion roaring"),
    "tiger": ("tiger", "a tiger growling"),
    "caribou": ("deer", "a caribou grunting"),
    "deer": ("deer", "a deer calling"),
    "doe": ("deer", "a doe bleating"),
    "dog": ("dog", "a dog barking"),
    "fox": ("fox", "a fox yelping"),
    "elephant": ("elephant", "an elephant trumpeting"),
    "donkey": ("donkey", "a donkey braying"),
    "horse": ("horse", "a horse neighing"),
    "zebra": ("horse", "a zebra barking"),
    "ferret": ("ferret", "a ferret chattering"),
    "hippopotamus": ("hippopotamus", "a hippopotamus grunting"),
    "pig": ("pig", "a pig oinking"),
    "pig_golden": ("pig", "a pig grunting"),
    "pig_golden2": ("pig", "a pig grunting"),
    "beaver": ("beaver", "a beaver gnawing"),
    "mouse": ("mouse", "a mouse squeaking"),
    "rabbit": ("rabbit", "a rabbit squeaking"),
    "squirrel": ("squirrel", "a squirrel chattering"),
    "koala": ("koala", "a koala bellowing"),
    "nandou": ("bird", "a rhea booming"),
    "iguana": ("lizard", "an iguana hissing"),
    "giraffe": ("giraffe", "a giraffe snorting"),
    "wombat": ("wombat", "a wombat grunting"),
    "blackcat": ("cat", "a cat meowing"),
    "bat_left": ("bat", "a bat squeaking"),
}

TUXPAINT_OTHER = {
    "food/fruit/apple_red": ("biting an apple", "human", "someone crunching into an apple"),
    "hobbies/camera_35mm": ("camera shutter", "household", "a camera shutter clicking"),
    "hobbies/music/percussion/cymbal_crash": ("cymbal", "musical instrument", "a crash cymbal ringing"),
    "hobbies/music/percussion/drum_tomtom_floor": ("tom-tom drum", "musical instrument", "a floor tom drum being hit"),
    "hobbies/music/percussion/drumkit": ("drum kit", "musical instrument", "a drummer playing a drum kit"),
    "hobbies/music/string/cello": ("cello", "musical instrument", "a cello being played"),
    "hobbies/music/string/violin": ("violin", "musical instrument", "a violin being played"),
    "hobbies/music/wind/bassoon": ("bassoon", "musical instrument", "a bassoon playing a melody"),
    "household/Washing-machine": ("washing machine", "household", "a washing machine running"),
    "household/arttools/scissors_small_closed": ("scissors", "household", "scissors snipping"),
    "household/arttools/scissors_small_open": ("scissors", "household", "scissors snipping"),
    "household/dishes/bottle": ("bottle", "household", "a glass bottle clinking"),
    "household/dishes/glass": ("pouring water", "water", "water being poured into a glass"),
    "household/kettle": ("kettle", "household", "an electric kettle switching on"),
    "household/rubberduck": ("squeaky toy", "household", "a rubber duck squeaking"),
    "household/toilet": ("toilet flush", "household", "a toilet being flushed"),
    "household/tools/hammer": ("hammering", "tools", "a hammer hitting a nail"),
    "household/tools/mallet_metal": ("hammering", "tools", "a metal mallet striking"),
    "household/tools/saw": ("sawing", "tools", "a hand saw cutting wood"),
    "household/vacuum_cleaner": ("vacuum cleaner", "household", "a vacuum cleaner running"),
    "naturalforces/lightningbolt": ("thunder", "nature", "a clap of thunder"),
    "seasonal/newyears/fireworks": ("fireworks", "impact", "fireworks exploding"),
    "town/flags/checkeredflag": ("race car", "vehicle", "race cars speeding past"),
    "vehicles/emergency/firetruck": ("siren", "alarm", "a fire truck driving by with its siren wailing"),
}

# Regex rules for the packages without one description per file: (pattern, label, category, description)
RULES: list[tuple[str, str | None, str, str]] = [
    # --- wesnoth: keep real-world sounds, drop fantasy voices, spells and interface sounds
    (
        r"wesnoth/(join|select|checkbox|timer|contract|slider|chat-.*|leave|select-unit|gamestart|receive|expand|arrive|button)$",
        X,
        "",
        "game interface blip",
    ),
    (r"wesnoth/bell$", "bell", "alarm", "a small bell ringing"),
    (r"wesnoth/wolf-(growl|hit|die)-\d", "wolf", "animal", "a wolf growling and snarling"),
    (r"wesnoth/horse-(hit|die)", "horse", "animal", "a horse whinnying"),
    (r"wesnoth/horse(-elf)?-canter", "horse galloping", "animal", "horse hooves cantering"),
    (r"wesnoth/bat-hit", "bat", "animal", "a bat squeaking"),
    (r"wesnoth/bat-flapping", "wings flapping", "animal", "wings flapping"),
    (r"wesnoth/human-female-(hit|die)", "woman screaming", "human", "a woman crying out in pain"),
    (r"wesnoth/human-(old-)?(hit|die)", "man shouting", "human", "a man groaning and shouting in pain"),
    (r"wesnoth/(dwarf-laugh)$", "laughing", "human", "a man laughing heartily"),
    (r"wesnoth/witches-laugh$", "laughing", "human", "a woman cackling with laughter"),
    (r"wesnoth/(groan|ugg)$", "man shouting", "human", "a man groaning"),
    (r"wesnoth/sword-\d", "sword", "weapon", "swords clashing"),
    (r"wesnoth/(bow|bow-puny|crossbow)(-fire)?$", "bow and arrow", "weapon", "an arrow shot from a bow"),
    (r"wesnoth/(bow|bow-puny|crossbow)(-fire)?-miss$", "whoosh", "weapon", "an arrow whooshing past"),
    (
        r"wesnoth/(axe|hatchet|mace|club|flail|staff|fist|spear|knife|dagger-swish|throwing-knife)$",
        "hit",
        "impact",
        "a heavy blow landing",
    ),
    (
        r"wesnoth/(axe|hatchet|mace|club|flail|staff|fist|spear|knife|throwing-knife|sling|sling-big|claws)-miss$",
        "whoosh",
        "impact",
        "something swishing through the air",
    ),
    (r"wesnoth/throw-\d", "whoosh", "impact", "something thrown whooshing through the air"),
    (r"wesnoth/miss-\d", "whoosh", "impact", "a swing whooshing through the air"),
    (r"wesnoth/(gunshot|thunderstick|dragonstick)$", "gunshot", "weapon", "a gun firing"),
    (r"wesnoth/(thunderstick|dragonstick)-miss$", "gunshot", "weapon", "a gun firing"),
    (r"wesnoth/explosion$", "explosion", "impact", "an explosion"),
    (r"wesnoth/lightning$", "thunder", "nature", "a crack of thunder"),
    (r"wesnoth/(fire|flame-big|torch|melee-fire)$", "fire", "nature", "flames roaring"),
    (r"wesnoth/cave-in$", "rocks falling", "nature", "rocks crumbling and falling"),
    (r"wesnoth/rumble$", "rumble", "nature", "a deep rumbling"),
    (r"wesnoth/water-blast$", "splash", "water", "a big splash of water"),
    (r"wesnoth/open-chest$", "creaking", "household", "a wooden chest creaking open"),
    (r"wesnoth/gold$", "coins", "household", "coins jingling"),
    (r"wesnoth/horn-signals/horn-\d", "horn", "musical instrument", "a horn signal being blown"),
    (r"wesnoth/fanfare-short$", "trumpet", "musical instrument", "a short trumpet fanfare"),
    (r"wesnoth/ambient/birds\d$", "birds chirping", "animal", "birds chirping outdoors"),
    (r"wesnoth/ambient/morning$", "birds chirping", "animal", "birds singing in the morning"),
    (r"wesnoth/ambient/night$", "crickets", "animal", "crickets chirping at night"),
    (r"wesnoth/ambient/campfire$", "campfire", "nature", "a campfire crackling"),
    (r"wesnoth/ambient/wardrums$", "drum", "musical instrument", "war drums beating"),
    (r"wesnoth/ambient/ship$", "creaking", "vehicle", "a wooden ship creaking on the water"),
    (r"wesnoth/hiss(-big|-hit|-die)?$", "hissing", "animal", "a snake hissing"),
    (r"wesnoth/", X, "", "fantasy creature voice, spell or game effect with no everyday label"),
    # --- lmms
    (r"lmms/(shapes|waveforms)/", X, "", "single-cycle synthesis waveform, not a sound event"),
    (r"lmms/drums/(bassdrum|kick).*", "bass drum", "musical instrument", "a bass drum being hit"),
    (r"lmms/drums/.*snare.*", "snare drum", "musical instrument", "a snare drum being hit"),
    (r"lmms/drums/(rim|sidestick|nasty_rim).*", "snare drum", "musical instrument", "a drum rim being struck"),
    (r"lmms/drums/hihat.*", "hi-hat", "musical instrument", "a hi-hat cymbal"),
    (r"lmms/drums/(crash|ride).*", "cymbal", "musical instrument", "a cymbal ringing"),
    (r"lmms/drums/tom.*", "tom-tom drum", "musical instrument", "a tom-tom drum being hit"),
    (r"lmms/drums/clap.*", "hand clap", "musical instrument", "a hand clap"),
    (r"lmms/drums/shaker.*", "shaker", "musical instrument", "a shaker rattling"),
    (r"lmms/drums/(clav|wood).*", "woodblock", "musical instrument", "a woodblock being knocked"),
    (r"lmms/drums/", X, "", "synthetic drum blip with no everyday label"),
    (r"lmms/basses/", "synthesizer", "musical instrument", "a synthesizer bass note"),
    (r"lmms/bassloops/", "synthesizer", "music", "an electronic bass line looping"),
    (r"lmms/beats/", "drum beat", "music", "an electronic drum beat"),
    (r"lmms/effects/explode01$", "explosion", "impact", "an explosion"),
    (r"lmms/effects/wind_chimes01$", "wind chimes", "musical instrument", "wind chimes tinkling"),
    (r"lmms/effects/", X, "", "abstract synthesiser effect with no everyday label"),
    (r"lmms/instruments/cello.*", "cello", "musical instrument", "a cello note"),
    (r"lmms/instruments/church_organ.*", "organ", "musical instrument", "a church organ chord"),
    (r"lmms/instruments/e_organ.*", "organ", "musical instrument", "an electric organ"),
    (r"lmms/instruments/e_piano.*", "electric piano", "musical instrument", "an electric piano chord"),
    (r"lmms/instruments/flute.*", "flute", "musical instrument", "a flute playing"),
    (r"lmms/instruments/piano.*", "piano", "musical instrument", "a piano being played"),
    (r"lmms/instruments/harpsichord.*", "harpsichord", "musical instrument", "a harpsichord"),
    (r"lmms/instruments/steel_guitar01$", "acoustic guitar", "musical instrument", "an acoustic steel-string guitar"),
    (r"lmms/instruments/steel_guitar_.*", "electric guitar", "musical instrument", "a distorted electric guitar"),
    (r"lmms/instruments/trumpet.*", "trumpet", "musical instrument", "a trumpet note"),
    (r"lmms/instruments/violin.*", "violin", "musical instrument", "a violin being played"),
    (r"lmms/instruments/bassslap.*", "bass guitar", "musical instrument", "a slapped bass guitar"),
    (r"lmms/latin/latin_brass.*", "brass section", "musical instrument", "a brass section playing"),
    (r"lmms/latin/latin_guitar.*", "acoustic guitar", "musical instrument", "a strummed acoustic guitar"),
    (r"lmms/misc/applause01$", "applause", "human", "people clapping"),
    (r"lmms/misc/breath01$", "breathing", "human", "a person breathing"),
    (r"lmms/misc/dong0\d$", "gong", "musical instrument", "a gong being struck"),
    (r"lmms/misc/metronome0\d$", "metronome", "household", "a metronome ticking"),
    (r"lmms/misc/raving_crowd01$", "crowd", "human", "a crowd cheering"),
    (r"lmms/misc/snaph01$", "finger snapping", "human", "fingers snapping"),
    (r"lmms/misc/", X, "", "unnamed synthetic blip"),
    (
        r"lmms/stringsnpads/(strings|heaven_strings|orion_string|space_strings).*",
        "strings",
        "musical instrument",
        "a string section holding a chord",
    ),
    (r"lmms/stringsnpads/(chorus|rave_choir).*", "choir", "musical instrument", "a choir singing"),
    (r"lmms/stringsnpads/bell_choir.*", "bell", "musical instrument", "bells chiming"),
    (r"lmms/stringsnpads/", "synthesizer", "musical instrument", "a synthesizer pad"),
    # --- sonic pi
    (r"sonicpi/ambi_choir$", "choir", "musical instrument", "a choir singing"),
    (r"sonicpi/ambi_piano$", "piano", "musical instrument", "a piano being played softly"),
    (r"sonicpi/ambi_glass_(rub|hum)$", "glass", "household", "a finger rubbed around a wine glass"),
    (r"sonicpi/ambi_", X, "", "abstract ambient drone with no everyday label"),
    (r"sonicpi/bass_", "synthesizer", "musical instrument", "a synthesizer bass note"),
    (
        r"sonicpi/(bd_|drum_heavy_kick|drum_bass_|elec_(hollow|soft)_kick)",
        "bass drum",
        "musical instrument",
        "a bass drum being hit",
    ),
    (
        r"sonicpi/(sn_|drum_snare_|elec_(hi|lo|mid|filt)?_?snare)",
        "snare drum",
        "musical instrument",
        "a snare drum being hit",
    ),
    (r"sonicpi/drum_cymbal_(closed|pedal)$", "hi-hat", "musical instrument", "a hi-hat cymbal"),
    (r"sonicpi/(drum_cymbal_|drum_splash_|elec_cymbal)", "cymbal", "musical instrument", "a cymbal ringing"),
    (r"sonicpi/drum_tom_", "tom-tom drum", "musical instrument", "a tom-tom drum being hit"),
    (r"sonicpi/drum_cowbell$", "cowbell", "musical instrument", "a cowbell"),
    (r"sonicpi/drum_roll$", "snare drum", "musical instrument", "a snare drum roll"),
    (r"sonicpi/guit_", "electric guitar", "musical instrument", "an electric guitar"),
    (
        r"sonicpi/loop_(amen|amen_full|breakbeat|perc\d|garzul|mika|compus|industrial|safari)$",
        "drum beat",
        "music",
        "a looping drum beat",
    ),
    (r"sonicpi/loop_tabla$", "tabla", "musical instrument", "tabla drums playing a rhythm"),
    (r"sonicpi/tabla_", "tabla", "musical instrument", "a tabla drum stroke"),
    (r"sonicpi/misc_burp$", "burping", "human", "someone burping"),
    (r"sonicpi/misc_crow$", "crow", "animal", "a crow cawing"),
    (r"sonicpi/misc_cineboom$", "boom", "impact", "a deep cinematic boom"),
    (r"sonicpi/perc_bell2?$", "bell", "musical instrument", "a bell ringing out"),
    (r"sonicpi/perc_door$", "door", "household", "a door creaking and closing"),
    (r"sonicpi/perc_snap2?$", "finger snapping", "human", "fingers snapping"),
    (r"sonicpi/perc_(swoosh|swash)$", "whoosh", "impact", "a swoosh"),
    (r"sonicpi/perc_till$", "cash register", "household", "a cash register till"),
    (r"sonicpi/perc_impact\d$", "hit", "impact", "a heavy impact"),
    (r"sonicpi/vinyl_(backspin|rewind|scratch)$", "record scratching", "music", "a vinyl record being scratched"),
    (r"sonicpi/vinyl_hiss$", "vinyl crackle", "household", "the hiss and crackle of a vinyl record"),
    (r"sonicpi/", X, "", "electronic glitch or blip with no everyday label"),
    # --- hydrogen (instrument names from drumkit.xml, matched on the slug)
    (r"hydrogen/.*/(sample_.*|\d+|redo_.*|fx|zap_\d|[a-g]#?\d)$", X, "", "anonymous sample slot, instrument not named"),
    (r"hydrogen/.*/(.*kick.*|.*bass_?drum.*)$", "bass drum", "musical instrument", "a bass drum being hit"),
    (r"hydrogen/.*/.*(hh|hat).*$", "hi-hat", "musical instrument", "a hi-hat cymbal"),
    (
        r"hydrogen/.*/.*(snare|rimshot|rim_click|side_stick).*$",
        "snare drum",
        "musical instrument",
        "a snare drum being hit",
    ),
    (r"hydrogen/.*/.*(crash|ride|china|splash|cymbal|bell).*$", "cymbal", "musical instrument", "a cymbal ringing"),
    (r"hydrogen/.*/.*tom.*$", "tom-tom drum", "musical instrument", "a tom-tom drum being hit"),
    (r"hydrogen/.*/.*clap.*$", "hand clap", "musical instrument", "hands clapping"),
    (r"hydrogen/.*/.*cowbell.*$", "cowbell", "musical instrument", "a cowbell being struck"),
    (r"hydrogen/.*/.*tambourine.*$", "tambourine", "musical instrument", "a tambourine jingling"),
    (
        r"hydrogen/.*/.*(conga|bongo|djembe|cajon|sangban|dununba|kenkeni|drum_\d).*$",
        "hand drum",
        "musical instrument",
        "a hand drum being played",
    ),
    (r"hydrogen/.*/.*(woodblock|clave|stick).*$", "woodblock", "musical instrument", "a wooden click"),
    (r"hydrogen/.*/.*maraca.*$", "shaker", "musical instrument", "a maraca shaking"),
    (r"hydrogen/.*/.*agogo.*$", "cowbell", "musical instrument", "an agogo bell"),
    (r"hydrogen/.*/finger_snaps$", "finger snapping", "human", "fingers snapping"),
    (r"hydrogen/.*/whistle$", "whistle", "alarm", "a whistle blowing"),
    (r"hydrogen/.*/waterglass.*$", "glass", "household", "a glass of water being tapped"),
    (r"hydrogen/", X, "", "drum-kit slot whose name gives no instrument"),
    # --- lincity: building ambiences; keep only those whose name says what they are
    (r"lincity/Trafic(High|Low)\d$", "traffic", "vehicle", "road traffic passing"),
    (r"lincity/RailTrain\d$", "train", "vehicle", "a train rolling along the track"),
    (r"lincity/SportsCroud\d$", "crowd", "human", "a crowd at a sports ground"),
    (r"lincity/RocketTakeoff1$", "rocket", "vehicle", "a rocket taking off"),
    (r"lincity/RocketExplosion1$", "explosion", "impact", "a rocket exploding"),
    (r"lincity/Blacksmith\d$", "hammering", "tools", "a blacksmith hammering"),
    (r"lincity/Fire\d$", "fire", "nature", "a fire burning"),
    (r"lincity/Water\d$", "water", "water", "water flowing"),
    (r"lincity/", X, "", "game building ambience whose content its name does not say"),
]


def stats(path: str) -> dict:
    x, sr = sf.read(path, always_2d=True, dtype="float32")
    x = x.mean(axis=1)
    dur = len(x) / sr
    peak = float(np.abs(x).max()) if len(x) else 0.0
    rms = float(np.sqrt(np.mean(x**2))) if len(x) else 0.0
    frame = max(1, int(sr * 0.02))
    n = len(x) // frame
    active = 0.0
    if n and peak > 0:
        e = render.frame_rms(x, frame)
        active = float((e > peak * 0.01).mean()) * dur  # frames above -40 dB of peak
    db = lambda v: round(20 * np.log10(v + 1e-9), 1)  # noqa: E731
    return {"duration": round(dur, 2), "rms_db": db(rms), "peak_db": db(peak), "active_s": round(active, 2)}


def rule_for(r: sources.RawSource):
    if r.package == "openttd-opensfx":
        v = OPENSFX.get(int(r.id.split("/")[1]))
        if v is None:  # no entry, or X
            return None, "game cue with no everyday meaning"
        if v[0] is X:
            return None, v[1]
        return v, ""
    if r.package == "tuxpaint-stamps-default":
        rel = r.id.split("/", 1)[1]
        name = rel.rsplit("/", 1)[-1]
        if rel.startswith(("animals/", "seasonal/halloween/")) and name in ANIMAL_SOUND:
            label, desc = ANIMAL_SOUND[name]
            return (label, "animal", desc), ""
        if rel in TUXPAINT_OTHER:
            return TUXPAINT_OTHER[rel], ""
        return None, "speech or unclear stamp sound (" + r.hint.split("|")[-1].strip()[:40] + ")"
    for pat, label, cat, desc in RULES:
        if re.search(pat, r.id, flags=re.IGNORECASE):
            if label is X:
                return None, desc
            return (label, cat, desc), ""
    return None, "no curation rule"


def main() -> None:
    cache = Path(sys.argv[1]) if len(sys.argv) > 1 else sources.default_cache()
    entries, excluded = {}, {}
    for pkg in sources.PACKAGES:
        root = sources.fetch_package(pkg, cache)
        for r in sources.list_raw(pkg, root):
            try:
                st = stats(r.path)
            except Exception as err:  # noqa: BLE001 (record why a file is unusable)
                excluded[r.id] = {
                    "source_package": pkg,
                    "reason": f"does not decode with soundfile ({type(err).__name__})",
                }
                continue
            value, reason = rule_for(r)
            if value is not None and st["rms_db"] < -60:
                value, reason = None, f"silent (RMS {st['rms_db']} dBFS)"
            elif value is not None and st["active_s"] < 0.1:
                value, reason = None, f"blip: only {st['active_s']} s above -40 dB of peak"
            if value is None:
                excluded[r.id] = {"source_package": pkg, "reason": reason, **st}
                continue
            label, cat, desc = value
            entries[r.id] = {
                "source_package": pkg,
                "label": label,
                "category": cat,
                "description": desc,
                "hint": r.hint[:120],
                **st,
            }
    OUT.write_text(json.dumps({"recordings": entries, "excluded": excluded}, indent=1, sort_keys=True) + "\n")
    print(f"{len(entries)} curated, {len(excluded)} excluded -> {OUT}")


if __name__ == "__main__":
    main()
