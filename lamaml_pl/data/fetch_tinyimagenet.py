"""Download and unpack TinyImageNet-200 into ``<root>/tiny-imagenet-200`` (needs internet).

    python -m lamaml_pl.data.fetch_tinyimagenet --root data

The archive's own layout is kept (``val/images`` + ``val/val_annotations.txt``): the loader
reads it as it is, so the original code's restructuring step (``val_data_format.py``) is not
needed; folders restructured that way are read too. A failed download leaves nothing behind.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lamaml_pl.data.download import download_into, one_line

URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
MD5 = "90528d7ca1a48142e341f4ef8d21d0de"


def main(argv: list[str] | None = None) -> None:
    from torchvision.datasets.utils import download_and_extract_archive

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data", help="folder that will hold tiny-imagenet-200/ (data.root)")
    args = parser.parse_args(argv)
    root = Path(args.root)
    if (root / "tiny-imagenet-200" / "train").is_dir():
        print(f"{root / 'tiny-imagenet-200'} exists already")
        return
    try:
        download_into(root, lambda folder: download_and_extract_archive(URL, folder, md5=MD5, remove_finished=True))
    except Exception as err:
        print(
            f"error: could not download TinyImageNet-200 from {URL} ({one_line(err)}); nothing was written to "
            f"{root}. On a machine without internet, unpack tiny-imagenet-200.zip into {root} yourself",
            file=sys.stderr,
        )
        sys.exit(2)
    print(f"TinyImageNet-200 is in {root / 'tiny-imagenet-200'}: use data=tinyimagenet data.root={root}")


if __name__ == "__main__":
    main()
