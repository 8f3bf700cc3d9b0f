"""Test helper for the notebooks, not part of the package: encoder inputs of the golden reference data.

The notebooks import it with `from _golden import golden_segments` after putting their own folder on `sys.path`
(Jupyter runs them there, `nbdev_test` too)."""
import torch
from mt3_nb.frontend import SEG_FRAMES


def golden_segments(g) -> torch.Tensor:
    "The encoder inputs [S, 256, 512] of a golden npz: each segment of `logmel_concat` zero-padded to 256 rows."
    mel, nf = torch.from_numpy(g['logmel_concat']), g['segment_num_frames']
    out = torch.zeros(len(nf), SEG_FRAMES, mel.shape[1])
    for s, n in enumerate(nf): out[s, :n] = mel[SEG_FRAMES * s: SEG_FRAMES * s + n]
    return out
