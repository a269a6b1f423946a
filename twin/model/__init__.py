"""HOW things behave: pure numpy physics and pure decisions (serving, power, thermal, fabric, policies,
economics, checks, states). No SimPy, no file output."""
