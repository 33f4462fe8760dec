#!/usr/bin/env python3
"""Build data/demo/ (the embedded demo workspace) from the shared real-data set.

Usage: tools/make_demo.py SHARED_REALDATA_DEV_DIR [OUT_DIR=data/demo]

Takes 21 clips (3 per label combination) and the long-form show a_show01, none of which contains a
non-commercial (CC BY-NC) source; FLACs are copied byte for byte, WAVs are transcoded losslessly to
FLAC with ffmpeg, the MP3 is kept as it is. Writes manifest.csv, clip_events.csv, the show's
timeline and window table, and ATTRIBUTION.md (every source of every included file).
"""
import csv, os, shutil, subprocess, sys

CLIPS = ["a009", "a013", "a015",  # S
         "a018", "a026", "a038",  # M
         "a005", "a012", "a028",  # SM
         "a002", "a019", "a036",  # N
         "a008", "a010", "a023",  # SN
         "a003", "a017", "a025",  # MN
         "a007", "a014", "a022"]  # SMN
SHOW = "a_show01"


def main():
    src = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else "data/demo"
    os.makedirs(out, exist_ok=True)
    man = {r["file"]: r for r in csv.DictReader(open(os.path.join(src, "manifest.csv")))}
    lic = {r["source"]: r for r in csv.DictReader(open(os.path.join(src, "sources_used.csv")))}
    used_sources = set()
    rows = []
    events = []
    all_events = list(csv.DictReader(open(os.path.join(src, "clip_events.csv"))))
    for stem in CLIPS:
        (key,) = [k for k in man if k.startswith(f"clips/{stem}.")]
        r = man[key]
        assert "NC" not in r["license"], key
        ext = key.rsplit(".", 1)[1]
        inp = os.path.join(src, key)
        if ext in ("flac", "mp3"):
            name = f"{stem}.{ext}"
            shutil.copyfile(inp, os.path.join(out, name))
        else:
            name = f"{stem}.flac"
            subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", inp, "-c:a", "flac",
                            os.path.join(out, name)], check=True)
        srcs = [e for e in all_events if e["file"] == key]
        for e in srcs:
            used_sources.add(e["source"])
            events.append({"file": name, "layer": e["layer"], "start": e["start"], "end": e["end"]})
        rows.append({"file": name, "kind": "clip", "duration_s": r["duration_s"], "speech": r["speech"],
                     "music": r["music"], "noise": r["noise"], "license": r["license"],
                     "original": key})
    r = man[f"longform/{SHOW}.flac"]
    assert "NC" not in r["license"]
    shutil.copyfile(os.path.join(src, "longform", f"{SHOW}.flac"), os.path.join(out, f"{SHOW}.flac"))
    for suffix in ("timeline.csv", "windows_10s_hop5s.csv"):
        shutil.copyfile(os.path.join(src, "longform", f"{SHOW}_{suffix}"), os.path.join(out, f"{SHOW}_{suffix}"))
    for e in csv.DictReader(open(os.path.join(src, "longform", f"{SHOW}_events.csv"))):
        used_sources.add(e["source"])
    rows.append({"file": f"{SHOW}.flac", "kind": "show", "duration_s": r["duration_s"], "speech": r["speech"],
                 "music": r["music"], "noise": r["noise"], "license": r["license"],
                 "original": f"longform/{SHOW}.flac"})
    for s in used_sources:
        assert s in lic, s
        assert "NC" not in lic[s]["license"], s
    with open(os.path.join(out, "manifest.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    with open(os.path.join(out, "clip_events.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "layer", "start", "end"])
        w.writeheader()
        w.writerows(events)
    with open(os.path.join(out, "ATTRIBUTION.md"), "w") as f:
        f.write("# Demo workspace: sources and licences\n\n"
                "Every file in this folder is a modified version (trimmed, resampled to 16 kHz mono, level-scaled,\n"
                "mixed) of the recordings below, taken from the dams real-data evaluation set \"Set A - dev\".\n"
                "WAV originals were transcoded losslessly to FLAC. No file here contains a non-commercial source.\n"
                "Files: " + ", ".join(r["file"] for r in rows) + ".\n\n"
                "| source (repo@commit:path) | kind | licence | attribution |\n|---|---|---|---|\n")
        libri = [s for s in sorted(used_sources) if "Resemblyzer" in s]
        for s in sorted(used_sources):
            if s in libri:
                continue
            l = lic[s]
            f.write(f"| {s} | {l['kind']} | {l['license']} | {l['attribution']} |\n")
        if libri:
            f.write(f"| LibriSpeech via resemble-ai/Resemblyzer@15d828e audio_data/ ({len(libri)} utterances, listed below) "
                    f"| speech | CC-BY-4.0 | LibriSpeech ASR corpus, Panayotov et al. 2015, openslr.org/12 "
                    f"(LibriVox public-domain recordings) |\n\nLibriSpeech utterances used:\n\n")
            for s in libri:
                f.write(f"- {s.split(':', 1)[1]}\n")
    print("\n".join(r["file"] for r in rows))


if __name__ == "__main__":
    main()
