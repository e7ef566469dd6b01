"""Write src/mats_lab/soundworld/curated.json: the curated mapping of SoundWorld recordings.

The mapping was written by reading each package's own descriptions (opensfx.cat strings, tuxpaint
.txt files, drumkit.xml names, file names) next to listen-through statistics of every file
(duration, RMS, active time above -40 dB of peak). The rules below ARE the curation: each names a
recording pattern and the everyday label, category and description it gets, or the reason it is
excluded. Statistics exclude silence and too-short blips automatically.

Run once after unpacking all packages (the build does it):
    .venv/bin/python scripts/soundworld_curate.py [CACHE]
or for some packages only, keeping the others' entries as they are:
    .venv/bin/python scripts/soundworld_curate.py --packages 0ad-data
"""

from __future__ import annotations

import argparse
import hashlib
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

# 0ad-data's footsteps: the surface in the file name -> where the steps fall
SURFACES = {
    "sand": "on sand",
    "grass": "on grass",
    "gravel": "on gravel",
    "rock": "on rock",
    "wood": "on wooden boards",
    "snow": "in snow",
}


def footstep_rules() -> list[tuple[str, str, str, str]]:
    """Walking and running loops (actor/human/movement/Footsteps/) and single steps (singlesteps/)."""
    out = []
    for surface, where in SURFACES.items():
        base = r"0ad/actor/human/movement/footsteps/fo\w*step_" + surface
        out.append((base + "_running$", "footsteps", "human", f"someone running {where}"))
        out.append((base + "_walking$", "footsteps", "human", f"footsteps walking {where}"))
        out.append((r"0ad/actor/singlesteps/fs_" + surface, "footsteps", "human", f"a footstep {where}"))
    return out


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
    # --- 0ad-data (the audio/ folder of public.zip): folders say what a sound is, file names the take
    (r"0ad/interface/", X, "", "game interface cue (alert, building selected or completed)"),
    (r"0ad/music/Taiko_\d$", "taiko drum", "musical instrument", "taiko drums being played"),
    (r"0ad/music/", X, "", "soundtrack piece: its title names no instrument or sound"),
    (r"0ad/actor/fauna/animal/cattle_", "cow", "animal", "cattle mooing"),
    (r"0ad/actor/fauna/animal/chicken_", "chicken", "animal", "chickens clucking"),
    (r"0ad/actor/fauna/animal/elephant_", "elephant", "animal", "an elephant trumpeting"),
    (r"0ad/actor/fauna/animal/flamingo_", "bird", "animal", "flamingos honking"),
    (r"0ad/actor/fauna/animal/horse_(death|attack)", "horse", "animal", "a horse whinnying"),
    (r"0ad/actor/fauna/animal/horse_", "horse", "animal", "a horse neighing and snorting"),
    (r"0ad/actor/(fauna|mounted)/death/death_horse_", "horse", "animal", "a horse whinnying in distress"),
    (r"0ad/actor/mounted/movement/mstep", "horse galloping", "animal", "horse hooves clopping"),
    (r"0ad/actor/fauna/animal/lion_", "lion", "animal", "a lion roaring"),
    (r"0ad/actor/fauna/animal/peacock_", "peacock", "animal", "a peacock calling"),
    (r"0ad/actor/fauna/animal/pig_(death|squeal)", "pig", "animal", "a pig squealing"),
    (r"0ad/actor/fauna/animal/pig_", "pig", "animal", "a pig grunting"),
    (r"0ad/actor/fauna/animal/sheep_", "sheep", "animal", "a sheep bleating"),
    (r"0ad/actor/fauna/(animal|death|movement)/(death_)?camel_", "camel", "animal", "a camel grunting"),
    (r"0ad/actor/fauna/death/goat_", "goat", "animal", "a goat bleating"),
    (r"0ad/actor/fauna/death/animal_death_generic", X, "", "generic animal death cry: the species is not named"),
    (r"0ad/voice/global/civ_dog_", "dog", "animal", "a dog barking"),
    *footstep_rules(),
    (r"0ad/actor/human/movement/hstep_dirt_", "footsteps", "human", "footsteps walking on dirt"),
    (r"0ad/actor/human/movement/hstep_run_dirt_", "footsteps", "human", "someone running on dirt"),
    (r"0ad/actor/human/death/male_death_", "man shouting", "human", "a man crying out in pain"),
    (r"0ad/actor/human/death/female_death_", "woman screaming", "human", "a woman crying out in pain"),
    (r"0ad/actor/human/death/", X, "", "death cry whose speaker is not named"),
    # the voices: short orders in four languages; labelled as speech by a man or a woman (the words are
    # in ancient languages the captions cannot quote)
    (r"0ad/voice/greek/civ/civ_male_", "man speaking", "human", "a man saying a short phrase in Ancient Greek"),
    (r"0ad/voice/greek/civ/civ_female_", "woman speaking", "human", "a woman saying a short phrase in Ancient Greek"),
    (r"0ad/voice/latin/civ/civ_male_", "man speaking", "human", "a man saying a short phrase in Latin"),
    (r"0ad/voice/latin/civ/civ_female_", "woman speaking", "human", "a woman saying a short phrase in Latin"),
    (r"0ad/voice/persian/civ/civ_male_", "man speaking", "human", "a man saying a short phrase in Old Persian"),
    (r"0ad/voice/persian/civ/civ_female_", "woman speaking", "human", "a woman saying a short phrase in Old Persian"),
    (
        r"0ad/voice/napatan/civ/civ_male_",
        "man speaking",
        "human",
        "a man saying a short phrase in an ancient Nubian language",
    ),
    (
        r"0ad/voice/napatan/civ/civ_female_",
        "woman speaking",
        "human",
        "a woman saying a short phrase in an ancient Nubian language",
    ),
    (r"0ad/actor/gate/stonegate_open_", "door", "household", "a heavy stone gate grinding open"),
    (r"0ad/actor/gate/stonegate_close_", "door", "household", "a heavy stone gate grinding shut"),
    (r"0ad/actor/ship/(ship_move|smove_|warship_move_)", "boat", "vehicle", "a wooden ship moving through the water"),
    (r"0ad/actor/ship/warship_death_", "crash", "impact", "a wooden ship breaking apart"),
    (r"0ad/attack/siege/(ballist_|onager_shooting)", "catapult", "weapon", "a siege engine firing"),
    (r"0ad/attack/siege/ram_attack$", "hit", "impact", "a battering ram pounding a gate"),
    (r"0ad/attack/siege/(ram_move|onager_moving)", "creaking", "vehicle", "a wooden siege engine creaking as it rolls"),
    (r"0ad/(attack/siege/(ram_attack_order|siege_select)|actor/ship/ship_select)", X, "", "order or selection cue"),
    (
        r"0ad/attack/destruction/building_collapse_",
        "crash",
        "impact",
        "a building collapsing with a crash of stone and timber",
    ),
    (r"0ad/attack/destruction/explode_debris_", "explosion", "impact", "an explosion scattering debris"),
    (r"0ad/attack/fire/", "fire", "nature", "a fire burning and crackling"),
    (r"0ad/attack/impact/arrow_metal_", "metal clang", "impact", "an arrow striking metal"),
    (r"0ad/attack/impact/arrow_dirt_", "hit", "impact", "an arrow thudding into the ground"),
    (r"0ad/attack/impact/arrow_stone_", "hit", "impact", "an arrow hitting stone"),
    (r"0ad/attack/impact/arrow_wood_", "hit", "impact", "an arrow thudding into wood"),
    (r"0ad/attack/impact/arrow_\d", "hit", "impact", "an arrow striking its target"),
    (r"0ad/attack/impact/flesh", "hit", "impact", "a blow landing with a dull thud"),
    (r"0ad/attack/impact/shield_metal_", "metal clang", "impact", "a blow clanging on a metal shield"),
    (r"0ad/attack/impact/shield_wood_", "hit", "impact", "a blow thudding on a wooden shield"),
    (r"0ad/attack/impact/siegeprojectilehit_", "crash", "impact", "a catapult stone smashing into a wall"),
    (r"0ad/attack/impact/sling_metal_", "metal clang", "impact", "a sling stone striking metal"),
    (r"0ad/attack/impact/sling_(stone|wood)_", "hit", "impact", "a sling stone striking"),
    (r"0ad/attack/weapon/musket_", "gunshot", "weapon", "an old musket firing"),
    (r"0ad/attack/weapon/arrowfly_", "whoosh", "weapon", "an arrow whooshing past"),
    (r"0ad/attack/weapon/bow_attack_", "bow and arrow", "weapon", "an arrow shot from a bow"),
    (r"0ad/attack/weapon/jav_attack_", "whoosh", "weapon", "a javelin thrown through the air"),
    (r"0ad/attack/weapon/(pike|spear)_attack_", "hit", "impact", "a spear thrust striking"),
    (r"0ad/attack/weapon/sling_", "whoosh", "weapon", "a sling whirling and loosing a stone"),
    (r"0ad/attack/weapon/sword_attack_", "sword", "weapon", "a sword swung and striking"),
    (r"0ad/attack/weapon/swordhit_", "sword", "weapon", "swords clashing"),
    (r"0ad/ambient/building/amb_trade_", "crowd", "human", "a busy market with people talking"),
    (r"0ad/ambient/building/", X, "", "building ambience: a mix of sounds its name does not list"),
    (r"0ad/ambient/dayscape/day_temperate_", "birds chirping", "animal", "birds singing in the countryside"),
    (r"0ad/ambient/dayscape/day_tropical_", "birds chirping", "animal", "tropical birds and insects calling"),
    (r"0ad/ambient/water/river_slow_", "river", "water", "a slow river flowing gently"),
    (r"0ad/ambient/water/river_med_", "river", "water", "a river flowing"),
    (r"0ad/ambient/water/river_fast_", "river", "water", "a fast river rushing over stones"),
    (r"0ad/ambient/water/river_raging_", "river", "water", "a raging river roaring"),
    (r"0ad/ambient/water/waterfall_", "waterfall", "water", "a waterfall pouring"),
    (r"0ad/ambient/water/wave_", "ocean waves", "nature", "waves washing onto a beach"),
    (r"0ad/ambient/water/wavecrash_", "ocean waves", "nature", "waves crashing on the shore"),
    (r"0ad/ambient/water/waverocky_", "ocean waves", "nature", "waves breaking on rocks"),
    (r"0ad/ambient/weather/rain_", "rain", "nature", "rain falling steadily"),
    (r"0ad/ambient/weather/snowstorm_", "wind", "nature", "a snowstorm howling"),
    (r"0ad/ambient/weather/thunder_", "thunder", "nature", "thunder rolling"),
    (r"0ad/ambient/weather/windgust_", "wind", "nature", "a gust of wind"),
    (r"0ad/ambient/weather/windleaves_", "wind", "nature", "wind rustling the leaves"),
    (r"0ad/ambient/weather/windstorm_", "wind", "nature", "a windstorm howling"),
    (r"0ad/ambient/weather/wind_", "wind", "nature", "wind blowing"),
    (r"0ad/resource/\w+/\w*expire_", X, "", "game cue: a resource used up"),
    (r"0ad/resource/construction/con_saw_", "sawing", "tools", "a hand saw cutting wood"),
    (r"0ad/resource/construction/con_stone_", "hammering", "tools", "a mason chiselling stone"),
    (r"0ad/resource/construction/con_wood_", "hammering", "tools", "hammering on wood"),
    (r"0ad/resource/farming/hoe_", "digging", "tools", "a hoe digging into the soil"),
    (r"0ad/resource/foraging/leaves_", "rustling leaves", "nature", "leaves rustling as berries are picked"),
    (r"0ad/resource/gathering/gather_field_", "harvesting", "tools", "grain being cut with a sickle"),
    (r"0ad/resource/gathering/gather_fruit_", "rustling leaves", "nature", "fruit being picked from a rustling bush"),
    (r"0ad/resource/gathering/gather_meat_", "chopping meat", "household", "meat being chopped with a knife"),
    (r"0ad/resource/lumbering/lumber_tree_", "chopping wood", "tools", "an axe chopping into a tree"),
    (r"0ad/resource/mining/mine_metal_", "mining", "tools", "a pickaxe striking metal ore"),
    (r"0ad/resource/mining/mine_stone_", "mining", "tools", "a pickaxe chipping stone"),
    (r"0ad/", X, "", "no curation rule for this game sound"),
]

# Packages whose recordings are checked for repeats: a recording whose decoded audio equals an
# earlier one's (0ad-data stores some sounds twice, e.g. under fauna/death and mounted/death) is
# excluded, so one sound cannot land in both splits. The packages curated before this check keep
# their curation as it was.
DEDUPE_PACKAGES = {"0ad-data"}


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


def audio_digest(path: str) -> str:
    """A hash of the decoded samples and rate: equal for files that differ only in their tags."""
    x, sr = sf.read(path, always_2d=True, dtype="float32")
    return hashlib.sha1(np.ascontiguousarray(x).tobytes() + str(sr).encode()).hexdigest()


def curate(packages: list[str], cache: Path) -> tuple[dict, dict]:
    """(entries, excluded) for the recordings of `packages`, keyed by recording id."""
    entries, excluded = {}, {}
    for pkg in packages:
        root = sources.fetch_package(pkg, cache)
        first_of: dict[str, str] = {}  # audio digest -> first recording id with it
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
            if value is not None and pkg in DEDUPE_PACKAGES:
                first = first_of.setdefault(audio_digest(r.path), r.id)
                if first != r.id:
                    value, reason = None, f"same audio as {first}"
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
    return entries, excluded


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cache", nargs="?", type=Path, default=None, help="SoundWorld cache (default: MATS_CACHE)")
    ap.add_argument(
        "--packages",
        nargs="+",
        choices=list(sources.PACKAGES),
        help="re-curate only these packages; the other packages' entries in curated.json are kept",
    )
    args = ap.parse_args()
    cache = args.cache or sources.default_cache()
    packages = args.packages or list(sources.PACKAGES)
    entries, excluded = curate(packages, cache)
    if args.packages and OUT.is_file():
        old = json.loads(OUT.read_text())
        for key, new in (("recordings", entries), ("excluded", excluded)):
            kept = {k: v for k, v in old[key].items() if v["source_package"] not in packages}
            new.update(kept)
    OUT.write_text(json.dumps({"recordings": entries, "excluded": excluded}, indent=1, sort_keys=True) + "\n")
    print(f"{len(entries)} curated, {len(excluded)} excluded -> {OUT}")


if __name__ == "__main__":
    main()
