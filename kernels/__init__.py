"""fastgrad's hot loops, each computation in three twins that take the same arguments.

- ``mlp_*``: forward pass, loss and backprop (reverse mode);
- ``coordinate_*``: per-coordinate work re-evaluated incrementally from a cached point:
  forward-mode derivatives and the loss change ``J(θ + δ·e_j) − J(θ)``;
- ``parallel_*``: optimizer updates (torch.optim's rules) and the fused training step.

``*_numpy`` is the readable reference, ``*_numba`` the Numba twin, ``*_cython`` the Cython twin
(built by setup.py; ``common.pxi`` and ``mlp.pxi`` hold the nogil helpers the ``.pyx`` files
include). ``codes`` holds the layout and the integer codes they share.
"""
