"""`mats report`: the paper's tables, ablations, sweeps and modality-gap analysis as Markdown + PNGs."""
