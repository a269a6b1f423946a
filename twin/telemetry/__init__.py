"""The seam on disk: pinned schemas, atomic writing, the run directory, reading runs back, SQL over them."""
