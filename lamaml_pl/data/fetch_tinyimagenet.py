"""Download and unpack TinyImageNet-200 into ``<root>/tiny-imagenet-200`` (needs internet).

    python -m lamaml_pl.data.fetch_tinyimagenet --root data

The archive's own layout is kept (``val/images`` + ``val/val_annotations.txt``): the loader
reads it as it is, so the original code's restructuring step (``val_data_format.py``) is not
needed; folders restructured that way are read too.
"""

from __future__ import annotations

import argparse
from pathlib import Path

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
    download_and_extract_archive(URL, download_root=str(root), md5=MD5, remove_finished=True)
    print(f"TinyImageNet-200 is in {root / 'tiny-imagenet-200'}: use data=tinyimagenet data.root={root}")


if __name__ == "__main__":
    main()
