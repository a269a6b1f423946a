"""Render frames of a run's stage with Blender Cycles on CPU (bpy, the PyPI Blender module).

bpy runs only in a child process (``python -m scenes.render``): a Blender session is heavy,
global and not re-entrant, and bpy may live in a different Python than twin (bpy 5.0 wheels
exist for CPython 3.11 only). find_bpy_python() picks the interpreter: $TWIN_BPY_PYTHON, then
this Python, then any python3.11 on PATH or under pyenv. The child needs only bpy and the
standard library.

What the import keeps (bpy 5.0.1, measured on this stage): materials bound to non-instanced
meshes (the node shells' Surface look: displayColor -> base colour, primvars:emissive ->
emission), displayColor / displayOpacity / heat as attributes, animated through a mesh-sequence
cache, instancing (collection instances), curves and points. It drops bindings on instance
roots and on curves/points, so the child gives those their looks back from the same primvars:
instanced parts a displayColor surface, glass to glass panes, the blur discs alpha from
displayOpacity, cables, pulses and P2P arcs an emission of their displayColor.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Sequence

DEFAULT_SIZE = (480, 270)
DEFAULT_SAMPLES = 16
INSTALL_HINT = ("install it into a CPython 3.11 with `python3.11 -m pip install --no-deps bpy==5.0.1`, "
                "or set TWIN_BPY_PYTHON to a Python that has it")


class RenderError(RuntimeError):
    """Rendering failed for a reason the user can act on (bpy missing, bad frame, no stage)."""


def _has_bpy(python: str) -> tuple[bool, str]:
    try:
        proc = subprocess.run([python, "-c", "import bpy; print(bpy.app.version_string)"],
                              capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    if proc.returncode != 0:
        return False, (proc.stderr.strip().splitlines() or ["import failed"])[-1]
    return True, proc.stdout.strip().splitlines()[-1]


def _candidates() -> list[str]:
    env = os.environ.get("TWIN_BPY_PYTHON")
    if env:
        return [env]        # an explicit choice is the only one tried
    out = [sys.executable]
    for name in ("python3.11",):
        found = shutil.which(name)
        if found:
            out.append(found)
    out += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.11*/bin/python")))
    seen, uniq = set(), []
    for p in out:
        real = os.path.realpath(p)
        if real not in seen:
            seen.add(real)
            uniq.append(p)
    return uniq


def find_bpy_python() -> tuple[str, str]:
    """(python executable, Blender version) of the first candidate that imports bpy.

    Raises RenderError with one line saying where it looked and how to get bpy."""
    tried = []
    for python in _candidates():
        ok, info = _has_bpy(python)
        if ok:
            return python, info
        tried.append(python)
    where = "TWIN_BPY_PYTHON=" + tried[0] if os.environ.get("TWIN_BPY_PYTHON") else ", ".join(tried)
    raise RenderError(f"bpy (Blender as a Python module) not found (tried {where}); {INSTALL_HINT}")


def bpy_available() -> tuple[bool, str]:
    """(True, version) when some Python can import bpy, else (False, reason)."""
    try:
        return True, find_bpy_python()[1]
    except RenderError as exc:
        return False, str(exc)


def render_frames(stage_root: Path, frames: Sequence[int], outs: Sequence[Path], size: tuple[int, int] = DEFAULT_SIZE,
                  samples: int = DEFAULT_SAMPLES, camera: str = "Hero",
                  progress: Callable[[int, int], None] | None = None, timeout_s: float = 36000) -> dict:
    """Render stage frames (USD time code = Blender frame) to the PNG paths `outs` in one Blender
    session (the stage is imported once); progress(done, total) after each frame."""
    stage_root = Path(stage_root)
    if not stage_root.exists():
        raise RenderError(f"{stage_root}: no stage (run `twin scene RUN_DIR` first)")
    python, _ = find_bpy_python()
    job = {"stage": str(stage_root.resolve()), "frames": [int(f) for f in frames],
           "outs": [str(Path(o).resolve()) for o in outs],
           "size": list(size), "samples": int(samples), "camera": camera}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH", "")])
    env.setdefault("PYTHONWARNINGS", "ignore")
    proc = subprocess.Popen([python, "-m", "scenes.render", json.dumps(job)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    result, error, lines = None, None, []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("PROGRESS ") and progress:
                done, total = map(int, line.split()[1:3])
                progress(done, total)
            elif line.startswith("RESULT "):
                result = json.loads(line.removeprefix("RESULT "))
            elif line.startswith("RENDER-ERROR "):
                error = line.removeprefix("RENDER-ERROR ").strip()
        stderr = proc.stderr.read()
        proc.wait(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
    if error:
        raise RenderError(error)
    if proc.returncode != 0 or result is None:
        tail = (stderr.strip().splitlines() or ["no output"])[-1]
        raise RenderError(f"Blender render failed: {tail}")
    return result


def render_frame(stage_root: Path, frame: int, out_png: Path, size: tuple[int, int] = DEFAULT_SIZE,
                 samples: int = DEFAULT_SAMPLES, camera: str = "Hero") -> dict:
    """Render one frame to out_png."""
    return render_frames(stage_root, [frame], [out_png], size, samples, camera)


if __name__ == "__main__":
    from scenes.blender_job import main
    main()
