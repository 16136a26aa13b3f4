"""Hand-made judged returns (sessions per trial) whose PBO is known by hand."""

FLIPPING = [[0.01, 0.02, -0.01, -0.02], [0.0, 0.005, 0.01, 0.012]]
"""Trial 0 is best in the first half of the sessions and worst in the second; trial 1 the other way round."""

DOMINANT = [[0.020, 0.021, 0.019, 0.022], [0.0, 0.001, -0.001, 0.0005]]
"""Trial 0 is best everywhere."""
