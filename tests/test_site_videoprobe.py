"""The upload page reads a chosen recording's headers in the browser (node runs the
site's module on clips PyAV writes) and says before sending when it will be converted."""
import json
import shutil
import subprocess

import pytest

from ops import publish
from tests.support.clips import encode

SCRIPT = r"""
import { readFileSync } from "node:fs";
const mod = await import(process.argv[2]);
const out = {};
for (const path of process.argv.slice(3)) {
  const probe = await mod.probeVideo(new Blob([readFileSync(path)]));
  out[path.split("/").pop()] = { probe, searchable: mod.searchable(probe), note: mod.conversionNote(probe) };
}
console.log(JSON.stringify(out));
"""


def probe_in_node(tmp_path, clips):
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: run 'make browser'", pytrace=False)
    paths = []
    for name, data in clips.items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    script = tmp_path / "probe.mjs"
    script.write_text(SCRIPT)
    module = (publish.SOURCE_DIR / "js" / "videoprobe.js").as_uri()
    done = subprocess.run([node, str(script), module, *paths], capture_output=True, text=True,
                          timeout=60, check=True)
    return json.loads(done.stdout)


def test_the_codec_is_read_in_the_browser_and_conversion_announced(tmp_path):
    found = probe_in_node(tmp_path, {
        "h264.mp4": encode("mp4", "libx264", seconds=2),
        "iphone.mov": encode("mov", "libx265", tag="hvc1", seconds=2),
        "index-first.mov": encode("mov", "libx265", tag="hev1", seconds=2, faststart=True),
        "screen.webm": encode("webm", "libvpx-vp9", seconds=1),
        "old.avi": encode("avi", "mpeg4", seconds=1),
    })
    assert found["h264.mp4"]["probe"]["codec"] == "h264"
    assert found["h264.mp4"]["searchable"] and found["h264.mp4"]["note"] is None
    for name in ("iphone.mov", "index-first.mov"):
        assert found[name]["probe"]["codec"] == "hevc" and not found[name]["searchable"]
        assert found[name]["note"].startswith("This recording is HEVC (H.265) video: Rollcall "
                                              "converts it to H.264")
    assert found["screen.webm"]["note"].startswith("This recording is a WebM file")
    assert found["old.avi"]["note"].startswith("This recording is an AVI file")


def test_a_file_whose_index_cannot_be_found_is_left_to_the_server(tmp_path):
    data = encode("mp4", "libx264", seconds=3)
    found = probe_in_node(tmp_path, {"cut.mp4": data[:len(data) // 2]})
    assert found["cut.mp4"] == {"probe": None, "searchable": False, "note": None}
