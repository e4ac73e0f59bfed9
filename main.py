"""The authors' command line, unchanged: a thin shim over `lgrn main`.

    python main.py --config experiments/WLFW/config_resnet.yaml --expname DIR --train
    python main.py --config ... --expname DIR --load_path DIR/checkpoint_best.pth.tar --evaluate
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))  # works without `pip install -e .`

from lgrn.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["main", *sys.argv[1:]]))
