"""Write a 4 x 4 contact sheet of phantom chest radiographs across findings.

    python benchmarks/contact_sheet.py OUT.png [--height 512] [--seed 0]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from PIL import Image, ImageDraw

from egma.phantom.findings import FindingSpec
from egma.phantom.render import render_radiograph

SHEET: list[tuple[FindingSpec, ...]] = [
    (),
    (FindingSpec("cardiomegaly", severity="moderate"),),
    (FindingSpec("pleural_effusion", side="right", severity="moderate"),),
    (FindingSpec("pleural_effusion", side="bilateral", severity="mild"), FindingSpec("cardiomegaly")),
    (FindingSpec("consolidation", side="left", zone="lower"),),
    (FindingSpec("pneumonia", side="right", zone="middle", severity="severe"),),
    (FindingSpec("atelectasis", side="left", zone="lower"),),
    (FindingSpec("edema", severity="moderate"), FindingSpec("cardiomegaly", severity="mild")),
    (FindingSpec("pneumothorax", side="right", severity="moderate"),),
    (FindingSpec("pneumothorax", side="left", severity="severe"),),
    (FindingSpec("nodule", side="right", zone="upper"),),
    (FindingSpec("opacity", side="right", zone="lower"),),
    (FindingSpec("support_devices"), FindingSpec("pleural_effusion", side="left", severity="severe")),
    (FindingSpec("support_devices", severity="severe"), FindingSpec("edema", severity="severe")),
    (FindingSpec("fracture", side="left", zone="middle"),),
    (FindingSpec("nodule", side="left", zone="middle"), FindingSpec("atelectasis", side="right")),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tile = args.height
    sheet = Image.new("L", (4 * tile, 4 * tile), 0)
    pen = ImageDraw.Draw(sheet)
    times = []
    for i, findings in enumerate(SHEET):
        start = time.process_time()
        rendered = render_radiograph(findings, args.height, args.seed + i)
        times.append(time.process_time() - start)
        image = Image.fromarray(rendered.image)
        image.thumbnail((tile, tile))
        x, y = (i % 4) * tile + (tile - image.width) // 2, (i // 4) * tile
        sheet.paste(image, (x, y))
        label = ", ".join(f"{f.name}({f.side or ''}{'/' + f.zone if f.zone else ''})" for f in findings) or "normal"
        pen.text(((i % 4) * tile + 4, y + tile - 14), label, fill=255)
    sheet.save(args.out)
    print(f"wrote {args.out}; render CPU time median {np.median(times[1:]):.3f} s, max {max(times):.3f} s")


if __name__ == "__main__":
    main()
