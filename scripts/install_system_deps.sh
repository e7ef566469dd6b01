#!/bin/sh
# Debian packages SoundWorld (`mats data build`) needs at run time:
#   fluidsynth          renders General MIDI music from the soundfont
#   fluid-soundfont-gm  the sampled General MIDI instruments (FluidR3_GM.sf2)
#   espeak-ng           synthesised speech (several voices)
#   sox                 listen-through statistics (scripts/soundworld_check.py)
#   chromium            the headless browser the web page's test drives (tests/serve)
# The sound-effect collections are not installed: the build fetches them with
# `apt-get download` + `dpkg-deb -x` into its own cache.
# Idempotent: does nothing when every package is already installed.
set -e
PKGS="fluidsynth fluid-soundfont-gm espeak-ng sox chromium"
MISSING=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || MISSING="$MISSING $p"
done
if [ -z "$MISSING" ]; then
  echo "system deps: all present ($PKGS)"
  exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "system deps: installing$MISSING"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $MISSING
