from pathlib import Path

import npe2


def test_npe2_discovers_and_validates_the_plugin():
    pm = npe2.PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("napari-higt")
    assert manifest.display_name == "napari HIGT"
    # The manifest the entry point serves is the repository's top-level napari.yaml.
    top = Path(__file__).resolve().parents[1] / "napari.yaml"
    assert npe2.PluginManifest.from_file(top).name == manifest.name
    readers = [r.command for r in manifest.contributions.readers]
    assert "napari-higt.read_slide" in readers
    assert {s.key for s in manifest.contributions.sample_data} >= {"cmu1", "tcga"}
    # Every command resolves to an importable callable.
    for cmd in manifest.contributions.commands:
        module, _, attr = cmd.python_name.partition(":")
        mod = __import__(module, fromlist=[attr])
        assert callable(getattr(mod, attr)), cmd.id


def test_core_imports_no_qt():
    import subprocess
    import sys

    code = (
        "import sys, napari_higt, napari_higt.slide, napari_higt.slide.tissue, "
        "napari_higt.slide.writer, napari_higt.cli\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('PyQt5', 'qtpy', 'napari', 'PySide2', 'PySide6', 'vispy')]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
