"""mats_lab: the recipes beside the method, as open_clip_train sits beside open_clip.

The `mats` package is the method (what `mats.load`, `mats train` and `mats eval` need). This one
holds what builds and studies our embedded models and is not needed to use them:

- `soundworld/`   SoundWorld, the data world built from Debian's recordings (`mats data build`)
- `clap_train`    mini-CLAP's contrastive training (its architecture and loader live in
                  `mats.encoders.mini`, which loads the shipped model)
- `lm_pretrain`   mini-LM: BPE, pre-training on caption text, slot tuning
- `build_mini`    `make model`: the staged, resumable build of MATS-mini and MATS-Audio-mini
- `report/`       `mats report`: the paper's tables, ablations, sweeps and modality gap

Every path is an argument; nothing here writes into the installed `mats` package.
"""
