"""fmlab-coord-check on the real tiny-shakespeare: μP's coordinates stay flat across widths, SP's
grow (Yang et al. 2022's test that a μP implementation is right)."""

import json

from conftest import run_cli


def test_mup_coordinates_are_flat_across_widths_and_sp_ones_grow(shakespeare, tmp_path):
    out = tmp_path / "check"
    run_cli(
        "fmlab-coord-check",
        "experiment=mutransfer_shakespeare_char",
        f"paths.data_dir={shakespeare}",
        f"hydra.run.dir={out}",
        cwd=tmp_path,
        env={"OMP_NUM_THREADS": "1"},
    )
    result = json.loads((out / "coord_check.json").read_text())
    assert result["widths"] == [32, 64, 128, 256] and result["flat_slope"] == 0.4
    after_update = {
        kind: {name: layer["slope"][1:] for name, layer in result[kind].items()}
        for kind in ("sp", "mup")
    }
    # Measured here (3 seeds, 5 steps of Adam at the recipe's lr 2^-6): μP's slopes at most 0.29
    # in size, SP's attention and MLP branches 1.0-2.3 (their RMS grows as fast as the width).
    for name, slopes in after_update["mup"].items():
        assert max(map(abs, slopes)) <= 0.4, (name, slopes)
    branches = [n for n in after_update["sp"] if n.endswith((".attn", ".mlp"))]
    assert len(branches) == 4
    for name in branches:
        assert min(after_update["sp"][name]) >= 0.8, (name, after_update["sp"][name])
    assert (out / "coord_check.png").stat().st_size > 0 and (out / "coord_check.pdf").is_file()
