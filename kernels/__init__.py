"""fastgrad's hot loops, each computation in three twins that take the same arguments.

- ``mlp_*``: forward pass, loss and backprop (reverse mode);
- ``coordinate_*``: per-coordinate work re-evaluated incrementally from a cached point:
  forward-mode derivatives and the loss change ``J(θ + δ·e_j) − J(θ)``.

``*_numpy`` is the readable reference, ``*_numba`` the Numba twin, ``*_cython`` the Cython twin
(built by setup.py). ``codes`` holds the layout and the integer codes they share.
"""
