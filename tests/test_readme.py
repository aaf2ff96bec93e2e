"""The README's Python examples run as written (docs match the code).

```python blocks run here, in order; ```py blocks are excerpts run by the test
they name.
"""
import os
import pathlib
import re
import subprocess
import sys

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path):
  blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
  assert len(blocks) >= 3
  script = "\n".join(blocks) + (
      "\nprint('STEP', step, kernel.shape)"
      "\nprint('CLASSES', predictions['class_ids'].ravel().tolist())\n")
  out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert out.returncode == 0, out.stderr[-3000:]
  assert "STEP 10 (1, 5)" in out.stdout
  assert "CLASSES [1, 0]" in out.stdout
  assert (tmp_path / "tf_estimator_example" / "10" / "params").is_dir()
