"""WHAT a scenario says: frozen pydantic specs, hardened YAML loading, the parts catalogue, the derived topology."""
