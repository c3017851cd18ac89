"""Progress bars on a terminal only.

A tqdm bar redraws itself with carriage returns; in a pipe or a log file every redraw becomes text
(``\\rBatches: 0%|...\\rBatches: 100%|...``). So every entry point (the ``rl4rec`` command, the benchmarks)
calls :func:`quiet_when_piped` first: when stderr, where the bars are drawn, is not a terminal, the
libraries' own switches turn them off, for this process and everything it starts (Ray workers included):

- ``TQDM_DISABLE=1``: tqdm's default for ``disable`` (tqdm >= 4.66), for every bar not given ``disable=``;
- ``HF_HUB_DISABLE_PROGRESS_BARS=1``: huggingface_hub's and transformers' bars ("Loading weights", downloads);
  both read it when imported, so a library already imported is switched off through its own call;
- ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false``: MLflow's "Downloading artifacts" bar.

Our own bars pass ``disable=`` explicitly (a ``progress=False`` argument must win over a terminal), so they ask
:func:`bars_wanted` as well. A value the user set wins: ``TQDM_DISABLE=0`` keeps the bars in a log file.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from rl4rec_core.paths import NO_PROGRESS_BARS, progress_bars

# MLflow's artifact up/download bar has a switch of its own, read at each transfer
PIPED = {**NO_PROGRESS_BARS, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def quiet_when_piped(stream: TextIO | None = None) -> bool:
    """Turn the libraries' bars off unless ``stream`` (default: stderr) is a terminal; whether bars are on."""
    stream = stream if stream is not None else sys.stderr
    if _is_terminal(stream):
        return progress_bars()
    for key, value in PIPED.items():
        os.environ.setdefault(key, value)
    if progress_bars():  # the user asked for bars (TQDM_DISABLE=0): leave the libraries alone
        return True
    if "huggingface_hub" in sys.modules:  # imported before the switch was set: it read the old value
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    return False


def bars_wanted(requested: bool = True) -> bool:
    """Whether a bar the caller asked for (``requested``) is drawn: not where :func:`quiet_when_piped` or the
    user (``TQDM_DISABLE``) turned bars off."""
    return bool(requested) and progress_bars()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False
