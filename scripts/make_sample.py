"""Make samples/bbb_320x180.mp4 from shared/clips/big_buck_bunny_1s.webm (Big Buck Bunny, CC BY 3.0).

Scaled to 320x180 (H.264, CRF 20) with its audio re-encoded to AAC, so the README's first command runs
in well under a minute on a 2-core CPU. Run once: python scripts/make_sample.py ../shared
"""

from __future__ import annotations

import sys
from pathlib import Path

import av


def main(shared: Path, dst: Path) -> None:
    src = shared / "clips" / "big_buck_bunny_1s.webm"
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin, ain = inp.streams.video[0], inp.streams.audio[0]
        vout = out.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = 320, 180, "yuv420p"
        vout.options = {"crf": "20", "preset": "slow"}
        aout = out.add_stream("aac", rate=ain.rate)
        aout.layout = ain.layout.name
        for packet in inp.demux(vin, ain):
            for frame in packet.decode():
                if packet.stream is vin:
                    frame = frame.reformat(width=320, height=180, format="yuv420p", interpolation="AREA")
                    frame.pict_type = av.video.frame.PictureType.NONE
                    out.mux(vout.encode(frame))
                else:
                    frame.pts = None
                    out.mux(aout.encode(frame))
        out.mux(vout.encode(None))
        out.mux(aout.encode(None))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared"), Path("samples/bbb_320x180.mp4"))
