"""fastgrad's hot loops, each computation in three twins that take the same arguments.

- ``mlp_*``: forward pass, loss and backprop (reverse mode), and BatchNorm's running
  statistics (``update_running_stats``);
- ``incremental_*``: per-coordinate work re-evaluated incrementally from a cached point:
  forward-mode derivatives and the loss change ``J(θ + δ·e_j) − J(θ)`` (docs/design.md,
  "Incremental re-evaluation");
- ``parallel_*``: optimizer updates (torch.optim's rules) and the fused training step;
- ``sequential_*``: a whole sweep of exact single-coordinate steps in one call.

``*_numpy`` is the readable reference, ``*_numba`` the Numba twin, ``*_cython`` the Cython twin
(built by setup.py; ``common.pxi``, ``mlp.pxi`` and ``incremental.pxi`` hold the nogil helpers
the ``.pyx`` files include, ``bundles.pxi`` the structs the bundles are unpacked into, and
``codes.pxi`` — written by setup.py from ``codes.py``, never by hand — the constants). Every
entry point takes the bundles of ``bundles`` (the network, the cached point, the loss state,
scratch, ...: namedtuples built by the Python layer); ``codes`` holds the layout and the
integer codes they share. See docs/design.md, "The kernel
interface".
"""
