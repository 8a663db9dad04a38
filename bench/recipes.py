"""Candidate presets of ``fastnn train`` on Fashion-MNIST: test accuracy and training time.

Each candidate runs as its own ``python -m fastnn.cli train --quiet`` process
(full 60 000 training images, 5000 of them held out for validation), one after
the other; the line printed per run gives the options, the seed, the test
accuracy, the seconds of training the command reports and the machine's load
average (``os.getloadavg``) before the run, since the machine may be shared.

    python bench/recipes.py                      # every candidate, seed 0
    python bench/recipes.py --seeds 0 1 --only best
"""

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CANDIDATES = {
    "default": [],
    "best": ["--recipe", "best"],
    "bn-drop-128": ["--batchnorm", "--dropout", "0.2", "--batch-size", "128", "--epochs", "20",
                    "--lr", "0.002"],
    "drop-128": ["--dropout", "0.2", "--batch-size", "128", "--epochs", "25",
                 "--lr-decay", "0.08"],
    "wide-bn-drop-256": ["--hidden", "512,256", "--batchnorm", "--dropout", "0.3",
                         "--batch-size", "256", "--epochs", "25", "--lr", "0.003",
                         "--lr-decay", "0.12"],
    "adamw-bn-drop-128": ["--optimizer", "adamw", "--batchnorm", "--dropout", "0.2",
                          "--batch-size", "128", "--epochs", "20", "--lr", "0.002"],
    "bn-drop-128-30": ["--batchnorm", "--dropout", "0.2", "--batch-size", "128",
                       "--epochs", "30", "--lr", "0.002"],
    "bn-drop-256-30": ["--batchnorm", "--dropout", "0.2", "--batch-size", "256",
                       "--epochs", "30", "--lr", "0.003"],
    "wide-bn-drop-256-15": ["--hidden", "512,256", "--batchnorm", "--dropout", "0.3",
                            "--batch-size", "256", "--epochs", "15", "--lr", "0.003",
                            "--lr-decay", "0.2"],
    "adamw-bn-drop-128-30": ["--optimizer", "adamw", "--batchnorm", "--dropout", "0.2",
                             "--batch-size", "128", "--epochs", "30", "--lr", "0.002"],
    "adamw-bn-drop-256-30": ["--optimizer", "adamw", "--batchnorm", "--dropout", "0.2",
                             "--batch-size", "256", "--epochs", "30", "--lr", "0.003"],
    "best-decay-0.15": ["--recipe", "best", "--lr-decay", "0.15"],
    "wide-drop-128": ["--hidden", "512,256", "--dropout", "0.3", "--batch-size", "128",
                      "--epochs", "20"],
}


def run(options, seed):
    load = os.getloadavg()[0]
    out = subprocess.run([sys.executable, "-m", "fastnn.cli", "train", "--quiet", "--seed",
                          str(seed), *options], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    accuracy = float(re.search(r"test accuracy (\d\.\d+)", out).group(1))
    seconds = float(re.search(r"\(([\d.]+) s of training", out).group(1))
    return accuracy, seconds, load


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--only", nargs="+", choices=sorted(CANDIDATES))
    args = parser.parse_args(argv)
    for name in args.only or CANDIDATES:
        for seed in args.seeds:
            accuracy, seconds, load = run(CANDIDATES[name], seed)
            print(f"{name:20s} seed {seed}  test accuracy {accuracy:.4f}  "
                  f"{seconds:5.1f} s of training  load {load:.2f}  "
                  f"{' '.join(CANDIDATES[name])}", flush=True)


if __name__ == "__main__":
    main()
