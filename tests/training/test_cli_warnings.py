"""The CLI reports a `warn_user` warning as one line on stderr."""


def test_cli_prints_a_warning_as_one_line(feature_folder, tmp_path, capsys):
    from napari_higt.cli import main

    folder, labels = feature_folder
    labels.write_text(labels.read_text() + "ghost,benign\n")
    rc = main(["train", str(folder), str(labels), "--out", str(tmp_path / "run"), "--epochs",
               "1", "--model", "mean", "--folds", "2", "--hidden", "8", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 0
    lines = [ln for ln in err.splitlines() if "warning:" in ln]
    assert len(lines) == 1 and lines[0].startswith("napari-higt train: warning: 1 labelled")
    assert "ghost" in lines[0]
