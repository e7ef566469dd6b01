"""SoundWorld: real Debian recordings, rendered music and speech, mixed into scenes with
captions, labels and QA. Entry point: `build(profile, out, seed=0, cache=None, progress=True)`."""

from .build import PROFILES, BuildError, build

__all__ = ["PROFILES", "BuildError", "build"]
