"""A cold start is paid on every scale from zero: what a scikit-learn replica imports is kept to
what it uses. Checked in a fresh interpreter, as a replica starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROBE = """
import json, sys
from pathlib import Path
from lepton.serving.runner import model_app, ReplicaConfig
from lepton.registry.flavours import load_model
load_model(Path(sys.argv[1]))
print(json.dumps(sorted(m for m in ("torch", "lepton.schemas", "fastapi") if m in sys.modules)))
"""


def test_a_scikit_learn_replica_loads_without_torch_or_the_wire_models(tmp_path: Path) -> None:
    import skops.io
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path / "model"
    folder.mkdir()
    skops.io.dump(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), folder / "model.skops")
    (folder / "config.json").write_text(json.dumps({"flavour": "sklearn"}))
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # torch: 1.4 s through skops' walk of scikit-learn; the schemas: 0.3 s of pydantic models.
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
