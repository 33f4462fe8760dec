#!/bin/sh
# Regenerate tests/fixtures/ from data/demo/a022.flac (CC-BY-4.0 + public domain, see
# data/demo/ATTRIBUTION.md). Needs sox and ffmpeg (libvorbis, libmp3lame).
#   ex_16k_mono.flac    3.0 s excerpt (3.0-6.0 s) of a022, 16 kHz mono: the reference x
#   ex_44k1_stereo.wav  the excerpt at 44.1 kHz, 16-bit, L = x, R = 0.5·x (sox rate -v)
#   ex_48k_stereo.ogg   the same at 48 kHz, Vorbis q5
#   ex_44k1_stereo.mp3  the same at 44.1 kHz, MP3 128 kb/s (LAME, with the gapless header)
# Downmixed (mean of channels) each one is 0.75·x, resampled back to 16 kHz.
set -eu
cd "$(dirname "$0")/.."
out=tests/fixtures
mkdir -p "$out"
sox data/demo/a022.flac "$out/ex_16k_mono.flac" trim 3.0 3.0
sox "$out/ex_16k_mono.flac" -b 16 /tmp/ex_st44.wav remix 1 1v0.5 rate -v 44100
sox "$out/ex_16k_mono.flac" -b 24 /tmp/ex_st48.wav remix 1 1v0.5 rate -v 48000
cp /tmp/ex_st44.wav "$out/ex_44k1_stereo.wav"
ffmpeg -loglevel error -y -i /tmp/ex_st48.wav -c:a libvorbis -q:a 5 "$out/ex_48k_stereo.ogg"
ffmpeg -loglevel error -y -i /tmp/ex_st44.wav -c:a libmp3lame -b:a 128k "$out/ex_44k1_stereo.mp3"
rm -f /tmp/ex_st44.wav /tmp/ex_st48.wav
ls -l "$out"
