"""Worker processes start without re-running the user's main script (issue 18, item 6).

napari's own examples have no ``if __name__ == "__main__":`` guard. A plain "spawn" worker
re-imports the main script as ``__mp_main__``, which re-runs everything at its top level
(opening viewers, starting runs) before the worker can serve the call.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_an_unguarded_script_is_not_rerun_by_the_worker(tmp_path):
    marker = tmp_path / "runs.txt"
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent(f"""
        import os, threading
        import numpy as np
        with open({str(marker)!r}, "a") as fh:      # top level, no __main__ guard
            fh.write(f"{{os.getpid()}}\\n")
        from napari_restore import _isolate
        from napari_restore.processors import get_processor

        noisy = np.random.default_rng(0).normal(0.5, 0.1, (48, 48)).astype(np.float32)
        out = get_processor("bm3d_denoise").apply(noisy, sigma=0.1, cancel=threading.Event())
        assert out.shape == noisy.shape and float(np.std(out)) < float(np.std(noisy))
        assert _isolate.worker_pids(), "the BM3D call should have used a worker process"
        print("OK", os.getpid())
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=240, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OK" in proc.stdout
    pids = marker.read_text().split()
    assert pids == [proc.stdout.split()[-1]], pids  # the top level ran once, in the parent
