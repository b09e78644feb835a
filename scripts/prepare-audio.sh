#!/usr/bin/env bash
# Builds Seriatim's default audio corpus under Audio/ from Debian packages (deterministic, offline):
#   Audio/speech/    558 prompts of one recorded voice (asterisk-core-sounds-en-wav, CC-BY-SA-3.0),
#                    about 25 minutes, 8 kHz 16-bit; the package's silence/ folder is left out.
#   Audio/speakers/  a fixed text read by several espeak-ng voices, one folder per "speaker",
#                    for global (speaker) conditioning.
# Audio/fixtures/ (tiny generated clips) is committed and not touched here.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-dependencies.sh asterisk-core-sounds-en-wav espeak-ng

source_dir=/usr/share/asterisk/sounds/en_US_f_Allison
if [ ! -f Audio/speech/.complete ]; then
    rm -rf Audio/speech
    mkdir -p Audio/speech
    (cd "$source_dir" && find . -name '*.wav' -not -path './silence/*' | sort) | while read -r f; do
        mkdir -p "Audio/speech/$(dirname "$f")"
        cp "$source_dir/$f" "Audio/speech/$f"
    done
    touch Audio/speech/.complete
fi

if [ ! -f Audio/speakers/.complete ]; then
    rm -rf Audio/speakers
    sentences=(
        "The quick brown fox jumps over the lazy dog near the quiet river bank."
        "Every model of sound must predict the next sample from the ones before it."
        "Seven silver spoons were set on the wooden table before the evening meal."
        "A gentle breeze carried the smell of rain across the open fields."
        "Please remember to turn off the lights when you leave the room."
        "Numbers like four hundred and twenty one are easy to say but hard to hear."
        "The old clock in the hall struck twelve as the snow began to fall."
        "Bright colours and loud voices filled the market on Saturday morning."
        "She asked whether the train would arrive before half past nine."
        "Careful listeners can tell one voice from another in a single word."
    )
    for voice in en-us+m3 en-us+f3 en-gb+m1 en-gb-scotland+f2; do
        dir="Audio/speakers/${voice//+/-}"
        mkdir -p "$dir"
        i=0
        for s in "${sentences[@]}"; do
            i=$((i + 1))
            espeak-ng -v "$voice" -s 150 -w "$dir/$(printf '%02d' $i).wav" "$s"
        done
    done
    touch Audio/speakers/.complete
fi
echo "Audio/speech: $(find Audio/speech -name '*.wav' | wc -l) files; Audio/speakers: $(find Audio/speakers -name '*.wav' | wc -l) files"
