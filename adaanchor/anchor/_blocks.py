"""Block size of the dense, hand-written loss passes (:mod:`.losses`, :mod:`.heatmap`)."""

#: Elements per block of a dense loss pass on CPU: blocks stay in cache (a several-fold speed-up). On CUDA
#: the passes run in one block.
CPU_BLOCK = 1 << 17
