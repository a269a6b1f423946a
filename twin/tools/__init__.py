"""Tools over finished runs and single boxes: query, plots, report, export, compare, predict, sweep."""
